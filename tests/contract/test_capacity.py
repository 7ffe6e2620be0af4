"""The capacity model (forecaster.contract.capacity), one table for both of its callers.

Every expected number is worked by hand in the row's comment. The same rows run through the
controller's CapacitySpec path (controller.policy.capacity.replicas_for_rates); the service's path,
with its min/max clamp and the scaling window, is tests/service/test_cache.py.
"""

from __future__ import annotations

import pytest

from controller.policy.capacity import replicas_for_rates
from controller.policy.spec import CapacitySpec
from forecaster.contract.capacity import replicas_for_loads, signal_load

# The example config's workload (configs/forecaster/forecaster.yaml): 4 req/s and 2,500 output tok/s per replica.
EXAMPLE = {"requests": 4.0, "output_tokens": 2500.0}
THREE = {"requests": 4.0, "prompt_tokens": 10_000.0, "output_tokens": 3_000.0}

CASES = [
    # rates, per_replica, target utilization, combine -> (replicas, binding, load)
    # 8/4 = 2 and 3000/2500 = 1.2: max 2 / 0.8 = 2.5 -> 3; sum 3.2 / 0.8 = 4.0 -> 4.
    pytest.param({"requests": 8.0, "output_tokens": 3000.0}, EXAMPLE, 0.8, "Max", (3, "requests", 2.0),
                 id="example-max"),
    pytest.param({"requests": 8.0, "output_tokens": 3000.0}, EXAMPLE, 0.8, "Sum", (4, "requests", 3.2),
                 id="example-sum"),
    # A decode-heavy mix: 6/4 = 1.5, 6000/2500 = 2.4 binds (the largest load, in either mode):
    # 2.4 / 0.8 = 3.0 -> 3; sum 3.9 / 0.8 = 4.875 -> 5.
    pytest.param({"requests": 6.0, "output_tokens": 6000.0}, EXAMPLE, 0.8, "Max", (3, "output_tokens", 2.4),
                 id="decode-bound-max"),
    pytest.param({"requests": 6.0, "output_tokens": 6000.0}, EXAMPLE, 0.8, "Sum", (5, "output_tokens", 3.9),
                 id="decode-bound-sum"),
    # Three signals: 36/4 = 9, 60000/10000 = 6, 1500/3000 = 0.5: max 9 / 0.8 = 11.25 -> 12;
    # sum 15.5 / 0.8 = 19.375 -> 20.
    pytest.param({"requests": 36.0, "prompt_tokens": 60_000.0, "output_tokens": 1500.0}, THREE, 0.8, "Max",
                 (12, "requests", 9.0), id="three-signals-max"),
    pytest.param({"requests": 36.0, "prompt_tokens": 60_000.0, "output_tokens": 1500.0}, THREE, 0.8, "Sum",
                 (20, "requests", 15.5), id="three-signals-sum"),
    # Equal loads: the first signal binds. 8/4 = 2 = 5000/2500: 2 / 0.8 = 2.5 -> 3.
    pytest.param({"requests": 8.0, "output_tokens": 5000.0}, EXAMPLE, 0.8, "Max", (3, "requests", 2.0),
                 id="tie-first-binds"),
    # Float noise: 2.1 / 0.3 / 0.7 is 10.000000000000002 in floats; it is 10 replicas, not 11.
    pytest.param({"requests": 2.1}, {"requests": 0.3}, 0.7, "Max", (10, "requests", 2.1 / 0.3),
                 id="float-noise-does-not-add-a-replica"),
    # 2.1 / 1 / 0.3 is 7.000000000000001: 7.
    pytest.param({"requests": 2.1}, {"requests": 1.0}, 0.3, "Sum", (7, "requests", 2.1), id="float-noise-sum"),
    # A real excess above an integer still rounds up: 8.0001 / 4 / 0.5 = 4.00005 -> 5.
    pytest.param({"requests": 8.0001}, {"requests": 4.0}, 0.5, "Max", (5, "requests", 8.0001 / 4),
                 id="just-above-an-integer-rounds-up"),
    # Nothing forecast: 0 replicas (the caller's minimum applies).
    pytest.param({"requests": 0.0, "output_tokens": 0.0}, EXAMPLE, 0.8, "Max", (0, "requests", 0.0), id="zero"),
    # A negative forecast counts as 0 and never offsets another signal: sum 0 + 1.2 = 1.2 / 0.8 = 1.5 -> 2.
    pytest.param({"requests": -8.0, "output_tokens": 3000.0}, EXAMPLE, 0.8, "Sum", (2, "output_tokens", 1.2),
                 id="negative-counts-as-zero-sum"),
    pytest.param({"requests": -8.0}, EXAMPLE, 0.8, "Max", (0, "requests", 0.0), id="negative-alone-is-zero"),
    # A rate with no per-replica capacity does not count: only 8/4 = 2 -> 2 / 0.8 = 2.5 -> 3.
    pytest.param({"requests": 8.0, "prompt_tokens": 1e9}, EXAMPLE, 0.8, "Sum", (3, "requests", 2.0),
                 id="signal-without-capacity-ignored"),
    pytest.param({}, EXAMPLE, 0.8, "Max", (0, None, 0.0), id="no-rates"),
]


@pytest.mark.parametrize(("rates", "per_replica", "utilization", "combine", "expected"), CASES)
def test_replicas_for_loads(rates, per_replica, utilization, combine, expected) -> None:
    replicas, binding, load = replicas_for_loads(rates, per_replica, utilization, combine)
    assert (replicas, binding) == expected[:2]
    assert load == pytest.approx(expected[2])


_CRD_FIELD = {"requests": "requestsPerSecond", "prompt_tokens": "promptTokensPerSecond",
              "output_tokens": "outputTokensPerSecond"}


@pytest.mark.parametrize(("rates", "per_replica", "utilization", "combine", "expected"), CASES)
def test_the_policy_reads_a_capacity_spec_into_the_same_rule(rates, per_replica, utilization, combine,
                                                               expected) -> None:
    spec = CapacitySpec.model_validate({"perReplica": {_CRD_FIELD[s]: r for s, r in per_replica.items()},
                                        "targetUtilization": utilization, "combine": combine})
    replicas, binding, load = replicas_for_rates(rates, spec)
    assert (replicas, binding) == expected[:2]
    assert load == pytest.approx(expected[2])


def test_max_is_the_default() -> None:
    assert replicas_for_loads({"requests": 8.0, "output_tokens": 3000.0}, EXAMPLE, 0.8)[0] == 3
    assert CapacitySpec.model_validate({"perReplica": {"requestsPerSecond": 4}}).combine == "Max"


@pytest.mark.parametrize(("rate", "per", "load"), [
    pytest.param(8.0, 4.0, 2.0, id="ratio"), pytest.param(-1.0, 4.0, 0.0, id="negative-is-zero"),
    pytest.param(0.0, 4.0, 0.0, id="zero"),
])
def test_signal_load(rate, per, load) -> None:
    assert signal_load(rate, per) == load

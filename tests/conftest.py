"""Shared pytest set-up: the real-Prometheus fixtures are available to every test directory, and
hypothesis's timing checks are off.

Hypothesis's deadline and its "input generation is slow" health check time the machine, not the
property: on a shared 2-core CI machine a busy second made a patch invariant fail its health check
after generating one input. The properties and the number of examples are unchanged; a test that
needs a bound on time is a benchmark (bench/), not a test.
"""

from hypothesis import HealthCheck, settings

pytest_plugins = ["tests.promfixture"]

settings.register_profile(
    "prescaler", deadline=None, suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("prescaler")

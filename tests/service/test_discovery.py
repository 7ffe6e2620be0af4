"""prescaler.discovery: the forecaster's workloads from the PredictiveAutoscalers on a fake API server.

Real HTTP and the official kubernetes client (controller.kube) against tests/fakekube; what each
object becomes (the table in prescaler/discovery.py), what is skipped and why, and the wiring of
`prescaler forecaster serve`.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from forecaster.service.config import ConfigError, WorkloadOverride, WorkloadSettings, load_config, parse_config
from forecaster.service.workloads import WorkloadSourceError
from prescaler.discovery import PredictiveAutoscalerSource, listing_from, workload_source
from tests.fakekube import FakeClock
from tests.service.autoscalers import (
    NS,
    PA,
    autoscaler,
    create,
    kube_client,
    set_status,
    start_kube,
)
from tests.service.conftest import ROOT, T0, TRACE


@pytest.fixture
def kclock() -> FakeClock:
    """One clock for the API server (creation times) and the service: inside the shipped trace."""
    return FakeClock(T0)


@pytest.fixture
def kube(kclock):
    server = start_kube(kclock)
    yield server
    server.stop()


RESYNC = timedelta(seconds=30)


def source(server, *, overrides=(), namespaces=()) -> PredictiveAutoscalerSource:
    return PredictiveAutoscalerSource(kube_client(server), namespaces=namespaces, resync=RESYNC,
                                      overrides=[WorkloadOverride.model_validate(o) for o in overrides])


# --- what an object becomes -------------------------------------------------------------------

# (object, status, expected WorkloadSettings fields). SPEC: requests at 400/s per replica, 1..20
# replicas, leadTime 5m, horizon 30m, interval 1m, retrainInterval 6h, model last_value, q 0.9.
CASES = [
    pytest.param(
        autoscaler("chat", workload="m-small", forecast={"modelName": "Qwen2.5-7B"}), None,
        {"name": "m-small", "model_name": "Qwen2.5-7B", "namespace": NS, "model": "last_value",
         "quantile": 0.9, "lead_time": timedelta(minutes=5), "interval": timedelta(minutes=1),
         "retrain_interval": timedelta(hours=6), "max_horizon": timedelta(minutes=30)},
        id="annotation-names-the-workload-and-modelName-the-label",
    ),
    pytest.param(
        autoscaler("chat"), None, {"name": "chat", "model_name": "chat"},
        id="no-annotation-no-modelName-the-object-name",
    ),
    pytest.param(
        autoscaler("chat", leadTime="auto", forecast={"horizon": "10m"}), {"leadTimeSeconds": 900},
        {"lead_time": timedelta(seconds=900), "max_horizon": timedelta(seconds=960)},
        id="auto-lead-is-the-learned-one-and-raises-the-horizon",
    ),
    pytest.param(
        autoscaler("chat", leadTime="auto"), None,
        {"lead_time": timedelta(seconds=300), "max_horizon": timedelta(minutes=30)},
        id="auto-lead-before-any-cold-start-is-the-controllers-default",
    ),
    pytest.param(
        autoscaler("chat", syncPeriod="30s", forecast={"interval": "0s"}), None,
        {"interval": timedelta(seconds=30)},
        id="interval-0-is-the-sync-period",
    ),
    pytest.param(
        autoscaler("chat", forecast={"signals": [{"name": "requests"}, {"name": "output_tokens", "query": "sum(x)"}],
                                     "model": "auto", "retrainInterval": "1d", "quantile": 0.95},
                   capacity={"perReplica": {"requestsPerSecond": 4, "outputTokensPerSecond": 2500,
                                            "promptTokensPerSecond": 9000},
                             "targetUtilization": 0.7, "combine": "Sum"},
                   minReplicas=2, maxReplicas=8),
        None,
        {"signals": {"requests": {"query": None}, "output_tokens": {"query": "sum(x)"}},
         "model": "auto", "quantile": 0.95, "retrain_interval": timedelta(days=1),
         "capacity": {"per_replica": {"requests": 4.0, "output_tokens": 2500.0},  # prompt_tokens: not forecast
                      "target_utilization": 0.7, "combine": "Sum", "min_replicas": 2, "max_replicas": 8}},
        id="signals-queries-and-capacity",
    ),
]


@pytest.mark.parametrize(("obj", "status", "expected"), CASES)
def test_a_predictiveautoscaler_becomes_a_workload(kube, obj, status, expected):
    create(kube, obj)
    if status is not None:
        set_status(kube, obj["metadata"]["name"], status)
    listing = source(kube).load()
    assert listing.skipped == {}
    (settings,) = listing.workloads.values()
    dumped = settings.model_dump()
    for field, value in expected.items():
        assert dumped[field] == value, field
    assert listing.origins[settings.name] == f"PredictiveAutoscaler {NS}/chat"


def test_the_service_defaults_fill_what_the_object_does_not_say(kube):
    create(kube, autoscaler("chat"))
    (settings,) = source(kube).load().workloads.values()
    defaults = WorkloadSettings.model_fields
    for field in ("bin", "candidates", "quantiles", "backtest_window", "labels"):
        assert getattr(settings, field) == defaults[field].get_default(call_default_factory=True), field


def test_an_object_without_forecast_is_a_plain_hpa_and_not_served(kube):
    create(kube, autoscaler("hpa-only", forecast=None, capacity=None))
    create(kube, autoscaler("chat"))
    listing = source(kube).load()
    assert set(listing.workloads) == {"chat"}
    assert listing.skipped == {}  # nothing wrong with it: it asks for no forecast


# --- what is skipped, and why -------------------------------------------------------------------

INVALID = [
    pytest.param({"minReplicas": 5, "maxReplicas": 2}, None, "spec: maxReplicas (2) must be >= minReplicas (5)",
                 id="spec-cross-field"),
    pytest.param({"forecast": {"quantile": 1.5}}, None, "spec.forecast.quantile: Input should be less than 1",
                 id="spec-field"),
    pytest.param({"forecast": {"signals": [{"name": "requests"}, {"name": "output_tokens"}]}}, None,
                 "forecast.signals[1] (output_tokens) has no capacity.perReplica.outputTokensPerSecond",
                 id="forecast-signal-without-capacity"),
    # Valid for the controller, refused by the service: named by the object's field it came from.
    pytest.param({"forecast": {"model": "arima"}}, None, "spec.forecast.model: model 'arima' is neither 'auto' nor",
                 id="model-the-service-does-not-know"),
    pytest.param({}, "Not_A_Label", "metadata.annotations[prescaler.dev/workload]: 'Not_A_Label' must be a DNS-1123",
                 id="workload-name-from-the-annotation"),
]


@pytest.mark.parametrize(("changes", "workload", "reason"), INVALID)
def test_an_invalid_object_is_skipped_with_its_field_and_the_others_serve(kube, kclock, changes, workload, reason):
    create(kube, autoscaler("good"), kclock)
    create(kube, autoscaler("bad", workload=workload, **changes), kclock)
    listing = source(kube).load()
    assert set(listing.workloads) == {"good"}
    assert set(listing.skipped) == {f"PredictiveAutoscaler {NS}/bad"}
    assert reason in listing.skipped[f"PredictiveAutoscaler {NS}/bad"]


def test_two_objects_naming_one_workload_the_older_serves(kube, kclock):
    create(kube, autoscaler("first", workload="m-small", maxReplicas=7), kclock)
    create(kube, autoscaler("second", workload="m-small", maxReplicas=9), kclock)
    create(kube, autoscaler("m-small", namespace="other", maxReplicas=11), kclock)  # names are global
    listing = source(kube).load()
    assert listing.workloads["m-small"].capacity.max_replicas == 7
    assert listing.origins["m-small"] == f"PredictiveAutoscaler {NS}/first"
    assert listing.skipped == {
        f"PredictiveAutoscaler {NS}/second": "metadata.annotations[prescaler.dev/workload]: workload 'm-small' "
                                             f"is already served from PredictiveAutoscaler {NS}/first, which is older",
        "PredictiveAutoscaler other/m-small": "metadata.name: workload 'm-small' is already served from "
                                              f"PredictiveAutoscaler {NS}/first, which is older",
    }
    kube.delete(*PA, "first", NS)
    listing = source(kube).load()
    assert listing.workloads["m-small"].capacity.max_replicas == 9, "the next oldest takes over"
    assert list(listing.skipped) == ["PredictiveAutoscaler other/m-small"]


def test_namespaces_limit_what_is_read(kube, kclock):
    create(kube, autoscaler("a"), kclock)
    create(kube, autoscaler("b", namespace="team-b"), kclock)
    create(kube, autoscaler("c", namespace="team-c"), kclock)
    assert set(source(kube).load().workloads) == {"a", "b", "c"}
    assert set(source(kube, namespaces=("llm", "team-b")).load().workloads) == {"a", "b"}
    assert source(kube, namespaces=("team-b",)).description == "PredictiveAutoscalers in team-b"


# --- overrides from the config ------------------------------------------------------------------


def test_an_override_wins_field_by_field(kube):
    create(kube, autoscaler("chat", minReplicas=2, maxReplicas=8))
    override = {"name": "chat", "quantile": 0.95, "labels": {"team": "inference"}, "bin": "5m",
                "capacity": {"max_replicas": 50}, "signals": {"requests": {"query": "sum(rate(r[$step]))"}}}
    listing = source(kube, overrides=[override]).load()
    w = listing.workloads["chat"]
    assert (w.quantile, w.labels, w.bin) == (0.95, {"team": "inference"}, timedelta(minutes=5))
    # capacity merges key by key: max from the config, everything else from the object
    assert (w.capacity.max_replicas, w.capacity.min_replicas, w.capacity.per_replica) == (50, 2, {"requests": 400.0})
    assert w.signals["requests"].query == "sum(rate(r[$step]))"
    assert (w.model, w.lead_time) == ("last_value", timedelta(minutes=5)), "untouched fields are the object's"
    assert listing.origins["chat"] == f"PredictiveAutoscaler {NS}/chat with config workloads[chat]"


OVERRIDE_REFUSED = [
    pytest.param({"capacity": {"min_replicas": 30}},
                 "config workloads[chat].capacity: max_replicas (20) must be >= min_replicas (30)",
                 id="capacity-against-the-objects-max"),
    pytest.param({"max_horizon": "1m"},
                 "config workloads[chat].max_horizon: max_horizon (0:01:00) must cover lead_time + interval",
                 id="cross-field-names-the-configs-field"),
    pytest.param({"capacity": {"per_replica": {"prompt_tokens": 9000}}},
                 "config workloads[chat].capacity: capacity.per_replica names ['prompt_tokens']",
                 id="per-replica-of-a-signal-not-forecast"),
]


@pytest.mark.parametrize(("override", "reason"), OVERRIDE_REFUSED)
def test_an_override_that_breaks_its_workload_skips_it_naming_the_config(kube, override, reason):
    create(kube, autoscaler("chat"))
    create(kube, autoscaler("other"))
    listing = source(kube, overrides=[{"name": "chat", **override}]).load()
    assert set(listing.workloads) == {"other"}
    (skipped,) = listing.skipped.values()
    assert reason in skipped


def test_an_override_alone_serves_only_when_complete(kube):
    complete = {"name": "solo", "model_name": "solo", "signals": {"requests": {}},
                "capacity": {"per_replica": {"requests": 1.0}}}
    listing = source(kube, overrides=[complete, {"name": "orphan", "quantile": 0.5}]).load()
    assert set(listing.workloads) == {"solo"}
    assert listing.origins["solo"] == "config workloads[solo]"
    reason = listing.skipped["config workloads[orphan]"]
    assert reason.startswith("no PredictiveAutoscaler names workload 'orphan'")
    assert "config workloads[orphan].model_name: Field required" in reason


def test_the_example_autoscaler_and_config_give_the_hand_listed_workload():
    """configs/forecaster/forecaster.yaml listed m-small by hand before discovery; the example
    PredictiveAutoscaler with the config's override must describe the same workload."""
    config = load_config(ROOT / "configs" / "forecaster" / "forecaster.yaml")
    (obj,) = [d for d in yaml.safe_load_all((ROOT / "configs" / "examples" / "predictiveautoscaler.yaml").read_text())
              if d and d["kind"] == "PredictiveAutoscaler"]
    listing = listing_from([obj], config.workloads)
    assert listing.skipped == {}
    hand_listed = WorkloadSettings.model_validate({
        "name": "m-small", "model_name": "m-small", "namespace": "llm", "labels": {"team": "inference"},
        "signals": {"requests": {}, "prompt_tokens": {}, "output_tokens": {
            "query": 'sum(rate({__name__=~"vllm[:_]generation_tokens_total", model_name="$model_name"}[$step]))'}},
        "model": "auto", "candidates": ["seasonal_naive_daily", "seasonal_naive_weekly", "holt_winters", "gbm"],
        "quantile": 0.9, "quantiles": [0.5, 0.9, 0.95], "bin": "10m", "lead_time": "5m", "interval": "1m",
        "retrain_interval": "6h", "max_horizon": "24h", "backtest_window": "2d",
        "capacity": {"per_replica": {"requests": 4.0, "output_tokens": 2500.0}, "target_utilization": 0.8,
                     "combine": "Max", "min_replicas": 1, "max_replicas": 20},
    })
    assert listing.workloads["m-small"] == hand_listed


# --- the API server ---------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "words"), [(500, "500"), (403, "403")])
def test_a_listing_that_fails_is_an_error_of_the_source(kube, status, words):
    create(kube, autoscaler("chat"))
    kube.fail_next(r"/predictiveautoscalers$", status=status)
    with pytest.raises(WorkloadSourceError, match=f"listing PredictiveAutoscalers in all namespaces: .*{words}"):
        source(kube).load()
    assert set(source(kube).load().workloads) == {"chat"}, "the next listing works again"


def test_an_unreachable_api_server_is_an_error_of_the_source(kube):
    src = source(kube)
    kube.stop()
    with pytest.raises(WorkloadSourceError, match="listing PredictiveAutoscalers"):
        src.load()


def test_a_kubeconfig_that_does_not_load_is_a_config_error(tmp_path):
    config = parse_config({"history": {"source": "trace", "trace": {"path": str(TRACE)}},
                           "discovery": {"enabled": True, "kubeconfig": str(tmp_path / "missing")}}, "test")
    with pytest.raises(ConfigError, match=r"discovery.kubeconfig \(.*missing\): cannot configure"):
        workload_source(config)


# --- the command line ------------------------------------------------------------------------


def _config(tmp_path: Path, body: str) -> str:
    path = tmp_path / "svc.yaml"
    path.write_text(f"history: {{source: trace, trace: {{path: {TRACE}}}}}\nregistry_dir: models\n{body}")
    return str(path)


def test_check_says_what_discovery_will_read(tmp_path):
    from prescaler.cli import app

    runner = CliRunner()
    (tmp_path / "kc.yaml").write_text("apiVersion: v1\nkind: Config\n")  # --check reads the files it names
    path = _config(tmp_path, "discovery: {enabled: true, namespaces: [llm, team-b], resync: 1m, "
                             "kubeconfig: kc.yaml}\nworkloads: [{name: m-small, quantile: 0.95}]\n")
    result = runner.invoke(app, ["forecaster", "serve", "--config", path, "--check"])
    assert result.exit_code == 0, result.output
    assert ("valid (workloads from the PredictiveAutoscalers in namespace(s) llm, team-b, listed every 1m "
            f"through kubeconfig {tmp_path / 'kc.yaml'}; 1 override(s): m-small)") in result.output
    path = _config(tmp_path, "discovery: {enabled: true}\n")
    result = runner.invoke(app, ["forecaster", "serve", "--config", path, "--check"])
    assert "PredictiveAutoscalers in all namespaces, listed every 30s through the pod's service account" \
        in result.output and "no overrides" in result.output
    path = _config(tmp_path, "workloads: [{name: a, model_name: a, signals: {requests: {}}, "
                             "capacity: {per_replica: {requests: 1}}}]\n")
    result = runner.invoke(app, ["forecaster", "serve", "--config", path, "--check"])
    assert "valid (1 workload(s): a)" in result.output


def test_serve_is_wired_to_discovery(tmp_path):
    """`prescaler forecaster serve` hands prescaler.discovery's factory in: a kubeconfig that does not
    load is refused by it (exit 2, the field named) before anything serves."""
    from prescaler.cli import app

    path = _config(tmp_path, "discovery: {enabled: true, kubeconfig: nowhere.yaml}\n")
    result = CliRunner().invoke(app, ["forecaster", "serve", "--config", path])
    assert result.exit_code == 2, result.output
    assert "discovery.kubeconfig" in result.output and "nowhere.yaml" in result.output


def test_serve_without_the_wiring_refuses_discovery(tmp_path):
    import typer

    from forecaster.service.cli import register

    app = typer.Typer()
    register(app)
    path = _config(tmp_path, "discovery: {enabled: true}\n")
    result = CliRunner().invoke(app, ["forecaster", "serve", "--config", path])
    assert result.exit_code == 2
    assert "discovery.enabled needs the PredictiveAutoscaler source" in result.output

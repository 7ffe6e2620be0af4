"""Observability: the controller's gauges against a reconcile on the fake API server, and the shipped
monitoring (configs/monitoring): the PrometheusRule under promtool, the monitors against the
Deployments they scrape, and the Grafana dashboard against the metrics the code exports."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from controller.leader import LeaseElector
from controller.loop import Controller
from controller.reconcile import Cycle, Reconciler
from controller.server import ControllerMetrics
from forecaster.contract import WorkloadForecast
from tests.fakekube import FakeClock, FakeKube

from .conftest import NS, autoscaler, deployment, kube_client, make_reconciler, sync_pods
from .fakes import FakeForecaster, FakePrometheus, flat_then_peak

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "configs" / "monitoring"
DASHBOARD = MONITORING / "grafana-dashboard.json"
RULE = MONITORING / "prometheusrule.yaml"
RULE_TESTS = MONITORING / "tests"
PA = ("prescaler.dev/v1alpha1", "predictiveautoscalers")

# The vLLM metrics the dashboard and the rules may read: the one list of them, with its source.
# vllm/engine/metrics.py (`Metrics.__init__`, v0.6) and vllm/v1/metrics/loggers.py (v1 engine, which
# renamed gpu_cache_usage_perc to kv_cache_usage_perc); histograms with their series suffixes.
_VLLM_HISTOGRAMS = ("vllm:time_to_first_token_seconds", "vllm:time_per_output_token_seconds",
                    "vllm:e2e_request_latency_seconds", "vllm:request_queue_time_seconds")
VLLM_METRICS = frozenset({
    "vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc",
    "vllm:gpu_cache_usage_perc", "vllm:prompt_tokens_total", "vllm:generation_tokens_total",
    "vllm:request_success_total", "vllm:num_preemptions_total",
    *(h + suffix for h in _VLLM_HISTOGRAMS for suffix in ("_bucket", "_sum", "_count")),
})

_SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"),
             "summary": ("", "_sum", "_count", "_created"), "gauge": ("",), "info": ("_info",)}


def series_names(registry: CollectorRegistry) -> set[str]:
    """Every series name a registry can expose, children or not yet (a labelled gauge without
    children has no samples, but its family is collected)."""
    names = set()
    for family in registry.collect():
        names.update(family.name + suffix for suffix in _SUFFIXES.get(family.type, ("",)))
    return names


def controller_names() -> set[str]:
    return series_names(ControllerMetrics().registry)


def forecaster_names() -> set[str]:
    from forecaster.service.app import Metrics  # the forecaster service's own /metrics

    registry = CollectorRegistry()
    Metrics(registry)
    return series_names(registry)


def rule_groups() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULE.read_text())
    assert doc["apiVersion"] == "monitoring.coreos.com/v1" and doc["kind"] == "PrometheusRule"
    groups: list[dict[str, Any]] = doc["spec"]["groups"]
    return groups


def recorded_names() -> set[str]:
    return {r["record"] for g in rule_groups() for r in g["rules"] if "record" in r}


# ---- PromQL: the metric names an expression reads ----------------------------------------------

_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool", "and", "or",
             "unless", "inf", "nan", "Inf", "NaN"}


def promql_metric_names(expr: str) -> set[str]:
    """The metric names an expression selects, by elimination: Grafana variables, strings, label
    matchers, ranges, grouping clauses and numbers out; of the identifiers left, those not called
    (functions, aggregations) and not keywords."""
    text = re.sub(r"\$\{?\w+\}?", "5m", expr)
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', text)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = _GROUPING.sub(" ", text)
    text = re.sub(r"(?<![\w:])\d[\w.+-]*", " ", text)  # numbers, durations (5m, 1e3)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][\w:]*", text):
        called = text[match.end():].lstrip().startswith("(")
        if not called and match.group() not in _KEYWORDS:
            names.add(match.group())
    return names


@pytest.mark.parametrize(("expr", "names"), [
    ('histogram_quantile(0.95, sum by (le) (rate(vllm:time_to_first_token_seconds_bucket{a="b"}[5m])))',
     {"vllm:time_to_first_token_seconds_bucket"}),
    ("x offset $lead and on(instance) (y offset 5m == 1)", {"x", "y"}),
    ("sum(rate(a_total[$__rate_interval])) by (reason) / 0.01", {"a_total"}),
    ('a{name="on(b) c"} unless ignoring(c) d', {"a", "d"}),
    ("1 - (x / y) > bool 1e3", {"x", "y"}),
    ("max(prescaler_forecaster_ready)", {"prescaler_forecaster_ready"}),
])
def test_promql_metric_names(expr: str, names: set[str]) -> None:
    assert promql_metric_names(expr) == names


# ---- the dashboard -------------------------------------------------------------------------------

def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def _panels(panels: Iterable[dict[str, Any]]) -> Iterable[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))  # panels inside collapsed rows


def dashboard_queries() -> list[tuple[str, str]]:
    """(where, PromQL) for every panel target and every query variable (label_values' selector)."""
    board = dashboard()
    out = [(f"panel {p['title']!r} {t['refId']}", t["expr"])
           for p in _panels(board["panels"]) for t in p.get("targets", [])]
    for var in board["templating"]["list"]:
        if var["type"] != "query":
            continue
        query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        match = re.fullmatch(r"\s*label_values\((.*),\s*\w+\)\s*", query)
        assert match, f"variable {var['name']}: expected label_values(selector, label), got {query!r}"
        out.append((f"variable {var['name']}", match.group(1)))
    return out


def test_dashboard_has_the_panels() -> None:
    board = dashboard()
    titles = {p["title"] for p in _panels(board["panels"])}
    assert {"Forecast vs actual", "Replicas by stage", "Lead time", "TTFT p50 / p95", "Forecast health"} <= titles
    assert board["uid"] and board["schemaVersion"] >= 36
    ids = [p["id"] for p in _panels(board["panels"])]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    for panel in _panels(board["panels"]):
        if panel["type"] != "row":
            assert panel.get("targets"), f"panel {panel['title']!r} queries nothing"
    ttft = next(p for p in board["panels"] if p["title"] == "TTFT p50 / p95")
    assert [re.match(r"histogram_quantile\(([\d.]+)", t["expr"]).group(1) for t in ttft["targets"]] == ["0.5", "0.95"]


def test_every_dashboard_metric_is_exported() -> None:
    known = controller_names() | forecaster_names() | VLLM_METRICS | recorded_names()
    used: dict[str, str] = {}
    for where, expr in dashboard_queries():
        names = promql_metric_names(expr)
        assert names, f"{where}: no metric in {expr!r}"
        for name in names:
            used.setdefault(name, where)
    unknown = {name: where for name, where in used.items() if name not in known}
    assert not unknown, f"metrics no one exports: {unknown}"
    # and the new gauges are on it: forecast vs actual, stages, health
    assert {"prescaler_forecast_at_lead", "prescaler_observed_rate", "prescaler_recommended_replicas",
            "prescaler_forecast_healthy", "prescaler_lead_time_seconds",
            "vllm:time_to_first_token_seconds_bucket"} <= set(used)


def test_every_rule_metric_is_exported() -> None:
    known = controller_names() | VLLM_METRICS | recorded_names()
    for group in rule_groups():
        for rule in group["rules"]:
            names = promql_metric_names(rule["expr"])
            assert names and names <= known, f"{rule.get('alert') or rule.get('record')}: {names - known}"


# ---- promtool ------------------------------------------------------------------------------------

def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool not installed: apt-get install prometheus (make prometheus)")
    return path


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.mark.prometheus
def test_rules_pass_promtool_check_and_unit_tests(tmp_path: Path) -> None:
    promtool = _promtool()
    # The rule file the PrometheusRule's groups make, next to the unit tests that name it.
    (tmp_path / "prescaler-rules.yaml").write_text(yaml.safe_dump({"groups": rule_groups()}, sort_keys=False))
    tests = sorted(RULE_TESTS.glob("*.yaml"))
    assert tests, "configs/monitoring/tests holds the rules' unit tests"
    for test in tests:
        shutil.copy(test, tmp_path / test.name)
    checked = _run([promtool, "check", "rules", "prescaler-rules.yaml"], tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = _run([promtool, "test", "rules", *(t.name for t in tests)], tmp_path)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    # every alert has at least one case where it fires and one where it does not
    cases = [yaml.safe_load(t.read_text()) for t in tests]
    alerts = {r["alert"] for g in rule_groups() for r in g["rules"] if "alert" in r}
    fires = {c["alertname"] for doc in cases for t in doc["tests"] for c in t.get("alert_rule_test", [])
             if c.get("exp_alerts")}
    silent = {c["alertname"] for doc in cases for t in doc["tests"] for c in t.get("alert_rule_test", [])
              if not c.get("exp_alerts")}
    assert alerts <= fires and alerts <= silent, (alerts - fires, alerts - silent)


@pytest.mark.prometheus
def test_dashboard_promql_parses(tmp_path: Path) -> None:
    promtool = _promtool()
    # promtool parses PromQL when it checks rules: one recording rule per query, variables filled in.
    values = {"namespace": "llm", "name": "chat", "model": ".*", "lead": "5m", "__rate_interval": "1m"}
    rules = []
    for i, (where, expr) in enumerate(dashboard_queries()):
        filled = re.sub(r"\$\{?(\w+)\}?", lambda m: values[m.group(1)], expr)
        rules.append({"record": f"dashboard:query_{i}", "expr": filled, "labels": {"where": where}})
    (tmp_path / "dashboard.yaml").write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    checked = _run([promtool, "check", "rules", "dashboard.yaml"], tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr


# ---- the monitors, against the Deployments and the Service they scrape ------------------------------

def _load(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _rendered() -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed (it renders the kustomization)")
    out = _run([kubectl, "kustomize", str(MONITORING)], ROOT)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def _one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"one {kind} {name or ''}, got {len(found)}"
    return found[0]


def test_the_monitoring_kustomization_scrapes_what_the_deployments_serve() -> None:
    docs = _rendered()
    assert {d["kind"] for d in docs} == {"PodMonitor", "ServiceMonitor", "PrometheusRule", "ConfigMap"}

    controller = _one(_load(ROOT / "configs" / "controller" / "deployment.yaml"), "Deployment")
    pod = controller["spec"]["template"]
    monitor = _one(docs, "PodMonitor")
    assert monitor["metadata"]["namespace"] == controller["metadata"]["namespace"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    ports = {p["name"] for c in pod["spec"]["containers"] for p in c.get("ports", [])}
    endpoint = monitor["spec"]["podMetricsEndpoints"][0]
    assert endpoint["port"] in ports and endpoint["path"] == "/metrics"
    assert endpoint["honorLabels"] is True, "the autoscaler's namespace label must survive the scrape"

    service = _one(_load(ROOT / "configs" / "forecaster" / "service.yaml"), "Service")
    forecaster = _one(_load(ROOT / "configs" / "forecaster" / "deployment.yaml"), "Deployment")
    sm = _one(docs, "ServiceMonitor")
    assert sm["metadata"]["namespace"] == service["metadata"]["namespace"]
    assert sm["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    endpoint = sm["spec"]["endpoints"][0]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["scheme"] == "https" and endpoint["path"] == "/metrics"
    mounted = {v["secret"]["secretName"] for v in forecaster["spec"]["template"]["spec"]["volumes"] if "secret" in v}
    ca = endpoint["tlsConfig"]["ca"]["secret"]
    assert ca["name"] in mounted and ca["key"] == "ca.crt", "the CA of the certificate the forecaster serves"
    meta = service["metadata"]
    assert endpoint["tlsConfig"]["serverName"] == f"{meta['name']}.{meta['namespace']}.svc"

    rule = _one(docs, "PrometheusRule")
    assert rule["spec"]["groups"] == rule_groups()
    configmap = _one(docs, "ConfigMap", "prescaler-grafana-dashboard")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(configmap["data"]["grafana-dashboard.json"]) == dashboard()


# ---- the gauges, from a reconcile on the fake API server ---------------------------------------------

def _value(metrics: ControllerMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, {"namespace": NS, "name": "chat", **labels})


def _stages(metrics: ControllerMetrics) -> dict[str, float | None]:
    return {s: _value(metrics, "prescaler_recommended_replicas", stage=s) for s in ("reactive", "predictive", "final")}


def _flat(forecaster: FakeForecaster, clock: FakeClock, rate: float) -> None:
    """Every sync gets a fresh forecast whose 0.9 quantile is `rate` everywhere."""
    def make(workload: str) -> WorkloadForecast:
        now = clock.now().replace(second=0, microsecond=0)
        f = flat_then_peak(now, base=rate, peak=rate, peak_from_s=0, peak_to_s=0, generated_at=clock.now(),
                           quantile_spread=1.0, workload=workload)
        return WorkloadForecast(workload=workload, forecasts={"requests": f})
    forecaster.make = make


def _sync(kube: FakeKube, reconciler: Reconciler, clock: FakeClock, prom: FakePrometheus, per_pod: float) -> None:
    pods = sync_pods(kube)
    prom.pod_metrics["vllm:num_requests_running"] = {p: per_pod for p in pods}
    outcome = reconciler.reconcile_one(kube.get(*PA, "chat"), clock.now(), Cycle())
    assert outcome.error is None, outcome


# 2 replicas, target 8 running requests per pod, 2 req/s per replica (conftest.BASE_SPEC).
# forecast: the 0.9 quantile in req/s, None for a forecaster that answers 503. The final stage is
# after behavior: without a behavior stanza a scale-up from 2 is capped at max(2 x 2, 4) = 4, so a
# stage asking for 5 shows 5 while the final recommendation is 4.
@pytest.mark.parametrize(("spec", "forecast", "per_pod", "stages", "healthy"), [
    pytest.param({}, 9.0, 8.0, {"reactive": 2, "predictive": 5, "final": 4}, 1, id="forecast-drives"),
    pytest.param({}, 2.0, 20.0, {"reactive": 5, "predictive": 1, "final": 4}, 1, id="metrics-drive"),
    pytest.param({}, None, 20.0, {"reactive": 5, "predictive": None, "final": 4}, 0, id="forecaster-down"),
    pytest.param({"forecast": None, "capacity": None}, None, 8.0,
                 {"reactive": 2, "predictive": None, "final": 2}, None, id="no-forecast-configured"),
    pytest.param({"mode": "Off"}, 9.0, 20.0, {"reactive": None, "predictive": None, "final": 2}, None,
                 id="mode-off"),
])
def test_a_reconcile_sets_the_stage_gauges_to_the_decision(kube, clock, prom, forecaster, spec, forecast, per_pod,
                                                            stages, healthy) -> None:
    kube.create("apps/v1", "deployments", deployment(replicas=2))
    kube.create(*PA, autoscaler(**spec))
    if forecast is None:
        forecaster.down = True
    else:
        _flat(forecaster, clock, forecast)
    prom.rates["vllm:request_success_total"] = 3.0
    reconciler = make_reconciler(kube, prom, forecaster)
    _sync(kube, reconciler, clock, prom, per_pod)

    m = reconciler.metrics
    assert _stages(m) == stages
    status = kube.get(*PA, "chat")["status"]
    assert _value(m, "prescaler_desired_replicas") == status["desiredReplicas"] == stages["final"]
    assert _value(m, "prescaler_forecast_healthy") == healthy
    assert (_value(m, "prescaler_max_replicas"), _value(m, "prescaler_min_replicas")) == (20, 1)
    configured = "forecast" not in spec
    expected_at_lead = forecast if configured else None
    assert _value(m, "prescaler_forecast_at_lead", signal="requests", quantile="0.9") == expected_at_lead
    assert _value(m, "prescaler_observed_rate", signal="requests") == (3.0 if configured else None)
    assert _value(m, "prescaler_lead_time_seconds") == 300


def test_an_abstaining_stage_leaves_no_stale_series(kube, clock, prom, forecaster) -> None:
    kube.create("apps/v1", "deployments", deployment(replicas=2))
    kube.create(*PA, autoscaler())
    _flat(forecaster, clock, 9.0)
    prom.rates["vllm:request_success_total"] = 3.0
    reconciler = make_reconciler(kube, prom, forecaster)
    m = reconciler.metrics
    _sync(kube, reconciler, clock, prom, 8.0)
    assert _stages(m)["predictive"] == 5 and _value(m, "prescaler_forecast_age_seconds") is not None

    forecaster.down = True
    clock.advance(15)
    _sync(kube, reconciler, clock, prom, 8.0)
    stages = _stages(m)
    assert stages["reactive"] is not None and stages["predictive"] is None
    desired = kube.get(*PA, "chat")["status"]["desiredReplicas"]
    assert stages["final"] == _value(m, "prescaler_desired_replicas") == desired
    assert _value(m, "prescaler_forecast_healthy") == 0
    assert _value(m, "prescaler_forecast_at_lead", signal="requests", quantile="0.9") is None
    assert _value(m, "prescaler_forecast_age_seconds") is None, "no forecast this sync: no age"

    # Another autoscaler takes the target: no decision, so no per-autoscaler series at all.
    kube.create("autoscaling/v2", "horizontalpodautoscalers", {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "other", "namespace": NS},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "vllm"},
                 "minReplicas": 1, "maxReplicas": 3}})
    clock.advance(15)
    _sync(kube, reconciler, clock, prom, 8.0)
    exposed = [s for f in m.registry.collect() if f.type == "gauge" for s in f.samples
               if s.labels.get("name") == "chat"]
    assert exposed == []


def test_the_live_error_is_exported_as_a_ratio_and_under_its_old_name() -> None:
    m = ControllerMetrics()
    m._put(m.live_error_ratio, NS, "chat", {("requests",): 0.25, ("output_tokens",): math.nan})
    assert m.registry.get_sample_value("prescaler_forecast_live_error_ratio",
                                       {"namespace": NS, "name": "chat", "signal": "requests"}) == 0.25
    assert m.registry.get_sample_value("prescaler_forecast_live_error_ratio",
                                       {"namespace": NS, "name": "chat", "signal": "output_tokens"}) is None
    m._put(m.live_error_ratio, NS, "chat", {})
    assert m.registry.get_sample_value("prescaler_forecast_live_error_ratio",
                                       {"namespace": NS, "name": "chat", "signal": "requests"}) is None
    assert "prescaler_forecast_live_error" in controller_names()


def test_the_forecast_at_lead_reads_the_window_the_predictive_stage_reads(kube, clock, prom, forecaster) -> None:
    # A peak from 6 to 8 minutes ahead: with a 5 m lead and a 1 m interval the window is [5 m, 6 m],
    # whose bins are the one at 5 m (base) and the one at 6 m (the peak).
    kube.create("apps/v1", "deployments", deployment(replicas=2))
    kube.create(*PA, autoscaler())
    origin = clock.now().replace(second=0, microsecond=0)

    def make(workload: str) -> WorkloadForecast:
        f = flat_then_peak(origin, base=2.0, peak=7.0, peak_from_s=360, peak_to_s=480, generated_at=clock.now(),
                           quantile_spread=1.0, workload=workload)
        return WorkloadForecast(workload=workload, forecasts={"requests": f})
    forecaster.make = make
    prom.rates["vllm:request_success_total"] = 2.0
    reconciler = make_reconciler(kube, prom, forecaster)
    _sync(kube, reconciler, clock, prom, 8.0)
    assert _value(reconciler.metrics, "prescaler_forecast_at_lead", signal="requests", quantile="0.9") == 7.0
    assert _stages(reconciler.metrics)["predictive"] == 4  # ceil(7 / 2)
    clock.advance(timedelta(minutes=4).total_seconds())  # the window is now past the peak
    _sync(kube, reconciler, clock, prom, 8.0)
    assert _value(reconciler.metrics, "prescaler_forecast_at_lead", signal="requests", quantile="0.9") == 2.0


def _series_of(metrics: ControllerMetrics, name: str) -> list[str]:
    return [s.name for f in metrics.registry.collect() if f.type == "gauge" for s in f.samples
            if s.labels.get("name") == name]


def test_a_deleted_autoscaler_and_a_standby_replica_export_no_per_autoscaler_series(kube, clock, prom,
                                                                                   forecaster) -> None:
    kube.create("apps/v1", "deployments", deployment(replicas=2))
    kube.create(*PA, autoscaler())
    _flat(forecaster, clock, 9.0)
    prom.rates["vllm:request_success_total"] = 3.0
    prom.pod_metrics["vllm:num_requests_running"] = {p: 8.0 for p in sync_pods(kube)}
    reconciler = make_reconciler(kube, prom, forecaster)
    controller = Controller(reconciler, kube_client(kube), clock)
    assert [o.key for o in controller.step()] == [f"{NS}/chat"]
    assert "prescaler_desired_replicas" in _series_of(reconciler.metrics, "chat")

    kube.delete(*PA, "chat")
    clock.advance(15)
    assert controller.step() == []
    assert _series_of(reconciler.metrics, "chat") == [], "a deleted autoscaler's series are removed"

    # A replica that loses the lease stops exporting what it decided as leader.
    kube.create(*PA, autoscaler())
    elector = LeaseElector(kube_client(kube), NS, "prescaler-controller", "a", clock, lease_duration_seconds=15)
    rival = LeaseElector(kube_client(kube), NS, "prescaler-controller", "b", clock, lease_duration_seconds=15)
    controller = Controller(reconciler, kube_client(kube), clock, elector=elector)
    clock.advance(15)
    assert [o.key for o in controller.step()] == [f"{NS}/chat"]
    assert "prescaler_desired_replicas" in _series_of(reconciler.metrics, "chat")
    elector.release()
    assert rival.try_acquire_or_renew()
    clock.advance(1)
    assert controller.step() == []
    assert _series_of(reconciler.metrics, "chat") == []
    assert reconciler.metrics.registry.get_sample_value("prescaler_leader") == 0

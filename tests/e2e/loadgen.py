"""Open-loop load: Poisson arrivals at a rate that follows a schedule, each request recorded.

Open loop, as real users are: a request is sent at its arrival time whether or not earlier ones have
finished, so an under-provisioned service builds a queue instead of slowing the generator down.
Every request ends as exactly one Outcome: completed (HTTP 200), rejected (any other status, kept),
or failed (no HTTP answer: the exception's name). `accounted()` checks that none is missing.
"""

from __future__ import annotations

import json
import random
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Callable

from tests.vllm.tinymodel import CORPUS

CLIENT_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Outcome:
    sent_at: float  # time.monotonic()
    latency: float
    status: int | None  # None: no HTTP answer
    error: str = ""
    completion_tokens: int = 0


@dataclass(frozen=True)
class Shape:
    """Tokens per request: prompt words and max_tokens (the trace's token columns decide them)."""

    prompt_words: int = 24
    max_tokens: int = 48


def prompt(words: int, rng: random.Random) -> str:
    vocabulary = " ".join(CORPUS).split()
    return " ".join(rng.choice(vocabulary) for _ in range(words))


class LoadGenerator:
    """`run(rate, seconds)`: rate(t) is requests per second at t seconds after the start."""

    def __init__(self, url: str, *, model: str = "m-small", seed: int = 0,
                 shape: Callable[[float], Shape] = lambda _t: Shape()):
        self.url, self.model, self.shape = url, model, shape
        self.rng = random.Random(seed)
        self.outcomes: list[Outcome] = []
        self.sent = 0
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self.stop = threading.Event()

    def _one(self, sent_at: float, body: bytes) -> None:
        request = urllib.request.Request(f"{self.url}/v1/completions", body, {"Content-Type": "application/json"})
        status: int | None
        error, tokens = "", 0
        try:
            with urllib.request.urlopen(request, timeout=CLIENT_TIMEOUT_S) as response:
                status = response.status
                tokens = int(json.load(response).get("usage", {}).get("completion_tokens", 0))
        except urllib.error.HTTPError as exc:
            status, error = exc.code, exc.reason if isinstance(exc.reason, str) else str(exc.reason)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            cause = exc.reason if isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, BaseException) \
                else exc  # urllib wraps a connect timeout or reset in URLError: name the real one
            status, error = None, type(cause).__name__
        outcome = Outcome(sent_at, time.monotonic() - sent_at, status, error, tokens)
        with self._lock:
            self.outcomes.append(outcome)

    def run(self, rate: Callable[[float], float], seconds: float) -> None:
        """Send until `seconds` have passed (or `stop` is set); returns once every request has ended."""
        start = time.monotonic()
        t = 0.0
        while t < seconds and not self.stop.is_set():
            r = max(rate(t), 1e-6)
            t += self.rng.expovariate(r)
            delay = start + t - time.monotonic()
            if delay > 0 and self.stop.wait(delay):
                break
            if t >= seconds:
                break
            shape = self.shape(t)
            body = json.dumps({"model": self.model, "prompt": prompt(shape.prompt_words, self.rng),
                               "max_tokens": shape.max_tokens, "ignore_eos": True}).encode()
            thread = threading.Thread(target=self._one, args=(time.monotonic(), body), daemon=True)
            thread.start()
            self._threads.append(thread)
            self.sent += 1
        for thread in self._threads:
            thread.join(timeout=CLIENT_TIMEOUT_S + 5)

    def accounted(self) -> dict[str, int]:
        """sent, completed, rejected (by status) and failed; `missing` is what has no outcome."""
        with self._lock:
            outcomes = list(self.outcomes)
        counts: dict[str, int] = {"sent": self.sent, "completed": 0, "failed": 0}
        for o in outcomes:
            if o.status == 200:
                counts["completed"] += 1
            elif o.status is None:
                counts["failed"] += 1
            else:
                counts[f"rejected_{o.status}"] = counts.get(f"rejected_{o.status}", 0) + 1
        counts["missing"] = self.sent - len(outcomes)
        return counts

    def errors(self) -> dict[str, int]:
        """Requests with no HTTP answer, by the client's exception."""
        with self._lock:
            failed = [o.error for o in self.outcomes if o.status is None]
        return {e: failed.count(e) for e in sorted(set(failed))}

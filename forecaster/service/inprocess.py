"""The forecaster service without HTTP, for the controller's single-binary mode.

The same scheduler (retraining in worker processes, forecasts refreshed every interval) and the same
cache and slicing as the REST route, run on an asyncio loop in a background thread, so a small
cluster can run one process instead of two. Callers read forecasts with `get`, which answers from the
cache and never waits for training.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from concurrent.futures import Executor
from datetime import timedelta

from forecaster.contract import Clock, WorkloadForecast, system_clock
from forecaster.errors import ForecasterError
from forecaster.service.cache import slice_forecast
from forecaster.service.config import ServiceConfig
from forecaster.service.server import build_service
from forecaster.service.workloads import WorkloadSource


class InProcessUnavailable(ForecasterError):
    """No forecast can be served for this request (unknown workload, no model yet, unserved quantile)."""


class InProcessForecaster:
    def __init__(self, config: ServiceConfig, *, clock: Clock = system_clock,
                 executor: Executor | None = None, poll_seconds: float = 1.0,
                 workloads: WorkloadSource | None = None):
        self._service = build_service(config, clock=clock, executor=executor, run_scheduler=False,
                                      workloads=workloads)
        self._poll_seconds = poll_seconds
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    @property
    def state(self):
        return self._service.state

    def start(self) -> "InProcessForecaster":
        """Run the scheduler (retrain and refresh) on its own event loop in a daemon thread."""
        started = threading.Event()

        async def main() -> None:
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
            started.set()
            await self.state.scheduler.run(self._stop, self._poll_seconds)
            await self.state.scheduler.wait_idle()

        self._thread = threading.Thread(target=asyncio.run, args=(main(),), name="forecaster", daemon=True)
        self._thread.start()
        started.wait(timeout=10)
        return self

    def close(self, timeout: float = 30.0) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout)

    def get(self, workload: str, *, horizon_seconds: float, quantiles: Sequence[float],
            step_seconds: int | None = None) -> WorkloadForecast:
        """The cached forecast of every signal of `workload` from now on, as the REST route gives it."""
        try:
            settings = self.state.workload(workload)
            entry = self.state.entry(workload)
        except (KeyError, ForecasterError) as exc:
            raise InProcessUnavailable(f"forecast for {workload}: {exc}") from exc
        unserved = [q for q in quantiles if q not in settings.served_quantiles]
        if unserved:
            raise InProcessUnavailable(
                f"forecast for {workload}: quantiles {unserved} are not served "
                f"(serves {list(settings.served_quantiles)})"
            )
        now = self.state.clock()
        return WorkloadForecast(workload=workload, forecasts={
            signal: slice_forecast(forecast, start=now, horizon=timedelta(seconds=horizon_seconds),
                                   quantiles=list(quantiles), step_seconds=step_seconds)
            for signal, forecast in entry.forecast.forecasts.items()
        })

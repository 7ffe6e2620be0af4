"""The forecaster service over HTTP, read with the contract types only (forecaster.contract).

`GET /v1/workloads/{workload}/forecast?horizon=&quantiles=&step=` returns a WorkloadForecast. Any
failure (refused, timeout, non-2xx, a body that is not a valid WorkloadForecast) is one error,
ForecastUnavailable, naming the workload and the cause: the policy then abstains from the predictive
stage with ForecastMissing (docs/architecture.md, the decision).
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Protocol, Sequence
from urllib.parse import quote

import httpx
from pydantic import ValidationError

from forecaster.contract import WorkloadForecast, quantile_key

from .errors import ForecastUnavailable


class ForecastProvider(Protocol):
    """Where forecasts come from: this HTTP client, or an in-process provider (single-binary mode,
    prescaler.inprocess.InProcessForecasts, handed in by the composition root)."""

    def get(self, workload: str, *, horizon_seconds: float, quantiles: Sequence[float],
            step_seconds: int | None = None) -> WorkloadForecast: ...


class HttpForecastClient:
    def __init__(self, base_url: str, *, timeout: float = 2.0, token: str | None = None,
                 token_file: str | None = None, verify: str | bool = True,
                 transport: httpx.BaseTransport | None = None):
        """verify: True (system CAs), False, or a CA bundle path (the forecaster's self-signed serving cert).
        token_file: a file holding the bearer token (a mounted Secret), read again for each request so a
        rotated Secret is used without a restart (kubelet updates the file in place)."""
        if token and token_file:
            raise ValueError("give token or token_file, not both")
        self._token_file = token_file
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        tls: ssl.SSLContext | bool = ssl.create_default_context(cafile=verify) if isinstance(verify, str) else verify
        self._http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout, headers=headers,
                                  transport=transport, verify=tls)

    def close(self) -> None:
        self._http.close()

    def get(self, workload: str, *, horizon_seconds: float, quantiles: Sequence[float],
            step_seconds: int | None = None) -> WorkloadForecast:
        params: dict[str, str] = {"horizon": f"{int(horizon_seconds)}s",
                                  "quantiles": ",".join(quantile_key(q) for q in quantiles)}
        if step_seconds:
            params["step"] = f"{int(step_seconds)}s"
        path = f"/v1/workloads/{quote(workload, safe='')}/forecast"
        headers = {}
        if self._token_file is not None:
            try:
                token = Path(self._token_file).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ForecastUnavailable(f"forecast for {workload}: cannot read the token file "
                                          f"{self._token_file}: {exc.strerror}") from exc
            if not token:
                raise ForecastUnavailable(f"forecast for {workload}: the token file {self._token_file} is empty")
            headers["Authorization"] = f"Bearer {token}"
        try:
            response = self._http.get(path, params=params, headers=headers)
        except httpx.HTTPError as exc:
            raise ForecastUnavailable(f"forecast for {workload}: {type(exc).__name__}: {exc}") from exc
        if response.status_code != 200:
            raise ForecastUnavailable(
                f"forecast for {workload}: HTTP {response.status_code}: {response.text[:200]}")
        try:
            forecast = WorkloadForecast.model_validate_json(response.content)
        except ValidationError as exc:
            raise ForecastUnavailable(f"forecast for {workload}: not a WorkloadForecast: {exc}") from exc
        if forecast.workload != workload:
            raise ForecastUnavailable(
                f"forecast for {workload}: the service answered for workload {forecast.workload!r}")
        return forecast

"""The forecast types: one forecast per signal, a point per future bin.

Plain pydantic types, no statistics libraries, so the controller installs and imports without
Prophet or statsmodels. The forecaster service serialises these over HTTP; the controller and the
simulator read them back with the same types.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from forecaster.contract.window import overlapping_bins

Signal = Literal["requests", "prompt_tokens", "output_tokens"]
SIGNALS: tuple[Signal, ...] = ("requests", "prompt_tokens", "output_tokens")

DEFAULT_QUANTILES: tuple[float, ...] = (0.5, 0.9, 0.95)


def quantile_key(q: float) -> str:
    """The name of a quantile column and JSON key: 0.9 -> "0.9" (no float noise such as 0.90000001)."""
    if not 0.0 < q < 1.0:
        raise ValueError(f"quantile {q!r} must be strictly between 0 and 1")
    return format(round(q, 6), "g")


class ForecastPoint(BaseModel):
    """One future bin: the mean rate and its quantiles, all in units per second."""

    model_config = ConfigDict(frozen=True)

    timestamp: datetime
    mean: float
    quantiles: dict[str, float] = Field(description='quantile key ("0.9") -> value')

    @field_validator("timestamp")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("timestamp must carry a timezone (UTC)")
        return value.astimezone(timezone.utc)

    @model_validator(mode="after")
    def _quantiles_in_order(self) -> "ForecastPoint":
        ordered = sorted(self.quantiles.items(), key=lambda kv: float(kv[0]))
        values = [v for _, v in ordered]
        if any(b < a - 1e-9 * max(1.0, abs(a)) for a, b in zip(values, values[1:])):
            raise ValueError(f"quantiles must not decrease with the level: {dict(ordered)}")
        return self

    def quantile(self, q: float) -> float:
        key = quantile_key(q)
        if key not in self.quantiles:
            raise KeyError(f"quantile {key} not in forecast (has {sorted(self.quantiles)})")
        return self.quantiles[key]


class Forecast(BaseModel):
    """A forecast of one signal of one workload, a point per bin from the first future bin on."""

    model_config = ConfigDict(frozen=True)

    workload: str
    signal: Signal
    model: str = Field(description="estimator name, e.g. gbm or seasonal_naive_daily")
    model_version: str | None = None
    generated_at: datetime
    step_seconds: int = Field(gt=0)
    points: list[ForecastPoint]

    @field_validator("generated_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("generated_at must carry a timezone (UTC)")
        return value.astimezone(timezone.utc)

    @model_validator(mode="after")
    def _points_regular(self) -> "Forecast":
        for a, b in zip(self.points, self.points[1:]):
            if (b.timestamp - a.timestamp).total_seconds() != self.step_seconds:
                raise ValueError(
                    f"points must be {self.step_seconds} s apart: {a.timestamp} then {b.timestamp}"
                )
        return self

    def window_max(self, start: datetime, end: datetime, q: float) -> float | None:
        """The largest quantile-`q` value over bins overlapping [start, end]; None if none overlap.

        A bin stamped t covers [t, t + step): it overlaps the window when t <= end and t + step > start
        (the rule of forecaster.contract.window, found by arithmetic on the regular points).
        """
        points = self.points
        if not points:
            return None
        lo, hi = overlapping_bins(points[0].timestamp.timestamp(), self.step_seconds, len(points),
                                  start.timestamp(), end.timestamp())
        return max((points[i].quantile(q) for i in range(lo, hi)), default=None)


class WorkloadForecast(BaseModel):
    """The forecasts of every configured signal of one workload, as the service returns them."""

    model_config = ConfigDict(frozen=True)

    workload: str
    forecasts: dict[str, Forecast]

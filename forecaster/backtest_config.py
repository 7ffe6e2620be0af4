"""What one backtest evaluates: horizons, origins, refits, quantiles and the ranking objective."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from forecaster.contract import quantile_key
from forecaster.objective import parse_objective
from forecaster.series import format_duration, parse_duration

# The 0.9 interval is the central one between these quantiles (issue 2: "coverage of the 0.9 interval").
INTERVAL = (0.05, 0.95)
DEFAULT_QUANTILES = (0.05, 0.5, 0.9, 0.95)
DEFAULT_HORIZONS = ("15m", "60m")


class BacktestConfig(BaseModel):
    """Settings of one backtest; durations accept '15m', '1h' or seconds."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    horizons: tuple[int, ...] = Field(default=(900, 3600), description="horizons in seconds")
    eval_days: float = Field(default=3.0, gt=0, description="span of the origins at the series' end")
    origin_every: int = Field(default=3600, gt=0, description="seconds between origins")
    refits: int = Field(default=10, ge=1, description="fits per model; origins between reuse the fit")
    quantiles: tuple[float, ...] = DEFAULT_QUANTILES
    controller_quantile: float = Field(default=0.9, gt=0, lt=1)
    objective: str | None = Field(
        default=None,
        description="what ranks the ensemble's members (forecaster.objective); None: pinball at "
        "controller_quantile, the selection default",
    )

    @field_validator("horizons", mode="before")
    @classmethod
    def _parse_horizons(cls, value: Any) -> tuple[int, ...]:
        if isinstance(value, str):
            value = [v for v in value.split(",") if v.strip()]
        return tuple(int(parse_duration(v).total_seconds()) for v in value)

    @field_validator("origin_every", mode="before")
    @classmethod
    def _parse_every(cls, value: Any) -> int:
        return int(parse_duration(value).total_seconds())

    @field_validator("objective")
    @classmethod
    def _check_objective(cls, value: str | None) -> str | None:
        if value is not None:
            parse_objective(value)  # raises, naming the objectives it knows
        return value

    @field_validator("quantiles", mode="before")
    @classmethod
    def _sort_quantiles(cls, value: Any) -> tuple[float, ...]:
        qs = sorted({float(q) for q in value})
        for q in qs:
            quantile_key(q)  # raises on a level outside (0, 1)
        return tuple(qs)

    @model_validator(mode="after")
    def _consistent(self) -> "BacktestConfig":
        if not self.horizons:
            raise ValueError("horizons must name at least one horizon")
        if len(set(self.horizons)) != len(self.horizons):
            raise ValueError(f"horizons repeat: {[format_duration(h) for h in self.horizons]}")
        needed = {*INTERVAL, self.controller_quantile}
        missing = sorted(q for q in needed if q not in self.quantiles)
        if missing:
            raise ValueError(
                f"quantiles {list(self.quantiles)} must include {missing}: the 0.9 interval needs "
                f"{INTERVAL[0]} and {INTERVAL[1]}, and under_rate the controller_quantile "
                f"({self.controller_quantile})"
            )
        metric, key = parse_objective(self.ranking_objective)
        if metric == "pinball" and key != "mean" and key not in {quantile_key(q) for q in self.quantiles}:
            raise ValueError(
                f"objective {self.ranking_objective} needs quantile {key} in quantiles {list(self.quantiles)}"
            )
        return self

    @property
    def ranking_objective(self) -> str:
        return self.objective or f"pinball@{quantile_key(self.controller_quantile)}"

"""The model card: what `card.json` holds, the names the registry accepts, and library versions.

A card is strict JSON (numpy scalars unwrapped, NaN as null, timestamps as ISO 8601 UTC) and is
validated on every read, so a card that describes another workload, signal or version, or whose
version does not name its artifact's hash, is refused (forecaster.registry.storage).

Names are validated here because they become directory names: a workload is an RFC 1123 label, a
signal a lowercase identifier, a version `YYYYMMDDTHHMMSSZ[.NNN]-<6 hex>`; none can leave the root.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import math
import platform
import re
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Final, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from forecaster.contract import quantile_key
from forecaster.errors import RegistryError

if TYPE_CHECKING:
    import pandas as pd

    from forecaster.estimators.base import Estimator

ARTIFACT_FILE: Final = "artifact.pkl"
CARD_FILE = "card.json"
CARD_SCHEMA_VERSION: Final = 1

# A workload names a Kubernetes object's model: an RFC 1123 label (what a Deployment name part
# must be), which also rules out '/', '..' and anything else that could leave the registry root.
WORKLOAD_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
# Signals are identifiers such as prompt_tokens (underscores, so not DNS labels).
SIGNAL_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
VERSION_NAME = re.compile(r"^(?P<stamp>\d{8}T\d{6}Z)(?:\.(?P<counter>\d{3}))?-(?P<hex>[0-9a-f]{6})$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class InvalidName(RegistryError, ValueError):
    """A workload, signal or version name that the registry refuses (it could escape the root)."""


def validate_workload(name: str) -> str:
    """Return `name` if it is a valid workload name (RFC 1123 label), else raise InvalidName."""
    if not isinstance(name, str) or not WORKLOAD_NAME.match(name):
        raise InvalidName(
            f"workload name {name!r} is invalid: use 1-63 lowercase letters, digits and '-', "
            "starting and ending with a letter or digit (an RFC 1123 label, like a Deployment name)"
        )
    return name


def validate_signal(name: str) -> str:
    """Return `name` if it is a valid signal name (lowercase identifier), else raise InvalidName."""
    if not isinstance(name, str) or not SIGNAL_NAME.match(name):
        raise InvalidName(
            f"signal name {name!r} is invalid: use 1-63 lowercase letters, digits and '_', "
            "starting with a letter (e.g. requests, prompt_tokens)"
        )
    return name


def validate_version(name: str) -> str:
    """Return `name` if it is a registry version string, else raise InvalidName."""
    if not isinstance(name, str) or not VERSION_NAME.match(name):
        raise InvalidName(
            f"version {name!r} is invalid: expected YYYYMMDDTHHMMSSZ-<6 hex> "
            "(optionally .NNN before the hex), or 'latest'"
        )
    return name


def library_versions() -> dict[str, str]:
    """Versions of what a pickle depends on, read from package metadata (imports nothing heavy)."""
    versions = {"python": platform.python_version()}
    for key, dist in (
        ("numpy", "numpy"),
        ("pandas", "pandas"),
        ("statsmodels", "statsmodels"),
        ("prophet", "prophet"),
        ("sklearn", "scikit-learn"),
        ("prescaler", "prescaler"),
    ):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[key] = importlib.metadata.version(dist)
    return versions


def _jsonable(value: Any, where: str) -> Any:
    """`value` as plain JSON types: numpy scalars and arrays unwrapped, tuples as lists, NaN as null.

    Cards hold free-form params and scores produced by numpy code; a card must round-trip through
    strict JSON, so anything else is refused here, naming the key, rather than when it is written.
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{where}: key {key!r} must be a string")
            out[key] = _jsonable(item, f"{where}.{key}")
        return out
    if isinstance(value, (list, tuple)):
        return [_jsonable(item, f"{where}[{i}]") for i, item in enumerate(value)]
    tolist = getattr(value, "tolist", None)  # numpy scalars and arrays
    if callable(tolist):
        return _jsonable(tolist(), where)
    isoformat = getattr(value, "isoformat", None)  # pandas Timestamp
    if callable(isoformat):
        return isoformat()
    raise ValueError(f"{where}: value {value!r} of type {type(value).__name__} is not JSON-serialisable")


def aware_utc(value: datetime, field: str) -> datetime:
    """`value` in UTC; a naive one is refused, naming `field` (a card's times are never guessed)."""
    if value.tzinfo is None:
        raise ValueError(f"{field} must carry a timezone (UTC), got naive {value.isoformat()}")
    return value.astimezone(timezone.utc)


class TrainingWindow(BaseModel):
    """The bins the model was fitted on: first and last bin start (inclusive), how many, how many observed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    start: datetime
    end: datetime
    bins: int = Field(ge=1)
    observed_bins: int = Field(ge=0)

    @field_validator("start", "end")
    @classmethod
    def _utc(cls, value: datetime, info: ValidationInfo) -> datetime:
        return aware_utc(value, f"training_window.{info.field_name}")

    @model_validator(mode="after")
    def _consistent(self) -> "TrainingWindow":
        if self.end < self.start:
            raise ValueError(
                f"training_window.end ({self.end.isoformat()}) is before start ({self.start.isoformat()})"
            )
        if self.observed_bins > self.bins:
            raise ValueError(
                f"training_window.observed_bins ({self.observed_bins}) exceeds bins ({self.bins})"
            )
        return self

    @classmethod
    def of(cls, series: "pd.Series") -> "TrainingWindow":
        """The window of a prepared series (see forecaster.series)."""
        if len(series) == 0:
            raise ValueError("training window of an empty series")
        return cls(
            start=series.index[0].to_pydatetime(),
            end=series.index[-1].to_pydatetime(),
            bins=len(series),
            observed_bins=int(series.notna().sum()),
        )


class Selection(BaseModel):
    """Why this model: the objective, the winner, the best baseline, in words. Extra keys are kept."""

    model_config = ConfigDict(frozen=True, extra="allow")

    objective: str
    selected: str
    best_baseline: str | None = None
    reason: str

    @model_validator(mode="before")
    @classmethod
    def _plain(cls, data: Any) -> Any:
        return _jsonable(data, "selection") if isinstance(data, Mapping) else data


class _CardBody(BaseModel):
    """The fields a trainer supplies (shared by the draft and the card)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    workload: str
    signal: str
    quantiles: tuple[float, ...] = (0.5, 0.9, 0.95)
    training_window: TrainingWindow
    backtest: dict[str, Any] = Field(default_factory=dict)
    selection: Selection | None = None

    @field_validator("workload")
    @classmethod
    def _workload(cls, value: str) -> str:
        return validate_workload(value)

    @field_validator("signal")
    @classmethod
    def _signal(cls, value: str) -> str:
        return validate_signal(value)

    @field_validator("quantiles")
    @classmethod
    def _quantiles(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        for q in value:
            quantile_key(q)  # raises for q outside (0, 1)
        if list(value) != sorted(set(value)):
            raise ValueError(f"quantiles must be strictly increasing, got {list(value)}")
        return value

    @field_validator("backtest", mode="before")
    @classmethod
    def _backtest(cls, value: Any) -> Any:
        return _jsonable(value, "backtest") if isinstance(value, Mapping) else value


class CardDraft(_CardBody):
    """What `Registry.save` needs besides the estimator. `model`, `params` and `bin_seconds` default
    to the estimator's own (and must agree with it when given); `library_versions` to this process's."""

    model: str | None = None
    params: dict[str, Any] | None = None
    bin_seconds: int | None = Field(default=None, gt=0)
    library_versions: dict[str, str] | None = None

    @field_validator("params", mode="before")
    @classmethod
    def _params(cls, value: Any) -> Any:
        return _jsonable(value, "params") if isinstance(value, Mapping) else value


_CARD_HEAD = ("card_version", "workload", "signal", "version", "model", "created_at", "bin_seconds")


class ModelCard(_CardBody):
    """Everything known about one stored model version; `card.json` is this, as JSON."""

    card_version: Literal[1] = CARD_SCHEMA_VERSION
    version: str
    model: str = Field(description="estimator name, e.g. gbm or seasonal_naive_daily")
    params: dict[str, Any] = Field(default_factory=dict)
    bin_seconds: int = Field(gt=0)
    library_versions: dict[str, str]
    artifact_sha256: str
    artifact_file: Literal["artifact.pkl"] = ARTIFACT_FILE
    created_at: datetime

    @field_validator("version")
    @classmethod
    def _version(cls, value: str) -> str:
        return validate_version(value)

    @field_validator("params", mode="before")
    @classmethod
    def _params(cls, value: Any) -> Any:
        return _jsonable(value, "params") if isinstance(value, Mapping) else value

    @field_validator("artifact_sha256")
    @classmethod
    def _sha(cls, value: str) -> str:
        if not _SHA256.match(value):
            raise ValueError(f"artifact_sha256 must be 64 lowercase hex digits, got {value!r}")
        return value

    @field_validator("created_at")
    @classmethod
    def _created(cls, value: datetime) -> datetime:
        return aware_utc(value, "created_at")

    @model_validator(mode="after")
    def _cross(self) -> "ModelCard":
        hex6 = VERSION_NAME.match(self.version).group("hex")  # type: ignore[union-attr]
        if not self.artifact_sha256.startswith(hex6):
            raise ValueError(
                f"version {self.version} names artifact hash {hex6}, but artifact_sha256 is "
                f"{self.artifact_sha256[:12]}..."
            )
        window = self.training_window
        span = (window.end - window.start).total_seconds()
        expected = span / self.bin_seconds + 1
        if expected != window.bins:
            raise ValueError(
                f"training_window has {window.bins} bins, but {window.start.isoformat()} to "
                f"{window.end.isoformat()} at bin_seconds {self.bin_seconds} is {expected:g} bins"
            )
        if self.selection is not None and self.selection.selected != self.model:
            raise ValueError(
                f"selection.selected ({self.selection.selected!r}) must be the stored model ({self.model!r})"
            )
        return self

    @model_serializer(mode="wrap")
    def _identity_first(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Field order follows the class hierarchy; a person reading card.json wants what and which
        # version first, then the details.
        data = handler(self)
        head = {k: data[k] for k in _CARD_HEAD if k in data}
        return {**head, **{k: v for k, v in data.items() if k not in head}}

    def library_mismatches(self, current: Mapping[str, str] | None = None) -> dict[str, tuple[str, str]]:
        """Libraries whose version differs from this process's: name -> (card's, current)."""
        current = library_versions() if current is None else current
        return {
            name: (version, current[name])
            for name, version in self.library_versions.items()
            if name in current and current[name] != version
        }


def draft_for(estimator: "Estimator", card_fields: Mapping[str, Any] | CardDraft) -> CardDraft:
    """The validated draft of a card for `estimator`, after checking it agrees with the fit."""
    try:
        draft = card_fields if isinstance(card_fields, CardDraft) else CardDraft.model_validate(card_fields)
    except ValidationError as exc:
        raise RegistryError(f"invalid card fields for {type(estimator).__name__}: {exc}") from exc
    if draft.model is not None and draft.model != estimator.name:
        raise RegistryError(f"card model {draft.model!r} differs from the estimator's name {estimator.name!r}")
    fitted_bin = int(estimator.step_seconds_)
    if draft.bin_seconds is not None and draft.bin_seconds != fitted_bin:
        raise RegistryError(
            f"card bin_seconds ({draft.bin_seconds}) differs from the bin the estimator was fitted at ({fitted_bin})"
        )
    fitted_end = estimator.last_timestamp_.to_pydatetime()
    if draft.training_window.end != fitted_end:
        raise RegistryError(
            f"card training_window.end ({draft.training_window.end.isoformat()}) is not the last bin the "
            f"estimator was fitted on ({fitted_end.isoformat()}); build it with TrainingWindow.of(series)"
        )
    return draft


def card_fields_for(
    draft: CardDraft, estimator: "Estimator", *, artifact_sha256: str, created_at: datetime
) -> dict[str, Any]:
    """Every field of the card but `version`, which the storage picks when it finds a free name."""
    body = draft.model_dump(exclude={"model", "params", "bin_seconds", "library_versions"})
    return {
        **body,
        "model": estimator.name,
        "params": draft.params if draft.params is not None else estimator.get_params(),
        "bin_seconds": int(estimator.step_seconds_),
        "library_versions": draft.library_versions or library_versions(),
        "artifact_sha256": artifact_sha256,
        "created_at": created_at,
    }

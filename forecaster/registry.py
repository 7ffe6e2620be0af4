"""The model registry: fitted estimators on disk, each with a model card, written atomically.

Layout (DESIGN.md "Registry"):

    <root>/<workload>/<signal>/<version>/artifact.pkl   the pickled, fitted Estimator
    <root>/<workload>/<signal>/<version>/card.json      ModelCard: what it is, how it scored, sha256

A version is `YYYYMMDDTHHMMSSZ-<first 6 hex of the artifact's sha256>`; a second save in the same
second gets a counter between the stamp and the hash (`...Z.001-<hex>`), so plain string order is
save order ('-' sorts before '.', and the counter is zero-padded).

Crash safety: a save writes both files into a dot-prefixed temp dir beside the versions, fsyncs
them, then renames the dir into place (rename(2) is atomic, and it refuses to replace a non-empty
directory, so two writers can never merge). A crash at any point leaves either no new version or a
whole one; leftover temp dirs are ignored by every reader and removed by `cleanup_temp`.

Trust: the sha256 catches corruption and mismatched files, not tampering. Unpickling runs code, so
the registry root must be as trusted as the code itself (it is written only by `prescaler train`).
"""

from __future__ import annotations

import builtins
import contextlib
import importlib.metadata
import logging
import math
import os
import pickle
import platform
import re
import shutil
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from forecaster.atomic import fsync_dir, sha256_bytes
from forecaster.contract import quantile_key
from forecaster.errors import ArtifactCorrupt, NotFitted, RegistryError

if TYPE_CHECKING:
    import pandas as pd

    from forecaster.estimators.base import Estimator

__all__ = [
    "ARTIFACT_FILE",
    "CARD_FILE",
    "CardDraft",
    "InvalidName",
    "ModelCard",
    "Registry",
    "Selection",
    "TrainingWindow",
    "library_versions",
    "validate_signal",
    "validate_workload",
]

log = logging.getLogger(__name__)

ARTIFACT_FILE = "artifact.pkl"
CARD_FILE = "card.json"
TEMP_PREFIX = ".tmp-"
TRASH_PREFIX = ".trash-"
CARD_SCHEMA_VERSION = 1

# A workload names a Kubernetes object's model: an RFC 1123 label (what a Deployment name part
# must be), which also rules out '/', '..' and anything else that could leave the registry root.
_WORKLOAD = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
# Signals are identifiers such as prompt_tokens (underscores, so not DNS labels).
_SIGNAL = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_VERSION = re.compile(r"^(?P<stamp>\d{8}T\d{6}Z)(?:\.(?P<counter>\d{3}))?-(?P<hex>[0-9a-f]{6})$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
_MAX_PER_SECOND = 999


class InvalidName(RegistryError, ValueError):
    """A workload, signal or version name that the registry refuses (it could escape the root)."""


def validate_workload(name: str) -> str:
    """Return `name` if it is a valid workload name (RFC 1123 label), else raise InvalidName."""
    if not isinstance(name, str) or not _WORKLOAD.match(name):
        raise InvalidName(
            f"workload name {name!r} is invalid: use 1-63 lowercase letters, digits and '-', "
            "starting and ending with a letter or digit (an RFC 1123 label, like a Deployment name)"
        )
    return name


def validate_signal(name: str) -> str:
    """Return `name` if it is a valid signal name (lowercase identifier), else raise InvalidName."""
    if not isinstance(name, str) or not _SIGNAL.match(name):
        raise InvalidName(
            f"signal name {name!r} is invalid: use 1-63 lowercase letters, digits and '_', "
            "starting with a letter (e.g. requests, prompt_tokens)"
        )
    return name


def validate_version(name: str) -> str:
    """Return `name` if it is a registry version string, else raise InvalidName."""
    if not isinstance(name, str) or not _VERSION.match(name):
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


def _aware_utc(value: datetime, field: str) -> datetime:
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
    def _utc(cls, value: datetime, info: Any) -> datetime:
        return _aware_utc(value, f"training_window.{info.field_name}")

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
        return _aware_utc(value, "created_at")

    @model_validator(mode="after")
    def _cross(self) -> "ModelCard":
        hex6 = _VERSION.match(self.version).group("hex")  # type: ignore[union-attr]
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


def _corrupt(path: Path, message: str, *, expected: str | None = None, actual: str | None = None) -> ArtifactCorrupt:
    error = ArtifactCorrupt(f"{path}: {message}")
    error.path, error.expected_sha256, error.actual_sha256 = str(path), expected, actual  # type: ignore[attr-defined]
    return error


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


class Registry:
    """Versions of fitted estimators under `root` (see the module docstring for layout and safety).

    `clock` returns the current time (tz-aware); tests pass a fixed one.
    """

    def __init__(self, root: str | Path, *, clock: Callable[[], datetime] = _utc_now):
        self.root = Path(root)
        self._clock = clock

    def __repr__(self) -> str:
        return f"Registry({str(self.root)!r})"

    # ---- paths and listing ---------------------------------------------------------------------

    def path(self, workload: str, signal: str, version: str | None = None) -> Path:
        """The directory of a workload's signal, or of one version of it (names validated)."""
        base = self.root / validate_workload(workload) / validate_signal(signal)
        return base if version is None else base / validate_version(version)

    def workloads(self) -> builtins.list[str]:
        """Workloads with at least a directory in the registry, sorted."""
        return self._children(self.root, _WORKLOAD)

    def signals(self, workload: str) -> builtins.list[str]:
        """Signals stored for `workload`, sorted; empty when the workload has none."""
        return self._children(self.root / validate_workload(workload), _SIGNAL)

    def versions(self, workload: str, signal: str) -> builtins.list[str]:
        """Every complete version directory, oldest first (temp and trash dirs are never listed)."""
        return self._children(self.path(workload, signal), _VERSION)

    @staticmethod
    def _children(directory: Path, pattern: re.Pattern[str]) -> builtins.list[str]:
        if not directory.is_dir():
            return []
        return sorted(e.name for e in os.scandir(directory) if e.is_dir() and pattern.match(e.name))

    def list(self, workload: str | None = None, signal: str | None = None) -> builtins.list[ModelCard]:
        """Cards of every stored version (optionally of one workload and/or signal), sorted by
        workload, signal, version. Unreadable cards are skipped with a warning; checksums are not
        read here (use `verify` or `latest` for that)."""
        cards = []
        for w in [validate_workload(workload)] if workload is not None else self.workloads():
            for s in [validate_signal(signal)] if signal is not None else self.signals(w):
                for v in self.versions(w, s):
                    try:
                        cards.append(self.card(w, s, v))
                    except RegistryError as exc:
                        log.warning("registry: skipping %s/%s/%s: %s", w, s, v, exc)
        return cards

    # ---- reading -------------------------------------------------------------------------------

    def card(self, workload: str, signal: str, version: str) -> ModelCard:
        """The validated card of one version (its artifact is not read). ArtifactCorrupt when the
        card is missing, unreadable, or describes another workload, signal or version."""
        directory = self.path(workload, signal, version)
        card_path = directory / CARD_FILE
        if not directory.is_dir():
            raise RegistryError(
                f"no version {version} of {workload}/{signal} in {self.root}; "
                f"have: {', '.join(self.versions(workload, signal)) or 'none'}"
            )
        try:
            card = ModelCard.model_validate_json(card_path.read_bytes())
        except FileNotFoundError as exc:
            raise _corrupt(card_path, "card.json is missing") from exc
        except (OSError, ValidationError) as exc:
            raise _corrupt(card_path, f"card.json is unreadable or invalid: {exc}") from exc
        where = (workload, signal, version)
        said = (card.workload, card.signal, card.version)
        if said != where:
            raise _corrupt(
                card_path,
                f"mismatched card: it describes {'/'.join(said)} but is stored as {'/'.join(where)}",
            )
        return card

    def _verified_bytes(self, workload: str, signal: str, version: str) -> tuple[bytes, ModelCard]:
        """The card and the artifact's bytes, after checking those very bytes against the card."""
        card = self.card(workload, signal, version)
        artifact = self.path(workload, signal, version) / card.artifact_file
        try:
            data = artifact.read_bytes()
        except OSError as exc:
            raise _corrupt(artifact, f"artifact is unreadable: {exc}", expected=card.artifact_sha256) from exc
        actual = sha256_bytes(data)
        if actual != card.artifact_sha256:
            raise _corrupt(
                artifact,
                f"checksum mismatch: card.json expects sha256 {card.artifact_sha256}, the file has {actual}",
                expected=card.artifact_sha256,
                actual=actual,
            )
        return data, card

    def verify(self, workload: str, signal: str, version: str) -> ModelCard:
        """The card, once its artifact's sha256 matches; ArtifactCorrupt otherwise."""
        return self._verified_bytes(workload, signal, version)[1]

    def latest(self, workload: str, signal: str) -> ModelCard | None:
        """The card of the newest version whose card and checksum verify; None when there is none."""
        for version in reversed(self.versions(workload, signal)):
            try:
                return self.verify(workload, signal, version)
            except RegistryError as exc:  # corrupt, or pruned by another process since the listing
                log.warning("registry: %s/%s/%s does not verify: %s", workload, signal, version, exc)
        return None

    def load(self, workload: str, signal: str, version: str = "latest") -> tuple["Estimator", ModelCard]:
        """The fitted estimator and its card. `latest` is the newest version that verifies (a corrupt
        newer one is skipped with a warning, so the previous one keeps serving); a named version is
        loaded or refused: ArtifactCorrupt names the path and both hashes."""
        if version == "latest":
            estimator, card, _ = self.load_latest_good(workload, signal)
            return estimator, card
        data, card = self._verified_bytes(workload, signal, validate_version(version))
        artifact = self.path(workload, signal, version) / card.artifact_file
        estimator = self._unpickle(data, card, artifact)
        mismatches = card.library_mismatches()
        if mismatches:
            # A pickle usually loads across minor versions, but predictions may differ: say so.
            log.warning(
                "registry: %s was saved with other library versions: %s",
                artifact,
                ", ".join(f"{k} {a} (now {b})" for k, (a, b) in sorted(mismatches.items())),
            )
        return estimator, card

    @staticmethod
    def _unpickle(data: bytes, card: ModelCard, artifact: Path) -> "Estimator":
        from forecaster.estimators.base import Estimator

        try:
            estimator = pickle.loads(data)
        except Exception as exc:  # noqa: BLE001 - unpickling can raise nearly anything
            raise _corrupt(artifact, f"artifact cannot be unpickled: {type(exc).__name__}: {exc}") from exc
        if not isinstance(estimator, Estimator):
            raise _corrupt(artifact, f"artifact holds a {type(estimator).__name__}, not an Estimator")
        if estimator.name != card.model:
            raise _corrupt(
                artifact, f"mismatched artifact: it holds model {estimator.name!r}, the card says {card.model!r}"
            )
        return estimator

    def load_latest_good(
        self, workload: str, signal: str
    ) -> tuple["Estimator", ModelCard, builtins.list[str]]:
        """Walk back from the newest version to the newest one that loads; also return the skipped
        versions as 'VERSION: reason'. RegistryError when there is no version, or none loads."""
        versions = self.versions(workload, signal)
        if not versions:
            raise RegistryError(
                f"no model stored for workload {workload!r}, signal {signal!r} in {self.root} "
                f"(train one with: prescaler train TRACE --workload {workload} --signal {signal})"
            )
        skipped: builtins.list[str] = []
        for version in reversed(versions):
            try:
                estimator, card = self.load(workload, signal, version)
            except RegistryError as exc:  # corrupt, or pruned by another process since the listing
                log.warning("registry: skipping %s/%s/%s: %s", workload, signal, version, exc)
                skipped.append(f"{version}: {exc}")
                continue
            return estimator, card, skipped
        raise RegistryError(
            f"no version of {workload}/{signal} in {self.root} loads; skipped: " + "; ".join(skipped)
        )

    # ---- writing -------------------------------------------------------------------------------

    def save(self, estimator: "Estimator", card_fields: Mapping[str, Any] | CardDraft) -> ModelCard:
        """Store a fitted estimator as a new version and return its card. Atomic: a crash leaves
        either no new version or a complete one."""
        from forecaster.estimators.base import Estimator

        if not isinstance(estimator, Estimator):
            raise TypeError(f"save() needs an Estimator, got {type(estimator).__name__}")
        if not hasattr(estimator, "last_timestamp_"):
            raise NotFitted(f"{estimator.name}: fit() it before saving it to the registry")
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
        try:
            data = pickle.dumps(estimator, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # noqa: BLE001 - pickling errors come in many types
            raise RegistryError(f"cannot pickle {type(estimator).__name__}: {type(exc).__name__}: {exc}") from exc
        sha = sha256_bytes(data)
        created = _aware_utc(self._clock(), "clock()")
        body = draft.model_dump(exclude={"model", "params", "bin_seconds", "library_versions"})
        fields = {
            **body,
            "model": estimator.name,
            "params": draft.params if draft.params is not None else estimator.get_params(),
            "bin_seconds": fitted_bin,
            "library_versions": draft.library_versions or library_versions(),
            "artifact_sha256": sha,
            "created_at": created,
        }
        parent = self.path(draft.workload, draft.signal)
        parent.mkdir(parents=True, exist_ok=True)
        stamp = created.strftime(_STAMP_FORMAT)
        temp = parent / f"{TEMP_PREFIX}{stamp}-{uuid.uuid4().hex[:12]}"
        temp.mkdir()
        try:
            self._write_file(temp / ARTIFACT_FILE, data)
            for version in self._candidate_versions(parent, stamp, sha):
                try:
                    card = ModelCard.model_validate({**fields, "version": version})
                except ValidationError as exc:
                    raise RegistryError(f"invalid model card for {draft.workload}/{draft.signal}: {exc}") from exc
                self._write_file(temp / CARD_FILE, card.model_dump_json(indent=2).encode() + b"\n")
                fsync_dir(temp)
                try:
                    os.rename(temp, parent / version)
                except OSError:
                    if (parent / version).exists():
                        continue  # another writer took this name in the same second: next counter
                    raise
                fsync_dir(parent)
                log.info("registry: saved %s/%s/%s (%s)", draft.workload, draft.signal, version, estimator.name)
                return card
            raise RegistryError(f"more than {_MAX_PER_SECOND} saves of {parent} in the second {stamp}")
        except BaseException:
            shutil.rmtree(temp, ignore_errors=True)
            raise

    @staticmethod
    def _write_file(path: Path, data: bytes) -> None:
        with open(path, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())

    @staticmethod
    def _candidate_versions(parent: Path, stamp: str, sha: str) -> Iterator[str]:
        """Version names for a save at `stamp`, each later-sorting than every existing one that second."""
        taken = [m for e in os.listdir(parent) if (m := _VERSION.match(e)) and m.group("stamp") == stamp]
        counter = max((int(m.group("counter") or 0) + 1 for m in taken), default=0)
        for n in range(counter, _MAX_PER_SECOND + 1):
            yield f"{stamp}-{sha[:6]}" if n == 0 else f"{stamp}.{n:03d}-{sha[:6]}"

    # ---- housekeeping --------------------------------------------------------------------------

    def prune(self, workload: str, signal: str, keep: int) -> builtins.list[str]:
        """Remove all but the `keep` newest versions, never the newest one that verifies (so a corrupt
        newer version cannot push the serving one out). Returns the removed versions, oldest first."""
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
            raise ValueError(f"keep must be a whole number >= 1, got {keep!r}")
        versions = self.versions(workload, signal)
        good = self.latest(workload, signal)
        kept = set(versions[-keep:]) | ({good.version} if good is not None else set())
        removed = [v for v in versions if v not in kept]
        parent = self.path(workload, signal)
        for version in removed:
            # Rename first, so a half-deleted directory is never seen as a version.
            trash = parent / f"{TRASH_PREFIX}{version}-{uuid.uuid4().hex[:12]}"
            os.rename(parent / version, trash)
            shutil.rmtree(trash, ignore_errors=True)
        if removed:
            fsync_dir(parent)
            log.info("registry: pruned %s/%s: %s", workload, signal, ", ".join(removed))
        return removed

    def cleanup_temp(self, max_age_seconds: float = 3600.0) -> builtins.list[Path]:
        """Remove temp dirs left by crashed saves (older than `max_age_seconds`, so a save in progress
        is left alone) and trash left by interrupted prunes. Returns what was removed."""
        now = _aware_utc(self._clock(), "clock()").timestamp()
        removed: builtins.list[Path] = []
        for workload in self.workloads():
            for signal in self.signals(workload):
                parent = self.path(workload, signal)
                for entry in os.scandir(parent):
                    if not entry.is_dir(follow_symlinks=False):
                        continue
                    stale_temp = entry.name.startswith(TEMP_PREFIX) and (
                        now - entry.stat(follow_symlinks=False).st_mtime >= max_age_seconds
                    )
                    if stale_temp or entry.name.startswith(TRASH_PREFIX):
                        shutil.rmtree(entry.path, ignore_errors=True)
                        removed.append(Path(entry.path))
        return sorted(removed)

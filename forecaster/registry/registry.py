"""The model registry: fitted estimators on disk, each with a model card, written atomically.

Layout (docs/architecture.md, "The forecaster"):

    <root>/<workload>/<signal>/<version>/artifact.pkl   the pickled, fitted Estimator
    <root>/<workload>/<signal>/<version>/card.json      ModelCard: what it is, how it scored, sha256

A version is `YYYYMMDDTHHMMSSZ-<first 6 hex of the artifact's sha256>`; a second save in the same
second gets a counter between the stamp and the hash (`...Z.001-<hex>`), so plain string order is
save order ('-' sorts before '.', and the counter is zero-padded).

`Registry` composes the package's parts: the card schema and names (cards), the atomic writes and
verified reads (storage, which says what a crash leaves and what the sha256 is trusted for), and
what is removed when (retention).
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from forecaster.atomic import sha256_bytes
from forecaster.contract.clock import Clock, system_clock
from forecaster.errors import NotFitted, RegistryError
from forecaster.registry import retention, storage
from forecaster.registry.cards import (
    SIGNAL_NAME,
    VERSION_NAME,
    WORKLOAD_NAME,
    CardDraft,
    ModelCard,
    aware_utc,
    card_fields_for,
    draft_for,
    validate_signal,
    validate_version,
    validate_workload,
)

if TYPE_CHECKING:
    from forecaster.estimators.base import Estimator

log = logging.getLogger("forecaster.registry")


class Registry:
    """Versions of fitted estimators under `root` (see the module docstring for layout and safety).

    `clock` returns the current time (tz-aware); tests pass a fixed one.
    """

    # The one function that writes a file of a save; a test replaces it to crash a save halfway.
    _write_file = staticmethod(storage.write_file)

    def __init__(self, root: str | Path, *, clock: Clock = system_clock):
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
        return storage.children(self.root, WORKLOAD_NAME)

    def signals(self, workload: str) -> builtins.list[str]:
        """Signals stored for `workload`, sorted; empty when the workload has none."""
        return storage.children(self.root / validate_workload(workload), SIGNAL_NAME)

    def versions(self, workload: str, signal: str) -> builtins.list[str]:
        """Every complete version directory, oldest first (temp and trash dirs are never listed)."""
        return storage.children(self.path(workload, signal), VERSION_NAME)

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
        if not directory.is_dir():
            raise RegistryError(
                f"no version {version} of {workload}/{signal} in {self.root}; "
                f"have: {', '.join(self.versions(workload, signal)) or 'none'}"
            )
        return storage.read_card(directory, workload, signal, version)

    def _verified_bytes(self, workload: str, signal: str, version: str) -> tuple[bytes, ModelCard]:
        """The card and the artifact's bytes, after checking those very bytes against the card."""
        card = self.card(workload, signal, version)
        return storage.verified_artifact(self.path(workload, signal, version), card), card

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
        estimator = storage.unpickle(data, card, artifact)
        mismatches = card.library_mismatches()
        if mismatches:
            # A pickle usually loads across minor versions, but predictions may differ: say so.
            log.warning(
                "registry: %s was saved with other library versions: %s",
                artifact,
                ", ".join(f"{k} {a} (now {b})" for k, (a, b) in sorted(mismatches.items())),
            )
        return estimator, card

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
        draft = draft_for(estimator, card_fields)
        data = storage.pickled(estimator)
        sha = sha256_bytes(data)
        created = aware_utc(self._clock(), "clock()")
        fields = card_fields_for(draft, estimator, artifact_sha256=sha, created_at=created)

        def card_for(version: str) -> ModelCard:
            try:
                return ModelCard.model_validate({**fields, "version": version})
            except ValidationError as exc:
                raise RegistryError(f"invalid model card for {draft.workload}/{draft.signal}: {exc}") from exc

        parent = self.path(draft.workload, draft.signal)
        card = storage.write_version(parent, created, data, sha, card_for, write=self._write_file)
        self._remove_killed_saves(parent)
        log.info("registry: saved %s/%s/%s (%s)", draft.workload, draft.signal, card.version, estimator.name)
        return card

    # ---- housekeeping --------------------------------------------------------------------------

    def prune(self, workload: str, signal: str, keep: int) -> builtins.list[str]:
        """Remove all but the `keep` newest versions, never the newest one that verifies (so a corrupt
        newer version cannot push the serving one out). Returns the removed versions, oldest first."""
        retention.check_keep(keep)
        versions = self.versions(workload, signal)
        good = self.latest(workload, signal)
        removed = retention.expired(versions, keep, good.version if good is not None else None)
        retention.remove_versions(self.path(workload, signal), removed)
        if removed:
            log.info("registry: pruned %s/%s: %s", workload, signal, ", ".join(removed))
        return removed

    def _remove_killed_saves(self, parent: Path) -> None:
        """After a save, remove what killed saves and prunes left beside it (retention.after_save).
        A failure is logged, not raised: the version is saved, and the next save tries again."""
        try:
            removed = retention.after_save(parent)
        except OSError as exc:
            log.warning("registry: cleaning %s failed: %s", parent, exc)
            return
        if removed:
            log.info("registry: removed %d leftover(s) of killed saves from %s", len(removed), parent)

    def cleanup_temp(self, max_age_seconds: float = retention.TEMP_GRACE_SECONDS) -> builtins.list[Path]:
        """Remove temp dirs left by crashed saves (older than `max_age_seconds`, so a save in progress
        is left alone) and trash left by interrupted prunes. Returns what was removed."""
        now = aware_utc(self._clock(), "clock()").timestamp()
        removed: builtins.list[Path] = []
        for workload in self.workloads():
            for signal in self.signals(workload):
                removed += retention.cleanup(self.path(workload, signal), now, max_age_seconds)
        return sorted(removed)

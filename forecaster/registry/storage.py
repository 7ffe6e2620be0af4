"""The registry on disk: version directories written atomically, read back only once they verify.

Crash safety: a save writes both files into a dot-prefixed temp dir beside the versions, fsyncs
them, then renames the dir into place (rename(2) is atomic, and it refuses to replace a non-empty
directory, so two writers can never merge). A crash at any point leaves either no new version or a
whole one; leftover temp dirs are ignored by every reader (their names match no version) and removed
by forecaster.registry.retention.

Trust: the sha256 catches corruption and mismatched files, not tampering. Unpickling runs code, so
the registry root must be as trusted as the code itself (it is written only by `prescaler train`).
"""

from __future__ import annotations

import os
import pickle
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from forecaster.atomic import fsync_dir, sha256_bytes
from forecaster.errors import ArtifactCorrupt, RegistryError
from forecaster.registry.cards import ARTIFACT_FILE, CARD_FILE, VERSION_NAME, ModelCard

if TYPE_CHECKING:
    from forecaster.estimators.base import Estimator

TEMP_PREFIX = ".tmp-"
_STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
_MAX_PER_SECOND = 999

# Writes one file durably; the Registry passes its own (Registry._write_file), the seam a test
# patches to kill a save between the artifact and the card.
WriteFile = Callable[[Path, bytes], None]


def corrupt(path: Path, message: str, *, expected: str | None = None, actual: str | None = None) -> ArtifactCorrupt:
    """ArtifactCorrupt naming `path`, with both hashes when a checksum is what failed."""
    error = ArtifactCorrupt(f"{path}: {message}")
    error.path, error.expected_sha256, error.actual_sha256 = str(path), expected, actual  # type: ignore[attr-defined]
    return error


def children(directory: Path, pattern: re.Pattern[str]) -> list[str]:
    """Names of the subdirectories of `directory` that match `pattern`, sorted; [] when it is absent."""
    if not directory.is_dir():
        return []
    return sorted(e.name for e in os.scandir(directory) if e.is_dir() and pattern.match(e.name))


# ---- reading -------------------------------------------------------------------------------------


def read_card(directory: Path, workload: str, signal: str, version: str) -> ModelCard:
    """The validated card in a version directory that exists. ArtifactCorrupt when the card is
    missing, unreadable, or describes another workload, signal or version."""
    card_path = directory / CARD_FILE
    try:
        card = ModelCard.model_validate_json(card_path.read_bytes())
    except FileNotFoundError as exc:
        raise corrupt(card_path, "card.json is missing") from exc
    except (OSError, ValidationError) as exc:
        raise corrupt(card_path, f"card.json is unreadable or invalid: {exc}") from exc
    where = (workload, signal, version)
    said = (card.workload, card.signal, card.version)
    if said != where:
        raise corrupt(
            card_path,
            f"mismatched card: it describes {'/'.join(said)} but is stored as {'/'.join(where)}",
        )
    return card


def verified_artifact(directory: Path, card: ModelCard) -> bytes:
    """The artifact's bytes, after checking those very bytes against the card's sha256."""
    artifact = directory / card.artifact_file
    try:
        data = artifact.read_bytes()
    except OSError as exc:
        raise corrupt(artifact, f"artifact is unreadable: {exc}", expected=card.artifact_sha256) from exc
    actual = sha256_bytes(data)
    if actual != card.artifact_sha256:
        raise corrupt(
            artifact,
            f"checksum mismatch: card.json expects sha256 {card.artifact_sha256}, the file has {actual}",
            expected=card.artifact_sha256,
            actual=actual,
        )
    return data


def unpickle(data: bytes, card: ModelCard, artifact: Path) -> "Estimator":
    """The estimator in verified artifact bytes, refused unless it is the model the card names."""
    from forecaster.estimators.base import Estimator

    try:
        estimator = pickle.loads(data)
    except Exception as exc:  # noqa: BLE001 - unpickling can raise nearly anything
        raise corrupt(artifact, f"artifact cannot be unpickled: {type(exc).__name__}: {exc}") from exc
    if not isinstance(estimator, Estimator):
        raise corrupt(artifact, f"artifact holds a {type(estimator).__name__}, not an Estimator")
    if estimator.name != card.model:
        raise corrupt(
            artifact, f"mismatched artifact: it holds model {estimator.name!r}, the card says {card.model!r}"
        )
    return estimator


# ---- writing -------------------------------------------------------------------------------------


def pickled(estimator: "Estimator") -> bytes:
    """The artifact's bytes; RegistryError when the estimator cannot be pickled."""
    try:
        return pickle.dumps(estimator, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # noqa: BLE001 - pickling errors come in many types
        raise RegistryError(f"cannot pickle {type(estimator).__name__}: {type(exc).__name__}: {exc}") from exc


def write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def candidate_versions(parent: Path, stamp: str, sha: str) -> Iterator[str]:
    """Version names for a save at `stamp`, each later-sorting than every existing one that second."""
    taken = [m for e in os.listdir(parent) if (m := VERSION_NAME.match(e)) and m.group("stamp") == stamp]
    counter = max((int(m.group("counter") or 0) + 1 for m in taken), default=0)
    for n in range(counter, _MAX_PER_SECOND + 1):
        yield f"{stamp}-{sha[:6]}" if n == 0 else f"{stamp}.{n:03d}-{sha[:6]}"


def write_version(
    parent: Path, created: datetime, data: bytes, sha: str, card_for: Callable[[str], ModelCard],
    write: WriteFile = write_file,
) -> ModelCard:
    """Store `data` (whose sha256 is `sha`) as a new version under `parent`, with the card
    `card_for(version)` for the first free version name at `created`. Atomic: a crash leaves either
    no new version or a complete one; a failure removes the temp dir."""
    parent.mkdir(parents=True, exist_ok=True)
    stamp = created.strftime(_STAMP_FORMAT)
    temp = parent / f"{TEMP_PREFIX}{stamp}-{uuid.uuid4().hex[:12]}"
    temp.mkdir()
    try:
        write(temp / ARTIFACT_FILE, data)
        for version in candidate_versions(parent, stamp, sha):
            card = card_for(version)
            write(temp / CARD_FILE, card.model_dump_json(indent=2).encode() + b"\n")
            fsync_dir(temp)
            try:
                os.rename(temp, parent / version)
            except OSError:
                if (parent / version).exists():
                    continue  # another writer took this name in the same second: next counter
                raise
            fsync_dir(parent)
            return card
        raise RegistryError(f"more than {_MAX_PER_SECOND} saves of {parent} in the second {stamp}")
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise

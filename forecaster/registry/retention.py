"""Retention: which old versions to remove, how to remove them safely, and the leftovers of crashes.

A version is removed by renaming it to a dot-prefixed trash dir first, so a half-deleted directory is
never seen as a version (trash and temp names match no version); an interrupted prune leaves only
trash, which `cleanup` removes with the temp dirs of crashed saves: at a service's start
(`Registry.cleanup_temp`) and after every save into the same directory (`after_save`).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path

from forecaster.atomic import fsync_dir
from forecaster.registry.storage import TEMP_PREFIX

TRASH_PREFIX = ".trash-"
# A temp dir younger than this may be a save in flight in another process (`prescaler train` beside the
# service): a save pickles and fsyncs two files, seconds at most, so an hour leaves a wide margin.
TEMP_GRACE_SECONDS = 3600.0


def check_keep(keep: int) -> int:
    """`keep` if it is a whole number >= 1 (a bool is not), else ValueError naming it."""
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise ValueError(f"keep must be a whole number >= 1, got {keep!r}")
    return keep


def expired(versions: Sequence[str], keep: int, serving: str | None) -> list[str]:
    """All but the `keep` newest of `versions` (oldest first), never `serving`: the newest version
    that verifies, so a corrupt newer version cannot push the serving one out."""
    kept = set(versions[-keep:]) | ({serving} if serving is not None else set())
    return [v for v in versions if v not in kept]


def remove_versions(parent: Path, versions: Sequence[str]) -> None:
    """Remove these version directories of `parent`, each renamed to trash before it is deleted."""
    for version in versions:
        # Rename first, so a half-deleted directory is never seen as a version.
        trash = parent / f"{TRASH_PREFIX}{version}-{uuid.uuid4().hex[:12]}"
        os.rename(parent / version, trash)
        shutil.rmtree(trash, ignore_errors=True)
    if versions:
        fsync_dir(parent)


def cleanup(parent: Path, now: float, max_age_seconds: float) -> list[Path]:
    """Remove from `parent` the temp dirs of crashed saves older than `max_age_seconds` at `now`
    (epoch seconds; a younger one may be a save in progress) and all trash. Returns what went."""
    removed: list[Path] = []
    for entry in os.scandir(parent):
        if not entry.is_dir(follow_symlinks=False):
            continue
        stale_temp = entry.name.startswith(TEMP_PREFIX) and (
            now - entry.stat(follow_symlinks=False).st_mtime >= max_age_seconds
        )
        if stale_temp or entry.name.startswith(TRASH_PREFIX):
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(Path(entry.path))
    return removed


def after_save(parent: Path) -> list[Path]:
    """`cleanup` of `parent` right after a save into it. Only a restart's cleanup ran before, so a
    `prescaler train` killed again and again piled temp dirs up (23 after 52 kills).

    Ages are measured against the file system's own time, `parent`'s mtime, which the save's
    rename has just set: the temp dirs' mtimes are file-system time, while the registry's clock
    may be a retrain's start (the version stamp) or a test's fake clock."""
    return cleanup(parent, parent.stat().st_mtime, TEMP_GRACE_SECONDS)

"""The retrain decisions log: one JSON line per decision, appended, fsynced, bounded by rotation.

Appending (open "a", write, fsync) costs one line per decision, where rewriting the whole file cost
its whole size. A crash can at worst leave a torn last line: readers skip lines that do not parse
(with a warning naming the file and line), and the next append starts on a fresh line instead of
gluing onto the fragment. Past `max_lines` lines or `max_bytes` bytes the file is renamed to
`<name>.1` (replacing the previous one, as logrotate's `rotate 1` does), so at most two files of
bounded size exist.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from forecaster.atomic import fsync_dir

log = logging.getLogger("prescaler.forecaster.service")

DEFAULT_MAX_LINES = 10_000
DEFAULT_MAX_BYTES = 4 * 1024 * 1024


class DecisionLog:
    """`decisions.jsonl` beside the registry. Only the service's event loop appends (one writer)."""

    def __init__(self, path: str | Path, *, max_lines: int = DEFAULT_MAX_LINES,
                 max_bytes: int = DEFAULT_MAX_BYTES):
        if isinstance(max_lines, bool) or not isinstance(max_lines, int) or max_lines < 1:
            raise ValueError(f"decisions log max_lines must be a whole number >= 1, got {max_lines!r}")
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
            raise ValueError(f"decisions log max_bytes must be a whole number >= 1, got {max_bytes!r}")
        self.path = Path(path)
        self.rotated = self.path.with_name(self.path.name + ".1")
        self.max_lines, self.max_bytes = max_lines, max_bytes
        self._lines, self._bytes, self._torn = self._measure()

    def _measure(self) -> tuple[int, int, bool]:
        """Lines and bytes of the current file, and whether it ends mid-line (a torn append)."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return 0, 0, False
        return data.count(b"\n"), len(data), bool(data) and not data.endswith(b"\n")

    def append(self, line: str) -> None:
        """Append one line (no newline inside it) durably; rotate first if it would pass a bound."""
        if "\n" in line:
            raise ValueError("a decisions log entry must be a single line")
        data = (line + "\n").encode()
        if self._torn:
            data = b"\n" + data  # end the torn fragment so this entry parses on its own
        if self._lines and (self._lines + 1 > self.max_lines or self._bytes + len(data) > self.max_bytes):
            self._rotate()
            data = (line + "\n").encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        created = not self.path.exists()
        with open(self.path, "ab") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if created:
            fsync_dir(self.path.parent)  # the new file's directory entry must survive a crash too
        self._lines += data.count(b"\n")
        self._bytes += len(data)
        self._torn = False

    def _rotate(self) -> None:
        os.replace(self.path, self.rotated)
        fsync_dir(self.path.parent)
        log.info("decisions log %s rotated to %s after %d lines, %d bytes",
                 self.path, self.rotated, self._lines, self._bytes)
        self._lines, self._bytes, self._torn = 0, 0, False

    def read(self, limit: int | None = None) -> list[dict]:
        """The entries of the rotated and the current file, oldest first (the last `limit`)."""
        entries = [*read_decisions(self.rotated), *read_decisions(self.path)]
        return entries if limit is None else entries[-limit:] if limit > 0 else []


def read_decisions(path: str | Path) -> list[dict]:
    """The JSON objects of one log file; lines that do not parse (a torn append) are skipped."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as error:
            log.warning("%s line %d: skipped, not JSON (%s)", path, number, error.msg)
            continue
        if not isinstance(entry, dict):
            log.warning("%s line %d: skipped, a JSON %s rather than an object", path, number,
                        type(entry).__name__)
            continue
        entries.append(entry)
    return entries

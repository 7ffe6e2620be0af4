"""The forecaster's own errors, one per boundary, each with a message that names what is wrong."""

from __future__ import annotations


class ForecasterError(Exception):
    """Base of every error the forecaster raises on purpose."""


class TraceFormatError(ForecasterError, ValueError):
    """A trace file is malformed. Names the file, the line (1-based, header is line 1) and the column."""

    def __init__(self, path: str, message: str, *, line: int | None = None, column: str | None = None):
        self.path, self.line, self.column = str(path), line, column
        where = self.path
        if line is not None:
            where += f", line {line}"
        if column is not None:
            where += f", column {column!r}"
        super().__init__(f"{where}: {message}")


class InsufficientHistory(ForecasterError):
    """An estimator cannot fit this history (too short for its seasons, too many gaps). Selection skips it."""


class NotFitted(ForecasterError):
    """predict() was called before fit()."""


class RegistryError(ForecasterError):
    """The model registry cannot do what was asked (no such workload, signal or version)."""


class ArtifactCorrupt(RegistryError):
    """A stored artifact does not match its card (checksum mismatch, unreadable file)."""

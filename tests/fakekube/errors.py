"""The errors the fake API server answers with, as v1 Status objects."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error the server returns as a v1 Status object (`details` as kube-apiserver fills it for 422s)."""

    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                               "message": self.message, "reason": self.reason, "code": self.code}
        if self.details is not None:
            out["details"] = self.details
        return out

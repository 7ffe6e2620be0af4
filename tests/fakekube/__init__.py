"""A stateful fake Kubernetes API server over real HTTP (see server.py), usable by tests and bench."""

from .clock import FakeClock
from .server import FakeKube, Fault, to_scale
from .store import ApiError, ResourceType, Store

__all__ = ["ApiError", "FakeClock", "FakeKube", "Fault", "ResourceType", "Store", "to_scale"]

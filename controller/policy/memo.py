"""Derived data per frozen input object, computed once: the decision's hot path reads it each sync.

decide() runs every sync (15 s) for every autoscaler, with the same spec object until the spec
changes and the same Forecast object until the forecaster refreshes it (every forecast step). What
depends only on such an object (a spec's metric targets in milli-units, its tolerances and behavior
rules as plain tuples; a forecast's timestamps as Unix seconds and a quantile column as a tuple) is
derived once per object through an `IdentityMemo`:

- keyed by the object's identity, each entry holding a weak reference to its object: an entry is
  used only while the object it was derived from is alive and is the very object asked about, so a
  later object that reuses a freed id never reads an old entry (it replaces it);
- bounded: at `maxsize` entries the memo is emptied (atomic, unlike evicting one entry while
  another thread inserts), and the entries are rebuilt on the next calls, a few microseconds each.
  The default, 1024, holds the specs and forecasts of a few hundred autoscalers (an entry is a few
  hundred bytes to a few kB); with more, entries are rebuilt more often and nothing else changes;
- the objects are frozen pydantic models (spec.py's `_Model`, forecaster.contract), so what is
  derived from them cannot go stale; a `model_copy(update=...)` is a new object with its own entry.

An entry depends on its own object and nothing else, so autoscalers never see each other's data and
a result never depends on which objects were seen before: the memo changes speed, never a decision.
The memos (and predictive's lru_cache of quantile keys) are the only module-level data in
controller.policy that changes, and they hold no decision state.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any, Generic, TypeVar

V = TypeVar("V")


class IdentityMemo(Generic[V]):
    """`memo(obj)`: build(obj) computed once per live object (see the module docstring).

    `build` must be a pure function of `obj`, which must be immutable. An object that takes no weak
    reference (pydantic models all do) is never stored: build(obj) at every call.
    """

    __slots__ = ("_build", "_maxsize", "_entries")

    def __init__(self, build: Callable[[Any], V], maxsize: int = 1024) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be >= 1, got {maxsize}")
        self._build = build
        self._maxsize = maxsize
        self._entries: dict[int, tuple[weakref.ref, V]] = {}

    def __call__(self, obj: Any) -> V:
        entry = self._entries.get(id(obj))
        if entry is not None and entry[0]() is obj:
            return entry[1]
        value = self._build(obj)
        try:
            ref = weakref.ref(obj)
        except TypeError:
            return value  # an object without weak references (a test double): derived at every call
        entries = self._entries
        if len(entries) >= self._maxsize:
            entries.clear()
        entries[id(obj)] = (ref, value)
        return value

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()


class TupleMemo(Generic[V]):
    """`memo(obj, *args)`: build(obj, *args) computed once per (tuple object, args), for tuples (which
    take no weak references): an entry holds its tuple itself, so the tuple stays alive, and its id
    cannot be reused by another object, while the entry exists; found only for that very object.

    For the policy state's tuples, which decide() passes on unchanged from one sync to the next
    (the outcomes tuple changes only when a forecast matures). `args` must be hashable; `build`
    pure; bounded as IdentityMemo (emptied when full), so at most `maxsize` tuples are kept alive.
    """

    __slots__ = ("_build", "_maxsize", "_entries")

    def __init__(self, build: Callable[..., V], maxsize: int = 256) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be >= 1, got {maxsize}")
        self._build = build
        self._maxsize = maxsize
        self._entries: dict[tuple, tuple[tuple, V]] = {}

    def __call__(self, obj: tuple, *args: Any) -> V:
        key = (id(obj), *args)
        entry = self._entries.get(key)
        if entry is not None and entry[0] is obj:
            return entry[1]
        value = self._build(obj, *args)
        entries = self._entries
        if len(entries) >= self._maxsize:
            entries.clear()
        entries[key] = (obj, value)
        return value

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()

"""The decisions log: appended line by line, rotated to .1 past its bounds, torn lines survived."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forecaster.service.decisions import DecisionLog, read_decisions


def entry(n: int, pad: int = 0) -> str:
    return json.dumps({"n": n, "pad": "x" * pad})


def lines(path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_appends_without_rewriting(tmp_path):
    path = tmp_path / "decisions.jsonl"
    log = DecisionLog(path)
    log.append(entry(0))
    inode = path.stat().st_ino
    log.append(entry(1))
    # Same file, grown in place (a rewrite via temp + rename would change the inode).
    assert path.stat().st_ino == inode
    assert [d["n"] for d in read_decisions(path)] == [0, 1]


@pytest.mark.parametrize(
    ("max_lines", "max_bytes", "count", "current", "rotated"),
    [
        pytest.param(3, 10**6, 3, [0, 1, 2], [], id="at-the-line-bound-no-rotation"),
        pytest.param(3, 10**6, 4, [3], [0, 1, 2], id="past-lines-rotates"),
        pytest.param(3, 10**6, 7, [6], [3, 4, 5], id="second-rotation-replaces-the-first"),
        pytest.param(100, 2 * len(entry(0)) + 2, 3, [2], [0, 1], id="past-bytes-rotates"),
        pytest.param(100, 5, 2, [1], [0], id="one-oversized-line-still-written"),
    ],
)
def test_rotation(tmp_path, max_lines, max_bytes, count, current, rotated):
    path = tmp_path / "decisions.jsonl"
    log = DecisionLog(path, max_lines=max_lines, max_bytes=max_bytes)
    for n in range(count):
        log.append(entry(n))
    assert [json.loads(x)["n"] for x in lines(path)] == current
    assert [json.loads(x)["n"] for x in lines(log.rotated)] == rotated
    assert [d["n"] for d in log.read()] == rotated + current


def test_bounds_count_what_was_there_before_a_restart(tmp_path):
    path = tmp_path / "decisions.jsonl"
    first = DecisionLog(path, max_lines=3)
    for n in range(2):
        first.append(entry(n))
    again = DecisionLog(path, max_lines=3)  # a restarted service
    again.append(entry(2))
    again.append(entry(3))
    assert [json.loads(x)["n"] for x in lines(again.rotated)] == [0, 1, 2]
    assert [json.loads(x)["n"] for x in lines(path)] == [3]


def test_a_torn_last_line_is_skipped_and_the_next_entry_starts_fresh(tmp_path, caplog):
    path = tmp_path / "decisions.jsonl"
    path.write_text(entry(0) + "\n" + '{"n": 1, "pa')  # a crash in the middle of an append
    log = DecisionLog(path)
    log.append(entry(2))
    assert [d["n"] for d in log.read()] == [0, 2]
    assert "decisions.jsonl line 2: skipped, not JSON" in caplog.text


def test_non_objects_are_skipped(tmp_path):
    path = tmp_path / "decisions.jsonl"
    path.write_text('[1, 2]\n\n{"n": 5}\n')
    assert read_decisions(path) == [{"n": 5}]


def test_read_limit(tmp_path):
    log = DecisionLog(tmp_path / "d.jsonl", max_lines=2)
    for n in range(5):
        log.append(entry(n))
    assert [d["n"] for d in log.read(limit=2)] == [3, 4]
    assert log.read(limit=0) == []
    assert [d["n"] for d in log.read()] == [2, 3, 4]  # older than .1 is gone: the bound


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"max_lines": 0}, "max_lines must be a whole number >= 1, got 0", id="zero-lines"),
        pytest.param({"max_bytes": -1}, "max_bytes must be a whole number >= 1, got -1", id="negative-bytes"),
        pytest.param({"max_lines": True}, "max_lines must be a whole number >= 1, got True", id="bool-lines"),
    ],
)
def test_bad_bounds_are_refused(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        DecisionLog(tmp_path / "d.jsonl", **kwargs)


def test_an_entry_must_be_one_line(tmp_path):
    with pytest.raises(ValueError, match="single line"):
        DecisionLog(tmp_path / "d.jsonl").append('{"a":\n1}')


@settings(max_examples=40,
          suppress_health_check=[*settings.default.suppress_health_check, HealthCheck.function_scoped_fixture])
@given(
    pads=st.lists(st.integers(0, 120), min_size=1, max_size=40),
    max_lines=st.integers(1, 8),
    max_bytes=st.integers(20, 400),
)
def test_bounded_and_newest_entries_kept_in_order(tmp_path_factory, pads, max_lines, max_bytes):
    path = tmp_path_factory.mktemp("log") / "decisions.jsonl"
    log = DecisionLog(path, max_lines=max_lines, max_bytes=max_bytes)
    for n, pad in enumerate(pads):
        log.append(entry(n, pad))
    for file in (path, log.rotated):
        content = lines(file)
        assert len(content) <= max_lines
        # A file passes max_bytes only when it holds one line longer than the bound by itself.
        assert len(content) == 1 or (file.stat().st_size if file.exists() else 0) <= max_bytes
    kept = [d["n"] for d in log.read()]
    # What is kept is the newest entries, contiguous and in order, and always the last one.
    assert kept == list(range(len(pads) - len(kept), len(pads))) and kept[-1] == len(pads) - 1

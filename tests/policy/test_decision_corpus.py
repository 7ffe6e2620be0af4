"""decide() gives, digest for digest, what the implementation before the speed work gave on a fixed
corpus of random autoscalers and syncs (tests/policy/decision_corpus.py says what it covers)."""

from __future__ import annotations

import json

import pytest

from controller.policy import decide
from tests.policy.decision_corpus import CORPUS, SEQUENCES, STEPS, sequence_digest

RECORDED = json.loads(CORPUS.read_text())


def test_the_corpus_file_matches_the_generator() -> None:
    assert RECORDED["steps"] == STEPS
    assert sorted(RECORDED["digests"], key=int) == [str(seed) for seed in range(SEQUENCES)]


@pytest.mark.parametrize("seed", range(SEQUENCES))
def test_decisions_and_states_are_unchanged(seed: int) -> None:
    assert sequence_digest(seed, decide) == RECORDED["digests"][str(seed)], (
        f"sequence {seed} now decides differently from the recorded implementation; if that is intended, "
        "regenerate with `.venv/bin/python -m tests.policy.decision_corpus --write` and say why")

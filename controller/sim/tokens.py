"""Token lengths of the simulated requests: means per minute and the spread of prompt lengths.

A fluid simulator cannot carry 10^8 requests, so each tick's cohort carries its mean prompt and
output lengths plus a stratified sample of the prompt-length distribution: K equally weighted
multipliers of the mean (the midpoints of K quantile strata). A cohort's TTFT is then K values
(wait + that prompt's prefill time), which keeps the real spread of TTFT (long prompts miss the SLO
first) at K times the cost of a single mean.

Sources (`--tokens`): `trace` takes the means from the trace's token columns and the spread from the
Azure conversation trace; `azure-conv`, `azure-code`, `mooncake` take both from those per-request
traces in ../shared/traces/raw.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

TOKEN_SOURCES = ("trace", "azure-conv", "azure-code", "mooncake")
STRATA = 8

# Azure LLM inference trace (conversation, 2023-11-16, Azure/AzurePublicDataset @ b469a113,
# CC-BY-4.0): ContextTokens / mean at the midpoints of 8 quantile strata, and the means. Embedded so
# the shipped demo runs without the shared trace collection; recomputed from the file when present.
# _shape() of AzureLLMInferenceTrace_conv.csv, embedded so a clone without the shared traces replays
# with the same spread (mean 1 by construction, like every computed shape).
AZURE_CONV_SHAPE = (0.1628, 0.3214, 0.3398, 0.8106, 0.8827, 0.9398, 1.1202, 3.4227)
AZURE_CONV_MEANS = (1154.70, 211.13)

RAW_FILES = {
    "azure-conv": "AzureLLMInferenceTrace_conv.csv",
    "azure-code": "AzureLLMInferenceTrace_code.csv",
    "mooncake": "mooncake_conversation_trace.jsonl",
}


@dataclass(frozen=True)
class LengthDistribution:
    """Mean prompt and output lengths, and the prompt-length multipliers (mean 1) of K strata."""

    source: str
    prompt_mean: float
    output_mean: float
    prompt_shape: tuple[float, ...]


def default_raw_dir() -> Path:
    return Path(__file__).resolve().parents[3] / "shared" / "traces" / "raw"


def _shape(prompts: np.ndarray) -> tuple[float, ...]:
    ratios = prompts / prompts.mean()
    mids = np.quantile(ratios, (np.arange(STRATA) + 0.5) / STRATA)
    return tuple(float(x) for x in mids / mids.mean())  # mean exactly 1: the trace mean is kept


def _read_raw(path: Path) -> tuple[np.ndarray, np.ndarray]:
    prompts: list[float] = []
    outputs: list[float] = []
    if path.suffix == ".jsonl":
        with path.open() as handle:
            for line_no, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    prompts.append(float(row["input_length"]))
                    outputs.append(float(row["output_length"]))
                except (ValueError, KeyError, TypeError) as exc:
                    raise ValueError(
                        f"{path}:{line_no}: needs numeric input_length and output_length ({exc})"
                    ) from exc
    else:
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            missing = {"ContextTokens", "GeneratedTokens"} - set(reader.fieldnames or ())
            if missing:
                raise ValueError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
            for line_no, row in enumerate(reader, 2):
                try:
                    prompts.append(float(row["ContextTokens"]))
                    outputs.append(float(row["GeneratedTokens"]))
                except (ValueError, TypeError) as exc:
                    raise ValueError(f"{path}:{line_no}: token counts must be numbers ({exc})") from exc
    if not prompts:
        raise ValueError(f"{path}: no requests")
    p, o = np.asarray(prompts), np.asarray(outputs)
    if (p < 0).any() or (o < 0).any() or p.mean() <= 0:
        raise ValueError(f"{path}: token counts must be non-negative with a positive mean prompt")
    return p, o


def length_distribution(source: str, raw_dir: Path | None = None) -> LengthDistribution:
    """The lengths of `source` (one of TOKEN_SOURCES); `trace` gives the spread only (means from the trace)."""
    if source not in TOKEN_SOURCES:
        raise ValueError(f"tokens {source!r} unknown; choose one of {', '.join(TOKEN_SOURCES)}")
    raw_dir = raw_dir or default_raw_dir()
    name = "azure-conv" if source == "trace" else source
    path = raw_dir / RAW_FILES[name]
    if not path.exists():
        if name == "azure-conv":
            return LengthDistribution(source, *AZURE_CONV_MEANS, AZURE_CONV_SHAPE)
        raise FileNotFoundError(f"--tokens {source} needs {path} (the shared per-request trace)")
    p, o = _read_raw(path)
    return LengthDistribution(source, float(p.mean()), float(o.mean()), _shape(p))

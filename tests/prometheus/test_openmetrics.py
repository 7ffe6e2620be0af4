"""The OpenMetrics a trace becomes: what promtool needs, gaps left out, streamed."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forecaster.prometheus.counters import bin_counts
from forecaster.prometheus.openmetrics import counter_samples, write_openmetrics


def frame(values, start="2025-01-05T16:00Z", columns=("requests",)):
    index = pd.date_range(start, periods=len(values), freq="60s", tz="UTC").as_unit("ns")
    return pd.DataFrame({c: np.array(values, float) for c in columns}, index=index)


def test_counter_is_cumulative_at_bin_ends_with_a_leading_zero():
    times, values = counter_samples(frame([3, 4, 5])["requests"], 60)
    t0 = int(pd.Timestamp("2025-01-05T16:00Z").timestamp())
    assert times.tolist() == [t0, t0 + 60, t0 + 120, t0 + 180]
    assert values.tolist() == [0, 3, 7, 12]


@pytest.mark.parametrize(
    "counts, expected_offsets, expected_values",
    [
        pytest.param([3, np.nan, 5], [0, 60, 180], [0, 3, 8], id="gap-in-the-middle-has-no-sample"),
        pytest.param([np.nan, np.nan, 5], [120, 180], [0, 5], id="leading-gap-starts-at-first-present"),
        pytest.param([2, np.nan], [0, 60], [0, 2], id="trailing-gap"),
        pytest.param([np.nan, np.nan], [], [], id="all-gap"),
    ],
)
def test_gaps_emit_no_sample(counts, expected_offsets, expected_values):
    times, values = counter_samples(frame(counts)["requests"], 60)
    t0 = int(pd.Timestamp("2025-01-05T16:00Z").timestamp())
    assert (times - t0).tolist() == expected_offsets and values.tolist() == expected_values


def test_negative_counts_are_refused_with_the_time():
    with pytest.raises(ValueError, match="negative count -1.0 at 2025-01-05 16:01"):
        counter_samples(frame([1, -1])["requests"], 60)


def test_document_shape():
    out = io.StringIO()
    written = write_openmetrics(
        out, [("m-a", frame([1, 2], columns=("requests", "prompt_tokens"))), ('m"b', frame([5, 6]))]
    )
    text = out.getvalue()
    lines = text.splitlines()
    assert lines[-1] == "# EOF" and text.endswith("# EOF\n")
    assert "# TYPE vllm:request_success counter" in lines
    assert "# TYPE vllm:prompt_tokens counter" in lines
    assert "generation_tokens" not in text  # no frame has output_tokens
    assert written == {"vllm:request_success_total": 6, "vllm:prompt_tokens_total": 3}
    # Families are not interleaved: every request_success sample comes before prompt_tokens starts.
    families = [line.split("{")[0] for line in lines if not line.startswith("#")]
    assert families == sorted(families, key=lambda name: 0 if "request_success" in name else 1)
    assert 'model_name="m\\"b"' in text and 'engine="0"' in text
    # Timestamps are whole seconds (milliseconds would land in year 58,000) and ascend per series.
    for model in ("m-a", 'm\\"b'):
        stamps = [int(line.rsplit(" ", 1)[1]) for line in lines
                  if f'model_name="{model}"' in line and "request_success" in line]
        assert stamps == sorted(stamps) and all(s < 4_102_444_800 for s in stamps)  # before 2100


def test_underscore_prefix_and_refusals():
    out = io.StringIO()
    write_openmetrics(out, [("m", frame([1, 2]))], prefix="vllm_")
    assert "vllm_request_success_total{" in out.getvalue() and "vllm:" not in out.getvalue()
    with pytest.raises(ValueError, match="prefix"):
        write_openmetrics(io.StringIO(), [("m", frame([1, 2]))], prefix="x_")
    with pytest.raises(ValueError, match="model names repeat"):
        write_openmetrics(io.StringIO(), [("m", frame([1, 2])), ("m", frame([1, 2]))])


def test_large_trace_is_written_in_slices():
    class CountingWriter(io.StringIO):
        calls = 0
        biggest = 0

        def write(self, text):
            CountingWriter.calls += 1
            CountingWriter.biggest = max(CountingWriter.biggest, len(text))
            return super().write(text)

    out = CountingWriter()
    write_openmetrics(out, [("m", frame(np.ones(100_000)))])
    assert CountingWriter.calls >= 5  # 100k samples in slices of 20k lines, never one string
    assert CountingWriter.biggest < 2_000_000


@settings(max_examples=80)
@given(st.lists(st.one_of(st.none(), st.floats(0, 1e7, allow_nan=False)), min_size=2, max_size=80))
def test_counter_round_trip_gives_back_every_count_but_the_one_after_a_gap(cells):
    """What the backfill writes, read back the raw way, is the trace with one more gap bin after
    each gap inside it (the first bin after such a gap has no counter value at its start)."""
    counts = frame([np.nan if c is None else c for c in cells])["requests"]
    times, values = counter_samples(counts, 60)
    edges = counts.index.as_unit("s").asi8.astype(float)
    edges = np.concatenate([edges, [edges[-1] + 60]])
    got = bin_counts(times.astype(float), values, edges, max_gap=90)
    expected = counts.to_numpy().copy()
    present = np.isfinite(expected)
    # A leading gap loses nothing: the first present bin starts with the counter's zero sample.
    seen_before = np.concatenate([[False], np.cumsum(present)[:-1] > 0])
    expected[present & ~np.concatenate([[True], present[:-1]]) & seen_before] = np.nan
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-6, equal_nan=True)

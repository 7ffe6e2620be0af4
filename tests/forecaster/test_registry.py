"""The model registry: round trips, crash safety, corruption refused, prune, names, card checks."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forecaster.errors import ArtifactCorrupt, NotFitted, RegistryError
from forecaster.estimators.baselines import LastValue, SeasonalNaiveDaily
from forecaster.registry import (
    ARTIFACT_FILE,
    CARD_FILE,
    CardDraft,
    InvalidName,
    ModelCard,
    Registry,
    TrainingWindow,
    library_versions,
)

ROOT = Path(__file__).resolve().parents[2]
START = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime = START):
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def tick(self, seconds: float = 1.0) -> None:
        self.now += timedelta(seconds=seconds)


def make_series(days: float = 2, step: int = 600, seed: int = 0) -> pd.Series:
    n = int(days * 86400 / step)
    index = pd.date_range("2025-03-03T00:00:00Z", periods=n, freq=f"{step}s")
    rng = np.random.default_rng(seed)
    phase = np.arange(n) * step / 86400 * 2 * np.pi
    values = 50 + 20 * np.sin(phase) + rng.normal(0, 2, n)
    values[5:8] = np.nan  # a gap
    return pd.Series(values, index=index, name="requests")


@pytest.fixture()
def series() -> pd.Series:
    return make_series()


@pytest.fixture()
def clock() -> Clock:
    return Clock()


@pytest.fixture()
def registry(tmp_path, clock) -> Registry:
    return Registry(tmp_path / "models", clock=clock)


def fields(series: pd.Series, workload: str = "m-small", signal: str = "requests", **extra) -> dict:
    return {"workload": workload, "signal": signal, "training_window": TrainingWindow.of(series), **extra}


def save_n(registry: Registry, clock: Clock, series: pd.Series, n: int, **kw) -> list[ModelCard]:
    cards = []
    for _ in range(n):
        cards.append(registry.save(LastValue().fit(series), fields(series, **kw)))
        clock.tick(1)
    return cards


# ---- round trip ----------------------------------------------------------------------------------


def test_save_load_round_trip(registry, series) -> None:
    estimator = SeasonalNaiveDaily().fit(series)
    backtest = {"60m": {"seasonal_naive_daily": {"mase": np.float64(0.8), "coverage90": float("nan")}}}
    selection = {
        "objective": "pinball@0.9", "selected": "seasonal_naive_daily",
        "best_baseline": "seasonal_naive_daily", "reason": "no model beat the baselines", "margin": 0.0,
    }
    card = registry.save(estimator, fields(series, backtest=backtest, selection=selection))

    directory = registry.path("m-small", "requests", card.version)
    assert sorted(p.name for p in directory.iterdir()) == [ARTIFACT_FILE, CARD_FILE]
    assert card.version == "20260102T030405Z-" + card.artifact_sha256[:6]
    assert card.model == "seasonal_naive_daily" and card.bin_seconds == 600
    assert card.params == estimator.get_params()
    assert card.training_window.bins == len(series) and card.training_window.observed_bins == len(series) - 3
    assert card.backtest["60m"]["seasonal_naive_daily"] == {"mase": 0.8, "coverage90": None}  # NaN -> null
    assert card.selection.margin == 0.0  # extra selection keys are kept
    assert card.library_versions["numpy"] == np.__version__
    assert card.created_at == START

    loaded, loaded_card = registry.load("m-small", "requests")
    assert loaded_card == card
    assert type(loaded) is SeasonalNaiveDaily
    pd.testing.assert_frame_equal(loaded.predict(6), estimator.predict(6))

    on_disk = json.loads((directory / CARD_FILE).read_text())
    assert list(on_disk)[:5] == ["card_version", "workload", "signal", "version", "model"]  # readable first
    assert on_disk["artifact_sha256"] == card.artifact_sha256
    assert ModelCard.model_validate(on_disk) == card


def test_latest_list_workloads_signals(registry, clock, series) -> None:
    first = save_n(registry, clock, series, 2)
    other = registry.save(LastValue().fit(series), fields(series, workload="llama-8b", signal="output_tokens"))
    assert registry.workloads() == ["llama-8b", "m-small"]
    assert registry.signals("m-small") == ["requests"]
    assert registry.signals("absent") == []
    assert registry.latest("m-small", "requests") == first[-1]
    assert registry.latest("m-small", "prompt_tokens") is None
    assert [c.version for c in registry.list()] == [other.version, first[0].version, first[1].version]
    assert registry.list(workload="m-small") == first
    assert registry.list(signal="output_tokens") == [other]


def test_two_saves_in_one_second_sort_in_save_order(registry, series) -> None:
    cards = [registry.save(LastValue().fit(make_series(seed=i)), fields(make_series(seed=i))) for i in range(3)]
    versions = [c.version for c in cards]
    assert versions[0].startswith("20260102T030405Z-")
    assert versions[1].startswith("20260102T030405Z.001-")
    assert versions[2].startswith("20260102T030405Z.002-")
    assert registry.versions("m-small", "requests") == sorted(versions) == versions
    assert registry.latest("m-small", "requests") == cards[-1]


@settings(max_examples=8,
          suppress_health_check=[*settings.default.suppress_health_check, HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from([0, 0, 1, 3600, 86400 * 400]), min_size=1, max_size=6))
def test_versions_always_sort_in_save_order(tmp_path_factory, ticks) -> None:
    clock = Clock()
    registry = Registry(tmp_path_factory.mktemp("reg"), clock=clock)
    series = make_series(days=1)
    saved = []
    for seconds in ticks:
        clock.tick(seconds)
        saved.append(registry.save(LastValue().fit(series), fields(series)).version)
    assert registry.versions("m-small", "requests") == saved


# ---- crash safety --------------------------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from datetime import datetime, timezone
    import numpy as np, pandas as pd
    from forecaster.estimators.baselines import LastValue
    from forecaster.registry import Registry, TrainingWindow

    root, kill_at = sys.argv[1], sys.argv[2]
    index = pd.date_range("2025-03-03T00:00:00Z", periods=300, freq="600s")
    series = pd.Series(np.arange(300.0), index=index)
    def die(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)
    if kill_at == "before-rename":
        os.rename = die                      # the temp dir is whole, the rename never happens
    else:
        write = Registry._write_file
        def write_then_die(path, data):
            write(path, data)
            die()                            # artifact written, card not yet
        Registry._write_file = staticmethod(write_then_die)
    clock = lambda: datetime(2026, 1, 2, 3, 9, 0, tzinfo=timezone.utc)
    Registry(root, clock=clock).save(LastValue().fit(series), {
        "workload": "m-small", "signal": "requests", "training_window": TrainingWindow.of(series)})
    print("save returned: the kill did not happen")
    """
)


@pytest.mark.parametrize("kill_at", ["before-rename", "after-artifact"])
def test_a_save_killed_halfway_leaves_the_previous_version(tmp_path, registry, clock, series, kill_at) -> None:
    (previous,) = save_n(registry, clock, series, 1)
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(registry.root), kill_at],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == -9, result.stdout + result.stderr
    parent = registry.path("m-small", "requests")
    leftovers = [p.name for p in parent.iterdir() if p.name.startswith(".tmp-")]
    assert len(leftovers) == 1  # the half-written save is there, and only as a temp dir

    assert registry.versions("m-small", "requests") == [previous.version]
    assert registry.latest("m-small", "requests") == previous
    estimator, card = registry.load("m-small", "requests")
    assert card == previous and isinstance(estimator, LastValue)
    assert registry.list() == [previous]

    assert registry.cleanup_temp(max_age_seconds=3600) == []  # young: maybe a save in progress
    os.utime(parent / leftovers[0], (0, 0))  # now it is old
    assert [p.name for p in registry.cleanup_temp(max_age_seconds=3600)] == leftovers
    assert sorted(p.name for p in parent.iterdir()) == [previous.version]


def test_a_failing_save_removes_its_temp_dir(registry, series, monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "rename", refuse)
    with pytest.raises(OSError, match="No space left"):
        registry.save(LastValue().fit(series), fields(series))
    assert list(registry.path("m-small", "requests").iterdir()) == []


# ---- corruption is refused, the previous version keeps serving -----------------------------------


def flip_byte(path: Path, at: int = 40) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


def test_flipped_byte_is_refused_and_the_previous_version_serves(registry, clock, series) -> None:
    old, new = save_n(registry, clock, series, 2)
    artifact = registry.path("m-small", "requests", new.version) / ARTIFACT_FILE
    flip_byte(artifact)

    with pytest.raises(ArtifactCorrupt) as info:
        registry.load("m-small", "requests", new.version)
    error = info.value
    assert str(artifact) in str(error)
    assert new.artifact_sha256 in str(error) and error.expected_sha256 == new.artifact_sha256
    assert error.actual_sha256 and error.actual_sha256 in str(error) and error.actual_sha256 != new.artifact_sha256

    estimator, card, skipped = registry.load_latest_good("m-small", "requests")
    assert card == old and isinstance(estimator, LastValue)
    assert len(skipped) == 1 and skipped[0].startswith(new.version + ": ") and "checksum mismatch" in skipped[0]
    assert registry.load("m-small", "requests")[1] == old  # "latest" is the newest that verifies
    assert registry.latest("m-small", "requests") == old
    with pytest.raises(ArtifactCorrupt):
        registry.verify("m-small", "requests", new.version)


@pytest.mark.parametrize(
    "damage, fragment",
    [
        pytest.param(lambda d: (d / CARD_FILE).write_text("{not json"), "card.json is unreadable or invalid",
                     id="card-not-json"),
        pytest.param(lambda d: (d / CARD_FILE).unlink(), "card.json is missing", id="card-missing"),
        pytest.param(lambda d: (d / ARTIFACT_FILE).unlink(), "artifact is unreadable", id="artifact-missing"),
        pytest.param(lambda d: (d / ARTIFACT_FILE).write_bytes(b""), "checksum mismatch", id="artifact-truncated"),
        pytest.param(
            lambda d: (d / CARD_FILE).write_text(
                (d / CARD_FILE).read_text().replace('"bin_seconds": 600', '"bin_seconds": 300')
            ),
            "training_window has", id="card-edited-inconsistent",
        ),
    ],
)
def test_damaged_versions_are_refused(registry, clock, series, damage, fragment) -> None:
    old, new = save_n(registry, clock, series, 2)
    damage(registry.path("m-small", "requests", new.version))
    with pytest.raises(ArtifactCorrupt, match=fragment):
        registry.load("m-small", "requests", new.version)
    assert registry.load_latest_good("m-small", "requests")[1] == old


def test_a_card_copied_to_another_place_is_refused(registry, clock, series) -> None:
    (card,) = save_n(registry, clock, series, 1)
    source = registry.path("m-small", "requests", card.version)
    target = registry.path("other", "requests", card.version)
    target.parent.mkdir(parents=True)
    shutil.copytree(source, target)
    with pytest.raises(ArtifactCorrupt, match="mismatched card: it describes m-small/requests"):
        registry.load("other", "requests", card.version)
    assert registry.list(workload="other") == []  # listed cards are the readable ones only


def test_an_artifact_of_another_model_is_refused(registry, clock, series) -> None:
    (card,) = save_n(registry, clock, series, 1)
    directory = registry.path("m-small", "requests", card.version)
    # Put a different estimator's pickle in place, with a card whose hash matches it.
    other = registry.save(SeasonalNaiveDaily().fit(series), fields(series, workload="x"))
    other_dir = registry.path("x", "requests", other.version)
    shutil.copy(other_dir / ARTIFACT_FILE, directory / ARTIFACT_FILE)
    forged = card.model_copy(update={"artifact_sha256": other.artifact_sha256})
    fake_version = card.version[:-6] + other.artifact_sha256[:6]
    (directory.parent / fake_version).mkdir()
    shutil.copy(directory / ARTIFACT_FILE, directory.parent / fake_version / ARTIFACT_FILE)
    (directory.parent / fake_version / CARD_FILE).write_text(
        forged.model_copy(update={"version": fake_version}).model_dump_json()
    )
    with pytest.raises(ArtifactCorrupt, match="mismatched artifact: it holds model 'seasonal_naive_daily'"):
        registry.load("m-small", "requests", fake_version)


def test_every_version_bad_is_an_error_listing_them(registry, clock, series) -> None:
    cards = save_n(registry, clock, series, 2)
    for card in cards:
        flip_byte(registry.path("m-small", "requests", card.version) / ARTIFACT_FILE)
    with pytest.raises(RegistryError, match="loads; skipped: ") as info:
        registry.load("m-small", "requests")
    assert all(c.version in str(info.value) for c in cards)
    assert registry.latest("m-small", "requests") is None


def test_nothing_stored_says_how_to_train(registry) -> None:
    with pytest.raises(RegistryError, match="prescaler train TRACE --workload m-small --signal requests"):
        registry.load("m-small", "requests")
    with pytest.raises(RegistryError, match="no version 20260102T030405Z-abcdef"):
        registry.load("m-small", "requests", "20260102T030405Z-abcdef")


# ---- prune and cleanup ---------------------------------------------------------------------------


def test_prune_keeps_the_newest(registry, clock, series) -> None:
    cards = save_n(registry, clock, series, 5)
    removed = registry.prune("m-small", "requests", keep=2)
    assert removed == [c.version for c in cards[:3]]
    assert registry.versions("m-small", "requests") == [c.version for c in cards[3:]]
    assert registry.prune("m-small", "requests", keep=2) == []
    assert not [p for p in registry.path("m-small", "requests").iterdir() if p.name.startswith(".")]


def test_prune_never_removes_the_newest_good_one(registry, clock, series) -> None:
    cards = save_n(registry, clock, series, 4)
    for card in cards[2:]:
        flip_byte(registry.path("m-small", "requests", card.version) / ARTIFACT_FILE)
    removed = registry.prune("m-small", "requests", keep=1)
    assert removed == [cards[0].version, cards[2].version]
    assert registry.versions("m-small", "requests") == [cards[1].version, cards[3].version]
    assert registry.load("m-small", "requests")[1] == cards[1]


@pytest.mark.parametrize("keep", [0, -1, 1.5, True])
def test_prune_refuses_a_bad_keep(registry, keep) -> None:
    with pytest.raises(ValueError, match="keep must be"):
        registry.prune("m-small", "requests", keep=keep)


def test_leftover_dirs_are_invisible(registry, clock, series) -> None:
    (card,) = save_n(registry, clock, series, 1)
    parent = registry.path("m-small", "requests")
    (parent / ".tmp-20990101T000000Z-deadbeef").mkdir()
    (parent / ".trash-old").mkdir()
    (parent / "notes").mkdir()
    assert registry.versions("m-small", "requests") == [card.version]
    assert registry.latest("m-small", "requests") == card
    removed = registry.cleanup_temp(max_age_seconds=10**9)
    assert [p.name for p in removed] == [".trash-old"]  # trash always goes; a young temp dir stays


# ---- names and card fields -----------------------------------------------------------------------

BAD_WORKLOADS = ["", "..", "../etc", "a/b", "A", "-a", "a-", "a_b", "a" * 64, "a.b", " a"]
BAD_SIGNALS = ["", "..", "../x", "Requests", "1tokens", "a-b", "a/b"]


@pytest.mark.parametrize("name", BAD_WORKLOADS, ids=repr)
def test_bad_workload_names_are_refused(registry, series, name) -> None:
    with pytest.raises(InvalidName, match="workload name"):
        registry.path(name, "requests")
    with pytest.raises(InvalidName):
        registry.load(name, "requests")
    with pytest.raises(RegistryError, match="workload name"):
        registry.save(LastValue().fit(series), fields(series, workload=name))


@pytest.mark.parametrize("name", BAD_SIGNALS, ids=repr)
def test_bad_signal_names_are_refused(registry, series, name) -> None:
    with pytest.raises(InvalidName, match="signal name"):
        registry.path("m-small", name)
    with pytest.raises(InvalidName, match="signal name"):
        registry.latest("m-small", name)
    with pytest.raises(RegistryError, match="signal name"):
        registry.save(LastValue().fit(series), fields(series, signal=name))


@pytest.mark.parametrize("version", ["../../x", "v1", "20260102T030405Z", "20260102T030405Z-ABCDEF"])
def test_bad_versions_are_refused(registry, version) -> None:
    with pytest.raises(InvalidName, match="version"):
        registry.load("m-small", "requests", version)


@pytest.mark.parametrize("name", ["a", "m-small", "llama-3-8b", "x" * 63])
def test_good_workload_names(registry, name) -> None:
    assert registry.path(name, "prompt_tokens") == registry.root / name / "prompt_tokens"


def test_save_refuses_an_unfitted_estimator(registry, series) -> None:
    with pytest.raises(NotFitted):
        registry.save(LastValue(), fields(series))


@pytest.mark.parametrize(
    "override, fragment",
    [
        pytest.param({"model": "gbm"}, "card model 'gbm' differs from the estimator's name 'last_value'", id="model"),
        pytest.param({"bin_seconds": 300},
                     "card bin_seconds (300) differs from the bin the estimator was fitted at (600)", id="bin"),
        pytest.param({"params": {"when": object()}}, "params.when", id="params-not-json"),
        pytest.param({"backtest": {"60m": {1: 2}}}, "backtest.60m: key 1 must be a string", id="backtest-key"),
        pytest.param({"quantiles": (0.9, 0.5)}, "strictly increasing", id="quantiles-order"),
        pytest.param({"quantiles": (0.5, 1.0)}, "strictly between 0 and 1", id="quantile-range"),
        pytest.param({"selection": {"objective": "pinball", "selected": "gbm", "reason": "x"}},
                     "selection.selected ('gbm') must be the stored model ('last_value')", id="selection-other-model"),
        pytest.param({"unknown": 1}, "unknown", id="unknown-field"),
    ],
)
def test_save_checks_the_card_fields(registry, series, override, fragment) -> None:
    with pytest.raises(RegistryError) as info:
        registry.save(LastValue().fit(series), {**fields(series), **override})
    assert fragment in str(info.value)
    assert registry.versions("m-small", "requests") == []


def test_save_refuses_a_window_that_is_not_the_fit(registry, series) -> None:
    other = TrainingWindow.of(series.iloc[:-10])
    with pytest.raises(RegistryError, match="is not the last bin the estimator was fitted on"):
        registry.save(LastValue().fit(series), {**fields(series), "training_window": other})


def test_save_accepts_a_card_draft(registry, series) -> None:
    draft = CardDraft(workload="m-small", signal="requests", training_window=TrainingWindow.of(series),
                      library_versions={"python": "3.11.0"})
    card = registry.save(LastValue().fit(series), draft)
    assert card.library_versions == {"python": "3.11.0"}


def _card(**update) -> dict:
    base = {
        "workload": "w", "signal": "requests", "version": "20260102T030405Z-abcdef", "model": "last_value",
        "bin_seconds": 600, "library_versions": library_versions(), "artifact_sha256": "abcdef" + "0" * 58,
        "created_at": START,
        "training_window": {"start": "2025-03-03T00:00:00Z", "end": "2025-03-03T01:00:00Z",
                            "bins": 7, "observed_bins": 7},
    }
    return {**base, **update}


@pytest.mark.parametrize(
    "update, fragment",
    [
        pytest.param({"artifact_sha256": "123456" + "0" * 58}, "names artifact hash abcdef", id="hash-prefix"),
        pytest.param({"bin_seconds": 300},
                     "training_window has 7 bins, but 2025-03-03T00:00:00+00:00 to 2025-03-03T01:00:00+00:00 "
                     "at bin_seconds 300 is 13 bins", id="bins"),
        pytest.param({"training_window": {"start": "2025-03-03T01:00:00Z", "end": "2025-03-03T00:00:00Z",
                                          "bins": 1, "observed_bins": 1}},
                     "is before start", id="window-reversed"),
        pytest.param({"training_window": {"start": "2025-03-03T00:00:00Z", "end": "2025-03-03T01:00:00Z",
                                          "bins": 7, "observed_bins": 8}},
                     "observed_bins (8) exceeds bins (7)", id="observed-over-bins"),
        pytest.param({"created_at": datetime(2026, 1, 1)}, "must carry a timezone", id="naive-created-at"),
        pytest.param({"artifact_file": "../x.pkl"}, "artifact_file", id="artifact-file"),
        pytest.param({"version": "latest"}, "version 'latest' is invalid", id="version"),
    ],
)
def test_model_card_cross_checks_say_the_values(update, fragment) -> None:
    with pytest.raises(ValueError) as info:
        ModelCard.model_validate(_card(**update))
    assert fragment in str(info.value)


def test_model_card_is_frozen_and_reports_library_drift() -> None:
    card = ModelCard.model_validate(_card(library_versions={"numpy": "1.0.0", "python": "3.11.7"}))
    with pytest.raises(ValueError):
        card.model = "gbm"  # type: ignore[misc]
    assert card.library_mismatches({"numpy": "2.0.0", "python": "3.11.7"}) == {"numpy": ("1.0.0", "2.0.0")}


def test_a_version_pruned_by_another_process_meanwhile_is_skipped(tmp_path, clock, series) -> None:
    class RacingRegistry(Registry):
        """Lists a newer version that another process removes before it is read."""

        def versions(self, workload, signal):
            return super().versions(workload, signal) + ["20991231T235959Z-abcdef"]

    registry = RacingRegistry(tmp_path / "models", clock=clock)
    (card,) = save_n(registry, clock, series, 1)
    assert registry.latest("m-small", "requests") == card
    estimator, loaded, skipped = registry.load_latest_good("m-small", "requests")
    assert loaded == card and skipped[0].startswith("20991231T235959Z-abcdef: no version")


def test_a_save_prunes_the_temp_dirs_of_killed_saves(registry, clock, series) -> None:
    """Killed trainings left .tmp- dirs that nothing removed until the service restarted (23 after
    52 kills of `prescaler train`): each save removes those older than the grace period. The
    registry's clock is fixed in 2026-01 here, far from the files' mtimes: age is file-system time."""
    (first,) = save_n(registry, clock, series, 1)
    parent = registry.path("m-small", "requests")
    stale, young = parent / ".tmp-20260102T030405Z-0123456789ab", parent / ".tmp-20260102T030406Z-0123456789ab"
    for leftover in (stale, young):
        leftover.mkdir()
        (leftover / ARTIFACT_FILE).write_bytes(b"half a pickle")
    two_hours_ago, ten_minutes_ago = time.time() - 2 * 3600, time.time() - 600
    os.utime(stale, (two_hours_ago, two_hours_ago))
    os.utime(young, (ten_minutes_ago, ten_minutes_ago))  # may be a save in flight in another process

    (second,) = save_n(registry, clock, series, 1)
    assert sorted(p.name for p in parent.iterdir()) == sorted([first.version, second.version, young.name])
    assert registry.latest("m-small", "requests") == second

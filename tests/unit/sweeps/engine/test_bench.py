import time

import numpy as np
import pytest

from slimsweep.sweeps.engine.bench import (
    _thinned,
    _trimmed_means,
    measure_latency,
    measure_paired,
    median_confidence_interval,
    paired_estimate,
    summarise,
)
from slimsweep.sweeps.errors import ConfigError
from slimsweep.sweeps.settings import LatencySettings


def test_latency_counts_warmup_apart_and_reports_spread() -> None:
    calls = []

    def predict(inputs: dict[str, np.ndarray]) -> np.ndarray:
        calls.append(1)
        time.sleep(0.002)
        return inputs["x"]

    stats = measure_latency(
        predict, {"x": np.zeros(1)}, LatencySettings(warmup=3, repeats=9, min_seconds=0)
    )
    assert len(calls) == 12 and stats.repeats == 9
    assert 2.0 <= stats.p10_ms <= stats.median_ms <= stats.p90_ms < 50
    assert stats.ci95_low_ms <= stats.median_ms <= stats.ci95_high_ms
    assert set(stats.as_metrics()) == {
        "latency_ms_median",
        "latency_ms_p10",
        "latency_ms_p90",
        "latency_ms_ci95_low",
        "latency_ms_ci95_high",
        "latency_ms_std",
        "latency_repeats",
    }
    assert set(stats.as_metrics("_quiet")) == {f"{k}_quiet" for k in stats.as_metrics()}


def test_fast_models_are_timed_for_at_least_min_seconds() -> None:
    def predict(inputs: dict[str, np.ndarray]) -> np.ndarray:
        time.sleep(0.001)
        return inputs["x"]

    settings = LatencySettings(warmup=0, repeats=5, min_seconds=0.1)
    started = time.perf_counter()
    stats = measure_latency(predict, {"x": np.zeros(1)}, settings)
    assert time.perf_counter() - started >= 0.1
    assert stats.repeats >= 50 and stats.repeats % 5 == 0  # whole blocks of `repeats`


def test_median_interval_covers_the_true_median_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(0)
    true_median = np.log(2.0)  # of Exponential(1): skewed, like latencies
    covered = 0
    for _ in range(2000):
        low, high = median_confidence_interval(rng.exponential(size=50))
        covered += low <= true_median <= high
    assert 0.93 <= covered / 2000 <= 0.985


def test_median_interval_narrows_with_more_samples() -> None:
    rng = np.random.default_rng(1)
    widths = []
    for n in (20, 200, 2000):
        low, high = median_confidence_interval(rng.normal(10, 1, size=n))
        widths.append(high - low)
    assert widths[0] > widths[1] > widths[2]


def test_too_few_samples_give_the_whole_range() -> None:
    assert median_confidence_interval(np.array([3.0, 1.0, 2.0])) == (1.0, 3.0)
    stats = summarise(np.array([5.0]))
    assert stats.median_ms == stats.ci95_low_ms == stats.ci95_high_ms == 5.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"repeats": 0}, "repeats=0 must be at least 1"),
        ({"warmup": -1}, "warmup=-1 must be 0 or more"),
        ({"quiet_rounds": -1}, "quiet_rounds=-1 must be 0 or more"),
        ({"min_seconds": -1}, "min_seconds=-1 must be 0 or more"),
    ],
)
def test_bad_latency_settings_are_refused(kwargs, message) -> None:
    with pytest.raises(ConfigError, match=message):
        LatencySettings(**kwargs)


def test_paired_ratio_holds_while_the_machine_drifts_threefold() -> None:
    """A costs 2 ms and B 1 ms, times a slowdown that grows from 1x to ~3x during the window
    (another tenant arriving): absolute medians move, the ratio to B does not."""
    calls = [0]

    def busy(milliseconds: float):
        def predict(inputs: dict[str, np.ndarray]) -> None:
            calls[0] += 1
            slowdown = 1 + calls[0] / 150
            end = time.perf_counter() + milliseconds * slowdown / 1e3
            while time.perf_counter() < end:
                pass

        return predict

    settings = LatencySettings(warmup=1, repeats=40, min_seconds=0, pair_rounds=20)
    paired = measure_paired(busy(2.0), busy(1.0), {}, settings)
    assert paired.candidate.p90_ms > 1.5 * paired.candidate.p10_ms  # the drift is real
    assert abs(paired.ratio - 2.0) < 0.1, paired.ratio
    assert paired.ratio_ci95[0] <= 2.0 <= paired.ratio_ci95[1]
    assert paired.rounds == 20 and paired.candidate.repeats == paired.baseline.repeats == 40
    metrics = paired.as_metrics()
    assert metrics["latency_ratio"] == paired.ratio
    estimate = paired_estimate(metrics, reference_ms=3.0)
    assert estimate["latency_ms_median"] == pytest.approx(3.0 * paired.ratio)


def test_the_pair_alternates_which_goes_first() -> None:
    order: list[str] = []
    settings = LatencySettings(warmup=0, repeats=4, min_seconds=0, pair_rounds=4)
    measure_paired(lambda _: order.append("a"), lambda _: order.append("b"), {}, settings)
    # each block: one untimed call, then repeats / pair_rounds = 1 timed call
    assert "".join(order) == "aabb" + "bbaa" + "aabb" + "bbaa"


def test_on_the_calling_thread_the_ratio_leaves_out_time_spent_waiting() -> None:
    """A computes 2 ms then waits 4 ms (as if another process had the core); B computes
    1 ms. The calling thread's CPU time sees the 2x; wall time sees 6x."""

    def busy(milliseconds: float, waiting: float = 0.0):
        def predict(inputs: dict[str, np.ndarray]) -> None:
            end = time.perf_counter() + milliseconds / 1e3
            while time.perf_counter() < end:
                pass
            time.sleep(waiting / 1e3)

        return predict

    settings = LatencySettings(warmup=1, repeats=20, min_seconds=0, pair_rounds=10)
    on_cpu = measure_paired(busy(2.0, 4.0), busy(1.0), {}, settings, on_calling_thread=True)
    on_wall = measure_paired(busy(2.0, 4.0), busy(1.0), {}, settings)
    assert abs(on_cpu.ratio - 2.0) < 0.2 and on_cpu.as_metrics()["latency_ratio_cpu_clock"] == 1
    assert on_wall.ratio > 5.0
    assert on_cpu.candidate.median_ms > 5.5  # the recorded times stay wall-clock times


def test_every_resample_gets_the_trimmed_mean_of_its_pooled_runs() -> None:
    """The vectorised bootstrap equals scipy's trim_mean of each resample's runs, pooled."""
    from scipy.stats import trim_mean

    rng = np.random.default_rng(3)
    blocks = [rng.lognormal(size=rng.integers(3, 400)) for _ in range(12)]
    chosen = rng.integers(0, 12, (30, 12))
    counts = np.stack([np.bincount(row, minlength=12) for row in chosen])
    expected = [trim_mean(np.concatenate([blocks[i] for i in row]), 0.1) for row in chosen]
    np.testing.assert_allclose(_trimmed_means(blocks, None, counts), expected, rtol=1e-12)


def test_thinned_blocks_keep_each_resample_s_trimmed_mean() -> None:
    """Long blocks (a fast model's thousands of runs) are thinned for the bootstrap: each
    kept run stands for the runs it replaces, so blocks keep their weight in the pool."""
    rng = np.random.default_rng(4)
    sizes = rng.integers(300, 4000, 16)
    blocks = [rng.lognormal(size=n) * (1 + i % 3) for i, n in enumerate(sizes)]
    counts = np.stack([np.bincount(rng.integers(0, 16, 16), minlength=16) for _ in range(40)])
    exact = _trimmed_means(blocks, None, counts)
    np.testing.assert_allclose(_trimmed_means(*_thinned(blocks), counts), exact, rtol=5e-3)

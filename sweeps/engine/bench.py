"""Latency as measured: warm-up runs, then timed repeats summarised by median and spread."""

import time
from dataclasses import dataclass

import numpy as np

from slimsweep.sweeps.settings import LatencySettings
from slimsweep.sweeps.task import Predict


@dataclass(frozen=True)
class LatencyStats:
    median_ms: float
    p10_ms: float
    p90_ms: float
    ci95_low_ms: float  # 95 % confidence interval of the median (order statistics)
    ci95_high_ms: float
    std_ms: float
    repeats: int

    def as_metrics(self, suffix: str = "") -> dict[str, float]:
        return {
            f"latency_ms_median{suffix}": self.median_ms,
            f"latency_ms_p10{suffix}": self.p10_ms,
            f"latency_ms_p90{suffix}": self.p90_ms,
            f"latency_ms_ci95_low{suffix}": self.ci95_low_ms,
            f"latency_ms_ci95_high{suffix}": self.ci95_high_ms,
            f"latency_ms_std{suffix}": self.std_ms,
            f"latency_repeats{suffix}": float(self.repeats),
        }


def summarise(elapsed_ms: np.ndarray) -> LatencyStats:
    """Median and spread of timed runs; the CI needs no assumption about their distribution."""
    p10, median, p90 = np.percentile(elapsed_ms, [10, 50, 90])
    low, high = median_confidence_interval(elapsed_ms)
    return LatencyStats(
        float(median), float(p10), float(p90), low, high, float(elapsed_ms.std()), elapsed_ms.size
    )


def median_confidence_interval(samples: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Distribution-free CI of the median: the order statistics whose ranks bound a
    Binomial(n, 1/2) count with probability `level` (the sign-test interval)."""
    from scipy.stats import binom

    ordered = np.sort(samples)
    n = ordered.size
    rank = int(binom.ppf((1 - level) / 2, n, 0.5))  # 1-based rank of the lower bound
    if rank < 1:
        return float(ordered[0]), float(ordered[-1])
    return float(ordered[rank - 1]), float(ordered[n - rank])


def time_runs(
    predict: Predict,
    inputs: dict[str, np.ndarray],
    warmup: int,
    repeats: int,
    min_seconds: float = 0.0,
) -> np.ndarray:
    """Milliseconds of at least `repeats` runs after `warmup` untimed ones, timing more runs
    (in blocks of `repeats`) until `min_seconds` of them were timed: a fast model's 50 runs
    last a few tens of milliseconds, too short a window against the machine's own noise."""
    for _ in range(warmup):
        predict(inputs)
    blocks = []
    timed_ms = 0.0
    while not blocks or timed_ms < 1e3 * min_seconds:
        elapsed_ms = np.empty(repeats)
        for i in range(repeats):
            start = time.perf_counter_ns()
            predict(inputs)
            elapsed_ms[i] = (time.perf_counter_ns() - start) / 1e6
        blocks.append(elapsed_ms)
        timed_ms += float(elapsed_ms.sum())
    return np.concatenate(blocks)


def measure_latency(
    predict: Predict, inputs: dict[str, np.ndarray], settings: LatencySettings
) -> LatencyStats:
    runs = time_runs(predict, inputs, settings.warmup, settings.repeats, settings.min_seconds)
    return summarise(runs)

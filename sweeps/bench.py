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
    std_ms: float
    repeats: int

    def as_metrics(self) -> dict[str, float]:
        return {
            "latency_ms_median": self.median_ms,
            "latency_ms_p10": self.p10_ms,
            "latency_ms_p90": self.p90_ms,
            "latency_ms_std": self.std_ms,
            "latency_repeats": float(self.repeats),
        }


def measure_latency(
    predict: Predict, inputs: dict[str, np.ndarray], settings: LatencySettings
) -> LatencyStats:
    for _ in range(settings.warmup):
        predict(inputs)
    elapsed_ms = np.empty(settings.repeats)
    for i in range(settings.repeats):
        start = time.perf_counter_ns()
        predict(inputs)
        elapsed_ms[i] = (time.perf_counter_ns() - start) / 1e6
    p10, median, p90 = np.percentile(elapsed_ms, [10, 50, 90])
    return LatencyStats(
        float(median), float(p10), float(p90), float(elapsed_ms.std()), settings.repeats
    )

"""Latency as measured: warm-up runs, then timed repeats summarised by median and spread;
and a trial's latency paired with the baseline's in one window, so that what else the
machine does hits both alike and their ratio stands."""

import math
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


@dataclass(frozen=True)
class PairedLatency:
    """A candidate and the baseline's artifact timed in alternating blocks of one window."""

    candidate: LatencyStats  # wall-clock times of every timed run of the candidate
    baseline: LatencyStats  # the same for the baseline, in the same window
    ratio: float  # candidate / baseline, of 10 %-trimmed means over the window
    ratio_ci95: tuple[float, float]  # bootstrap over rounds
    rounds: int
    cpu_clock: bool  # the ratio is of the measuring thread's CPU time (else of wall time)

    def as_metrics(self) -> dict[str, float]:
        """What the worker records; the driver turns the ratio back into milliseconds with
        the sweep's reference (see `paired_estimate`)."""
        return {
            "latency_ms_median_measured": self.candidate.median_ms,
            "latency_ms_p10": self.candidate.p10_ms,
            "latency_ms_p90": self.candidate.p90_ms,
            "latency_ms_std": self.candidate.std_ms,
            "latency_repeats": float(self.candidate.repeats),
            "baseline_latency_ms_median": self.baseline.median_ms,
            "latency_ratio": self.ratio,
            "latency_ratio_ci95_low": self.ratio_ci95[0],
            "latency_ratio_ci95_high": self.ratio_ci95[1],
            "latency_ratio_cpu_clock": float(self.cpu_clock),
        }


@dataclass(frozen=True)
class _Block:
    wall_ms: np.ndarray
    cpu_ms: np.ndarray  # CPU time of the calling thread during each run


def _timed_block(
    predict: Predict, inputs: dict[str, np.ndarray], runs: int, min_seconds: float
) -> _Block:
    """One untimed call, then at least `runs` timed ones and at least `min_seconds`."""
    predict(inputs)
    wall: list[int] = []
    cpu: list[int] = []
    timed_ns, min_ns = 0, 1e9 * min_seconds
    while len(wall) < runs or timed_ns < min_ns:
        cpu_start, start = time.thread_time_ns(), time.perf_counter_ns()
        predict(inputs)
        elapsed = time.perf_counter_ns() - start
        cpu.append(time.thread_time_ns() - cpu_start)
        wall.append(elapsed)
        timed_ns += elapsed
    return _Block(np.array(wall) / 1e6, np.array(cpu) / 1e6)


@dataclass(frozen=True)
class PairedTimes:
    """The raw blocks of a paired window; its statistics (a bootstrap among them) are
    computed apart, so that they need not hold the node's exclusive measurement lock."""

    candidate: list[_Block]
    reference: list[_Block]
    cpu_clock: bool

    def statistics(self) -> PairedLatency:
        def times(blocks: list[_Block]) -> list[np.ndarray]:
            return [b.cpu_ms if self.cpu_clock else b.wall_ms for b in blocks]

        candidate, reference = times(self.candidate), times(self.reference)
        return PairedLatency(
            summarise(np.concatenate([b.wall_ms for b in self.candidate])),
            summarise(np.concatenate([b.wall_ms for b in self.reference])),
            _ratio(candidate, reference),
            _ratio_interval(candidate, reference),
            len(self.candidate),
            self.cpu_clock,
        )


def time_paired(
    predict: Predict,
    baseline: Predict,
    inputs: dict[str, np.ndarray],
    settings: LatencySettings,
    *,
    on_calling_thread: bool = False,
) -> PairedTimes:
    """`pair_rounds` rounds, each a short block of the candidate and one of the baseline, the
    order alternating (A B, B A, ...) so that a steady drift cancels. Each block runs one
    untimed call, then at least `repeats / pair_rounds` timed ones and at least
    `min_seconds / (2 pair_rounds)` of timing: the window times each artifact for about
    half of `min_seconds`.

    When the artifact computes on the calling thread (one intra-op thread on a CPU), the
    ratio is of that thread's CPU time: time spent waiting while other processes had the
    core is not in it, while what they do to caches and memory is. Otherwise it is of wall
    time, whose trimmed means over many short blocks average the CPU share alike for both."""
    for artifact in (predict, baseline):
        time_runs(artifact, inputs, settings.warmup, 0)
    rounds = settings.pair_rounds
    runs = math.ceil(settings.repeats / rounds)
    block_seconds = settings.min_seconds / (2 * rounds)
    candidate: list[_Block] = []
    reference: list[_Block] = []
    for round_number in range(rounds):
        blocks = [(candidate, predict), (reference, baseline)]
        for sink, artifact in blocks if round_number % 2 == 0 else reversed(blocks):
            sink.append(_timed_block(artifact, inputs, runs, block_seconds))
    return PairedTimes(candidate, reference, on_calling_thread)


def measure_paired(
    predict: Predict,
    baseline: Predict,
    inputs: dict[str, np.ndarray],
    settings: LatencySettings,
    *,
    on_calling_thread: bool = False,
) -> PairedLatency:
    """`time_paired`, summarised."""
    times = time_paired(predict, baseline, inputs, settings, on_calling_thread=on_calling_thread)
    return times.statistics()


TRIM = 0.1  # share of runs cut from each end before the mean (a trimmed mean)


def _trimmed_means(
    blocks: list[np.ndarray], run_weights: np.ndarray | None, counts: np.ndarray
) -> np.ndarray:
    """The 10 %-trimmed mean of the runs of `blocks` pooled, once for each row of `counts`
    (how many times each block is taken; each run of block i weighs `run_weights[i]`, 1 when
    None): every bootstrap resample in a few array passes.
    The runs are sorted once; a resample only weights them, and trimming cuts weight off
    both ends of the cumulative sum (as scipy's trim_mean cuts whole runs)."""
    values = np.concatenate(blocks)
    block_of = np.repeat(np.arange(len(blocks)), [b.size for b in blocks])
    order = np.argsort(values, kind="stable")
    values, block_of = values[order], block_of[order]
    means = np.empty(counts.shape[0])
    chunk = max(1, 2_000_000 // values.size)
    for first in range(0, counts.shape[0], chunk):
        # whole numbers below 2**24 are exact in float32, the fastest type for these passes
        taken = counts[first : first + chunk] * (1 if run_weights is None else run_weights)
        weights = taken.astype(np.float32)[:, block_of]
        above = np.cumsum(weights, axis=1)
        total = above[:, -1:]
        # whole runs cut from each end, as scipy does; a fraction of a weight when thinned
        cut = np.floor(TRIM * total) if run_weights is None else TRIM * total
        kept = np.clip(above, cut, total - cut) - np.clip(above - weights, cut, total - cut)
        means[first : first + chunk] = (kept @ values) / (total[:, 0] - 2 * cut[:, 0])
    return means


def _ratio(candidate: list[np.ndarray], reference: list[np.ndarray]) -> float:
    once = np.ones((1, len(candidate)), dtype=np.int64)
    return float(
        _trimmed_means(candidate, None, once)[0] / _trimmed_means(reference, None, once)[0]
    )


def _ratio_interval(
    candidate: list[np.ndarray], reference: list[np.ndarray], resamples: int = 400
) -> tuple[float, float]:
    """95 % bootstrap interval of the ratio, resampling whole rounds (a round's two blocks
    shared one stretch of the machine's weather, so they stay together)."""
    rounds = len(candidate)
    chosen = np.random.default_rng(0).integers(0, rounds, (resamples, rounds))
    counts = np.stack([np.bincount(row, minlength=rounds) for row in chosen])
    ratios = _trimmed_means(*_thinned(candidate), counts) / _trimmed_means(
        *_thinned(reference), counts
    )
    low, high = np.percentile(ratios, [2.5, 97.5])
    return float(low), float(high)


BOOTSTRAP_RUNS_PER_BLOCK = 256


def _thinned(blocks: list[np.ndarray]) -> tuple[list[np.ndarray], np.ndarray]:
    """Each block cut to evenly spaced order statistics, each standing for as many runs as
    it replaces (the weights returned): a fast model's 3,000 runs a block would otherwise
    make the bootstrap cost more than the window it summarises."""
    kept, weights = [], []
    for block in blocks:
        if block.size > BOOTSTRAP_RUNS_PER_BLOCK:
            picks = np.linspace(0, block.size - 1, BOOTSTRAP_RUNS_PER_BLOCK).round()
            kept.append(np.sort(block)[picks.astype(int)])
        else:
            kept.append(block)
        weights.append(block.size / kept[-1].size)
    return kept, np.array(weights)


def paired_estimate(metrics: dict[str, float], reference_ms: float) -> dict[str, float]:
    """The latency a trial reports: its ratio to the baseline, measured in one window, times
    the sweep's reference median of the baseline. Drift and other tenants hit both sides of
    the ratio, so this figure does not move with the machine's load; Optuna learns from it."""
    return {
        "latency_reference_ms": reference_ms,
        "latency_ms_median": metrics["latency_ratio"] * reference_ms,
        "latency_ms_ci95_low": metrics["latency_ratio_ci95_low"] * reference_ms,
        "latency_ms_ci95_high": metrics["latency_ratio_ci95_high"] * reference_ms,
    }

import time

import numpy as np
import pytest

from slimsweep.sweeps.bench import measure_latency
from slimsweep.sweeps.errors import ConfigError
from slimsweep.sweeps.settings import LatencySettings


def test_latency_counts_warmup_apart_and_reports_spread() -> None:
    calls = []

    def predict(inputs: dict[str, np.ndarray]) -> np.ndarray:
        calls.append(1)
        time.sleep(0.002)
        return inputs["x"]

    stats = measure_latency(predict, {"x": np.zeros(1)}, LatencySettings(warmup=3, repeats=9))
    assert len(calls) == 12 and stats.repeats == 9
    assert 2.0 <= stats.p10_ms <= stats.median_ms <= stats.p90_ms < 50
    assert set(stats.as_metrics()) == {
        "latency_ms_median",
        "latency_ms_p10",
        "latency_ms_p90",
        "latency_ms_std",
        "latency_repeats",
    }


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"repeats": 0}, "repeats=0 must be at least 1"),
        ({"warmup": -1}, "warmup=-1 must be 0 or more"),
    ],
)
def test_bad_latency_settings_are_refused(kwargs, message) -> None:
    with pytest.raises(ConfigError, match=message):
        LatencySettings(**kwargs)

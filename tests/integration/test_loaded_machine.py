"""Latency on a loaded machine: each trial is timed paired with the baseline's artifact, so
the ratio it records holds when other work starts in the middle of a sweep, while the
absolute numbers do not."""

import multiprocessing
import os
import subprocess
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from slimsweep.sweeps.engine.study import open_storage

pytestmark = pytest.mark.integration

HERE = Path(__file__).parent
RECIPES = [
    "{prune: {stage: none}, quantize: {precision: int8_static, per_channel: true,"
    " calibration: minmax}}",
    "{prune: {stage: magnitude_prune, sparsity: 0.7, scope: global}, quantize: {precision: fp16}}",
    "{prune: {stage: none}, quantize: {precision: int4_weight, group_size: 32}}",
]


def _args(workdir: Path, cache: Path, name: str) -> list[str]:
    return [
        "run",
        "--quiet",
        f"sweep.dir={workdir}",
        f"sweep.cache_dir={cache}",
        f"sweep.name={name}",
        f"search.n_trials={1 + len(RECIPES)}",  # the baseline, then each recipe, in order
        "search.parallelism=1",
        "task.latency_batch_size=512",  # runs of 4-10 ms: long enough for load to show
        "runtime.latency.quiet_rounds=0",
        f"space.enqueue=[{', '.join(RECIPES)}]",
    ]


def _spin(stop: multiprocessing.Event) -> None:
    while not stop.is_set():
        sum(range(100_000))


def _trials(workdir: Path, name: str) -> list[optuna.trial.FrozenTrial]:
    storage = open_storage(f"sqlite:///{workdir}/optuna.db")
    return optuna.load_study(study_name=name, storage=storage).get_trials()


def _ratios(trials: list[optuna.trial.FrozenTrial]) -> dict[str, float]:
    return {t.user_attrs["recipe"]: t.user_attrs["metrics"]["latency_ratio"] for t in trials}


def test_paired_ratios_hold_when_other_work_loads_the_machine_mid_sweep(
    tmp_path: Path, baseline_cache: Path, trained_digits
) -> None:
    cli = [os.sys.executable, "-m", "slimsweep.sweeps.cli"]
    calm = subprocess.run(
        [*cli, *_args(tmp_path, baseline_cache, "calm")], cwd=HERE, capture_output=True, text=True
    )
    assert calm.returncode == 0, calm.stderr
    calm_trials = _trials(tmp_path, "calm")

    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    hogs = [context.Process(target=_spin, args=(stop,)) for _ in range((os.cpu_count() or 2) + 1)]
    busy = subprocess.Popen(
        [*cli, *_args(tmp_path, baseline_cache, "busy")],
        cwd=HERE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and busy.poll() is None:
            time.sleep(0.3)
            if (tmp_path / "optuna.db").exists():
                try:
                    done = [t for t in _trials(tmp_path, "busy") if t.state == TrialState.COMPLETE]
                except KeyError:  # the study is not created yet
                    continue
                if len(done) >= 2:
                    break
        loaded_from = time.time()
        for hog in hogs:
            hog.start()
        _, stderr = busy.communicate(timeout=600)
    finally:
        stop.set()
        for hog in hogs:
            if hog.pid is not None:
                hog.join()
        if busy.poll() is None:
            busy.kill()
    assert busy.returncode == 0, stderr
    busy_trials = _trials(tmp_path, "busy")
    assert all(t.state == TrialState.COMPLETE for t in [*calm_trials, *busy_trials])

    calm_ratios, busy_ratios = _ratios(calm_trials), _ratios(busy_trials)
    assert calm_ratios.keys() == busy_ratios.keys() and len(calm_ratios) == 1 + len(RECIPES)
    for recipe, ratio in busy_ratios.items():
        assert abs(ratio / calm_ratios[recipe] - 1) < 0.10, (recipe, ratio, calm_ratios[recipe])

    # The load was real: trials measured after it began saw the baseline itself slow down.
    calm_baseline = calm_trials[0].user_attrs["metrics"]["baseline_latency_ms_median"]
    loaded = [
        t
        for t in busy_trials
        if any(p == "latency" and start > loaded_from for p, start, _ in t.user_attrs["phases"])
    ]
    assert loaded, "no trial was measured under load"
    for trial in loaded:
        slowed = trial.user_attrs["metrics"]["baseline_latency_ms_median"] / calm_baseline
        assert slowed > 1.5, (trial.number, slowed)

"""The Optuna study behind a sweep: created or resumed, and the budget it has left."""

import time
import warnings
from datetime import UTC, datetime
from typing import Any

import optuna
from optuna.trial import TrialState

from slimsweep.sweeps.config import Settings
from slimsweep.sweeps.engine.warm_start import first_tries, seed_from
from slimsweep.sweeps.errors import ConfigError, SweepError
from slimsweep.sweeps.results.keys import (
    CONSTRAINTS_ATTR,
    LAST_RUN_AT_ATTR,
    REFUSED_ATTR,
    REQUEUED_FROM_ATTR,
    RUNTIME_ATTR,
    SEARCHED_ATTR,
    SEEDED_FROM_ATTR,
)


def build_sampler(
    sampler_config: dict[str, Any], seed_offset: int = 0
) -> optuna.samplers.BaseSampler:
    """The configured sampler. A resumed sweep's sampler is seeded `seed_offset` (its trials
    so far) further, so that it does not propose again what it proposed first."""
    from hydra.utils import instantiate

    extra = {}
    if seed_offset and sampler_config.get("seed") is not None:
        extra["seed"] = sampler_config["seed"] + seed_offset
    try:
        sampler = instantiate(sampler_config, **extra)
    except Exception as error:
        raise ConfigError(
            f"search.sampler: cannot build {sampler_config.get('_target_')!r}: {error}"
        ) from None
    if not isinstance(sampler, optuna.samplers.BaseSampler):
        raise ConfigError(f"search.sampler: {type(sampler).__name__} is not an Optuna sampler")
    return sampler


def open_storage(
    url: str, attempts: int = 5, *, heartbeat_s: int | None = None, grace_s: int | None = None
) -> optuna.storages.RDBStorage:
    """The storage at url, tolerating another process creating its tables at the same moment.

    Optuna creates the schema on first open without a lock (optuna/optuna#4621), so a driver
    starting while `slimsweep pareto` or a dashboard opens the same new file can lose a
    'table already exists' race; the tables are there by the time it tries again. The driver
    opens it with Optuna's heartbeat: a trial silent for `grace_s` is failed and asked again.
    """
    import sqlalchemy.exc

    beat = {}
    if heartbeat_s is not None:
        beat = {
            "heartbeat_interval": heartbeat_s,
            "grace_period": grace_s,
            "heartbeat_stale_trial_callback": _ask_again,
        }
    for attempt in range(attempts - 1):
        try:
            return optuna.storages.RDBStorage(url, **beat)
        except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.IntegrityError) as error:
            if "already exists" not in str(error) and "alembic_version" not in str(error):
                raise
            time.sleep(0.2 * (attempt + 1))
    return optuna.storages.RDBStorage(url, **beat)


def open_study(settings: Settings, storage: optuna.storages.BaseStorage) -> optuna.Study:
    """Create the sweep's study, or load it to resume; objectives must not change midway.
    A new sweep queues its baseline, its space's `enqueue` and the first tries, after the
    results it is seeded with; a resumed one gets its sampler seeded past its first draws."""
    directions = [o.direction for o in settings.search.objectives]
    names = settings.metric_names()
    study = optuna.create_study(
        study_name=settings.sweep.name,
        storage=storage,
        sampler=build_sampler(settings.search.sampler),
        directions=directions,
        load_if_exists=True,
    )
    asked = len(study.get_trials(deepcopy=False))
    if asked:
        study.sampler = build_sampler(settings.search.sampler, seed_offset=asked)
    if study.metric_names is not None and list(study.metric_names) != names:
        raise SweepError(
            f"sweep {settings.sweep.name!r} was started with objectives {study.metric_names}; "
            f"this config asks for {names}. Use another sweep.name."
        )
    if [d.name.lower() for d in study.directions] != directions:
        raise SweepError(f"sweep {settings.sweep.name!r} was started with other directions")
    study.set_metric_names(names)
    _check_same_space(study, settings)
    study.set_user_attr(LAST_RUN_AT_ATTR, datetime.now(UTC).isoformat())
    _require_same_constraints(study, settings)
    # what latencies depend on, for seeding another sweep (how long each is timed does not)
    runtime = {k: v for k, v in settings.resolved["runtime"].items() if k != "latency"}
    study.set_user_attr(RUNTIME_ATTR, runtime)
    if settings.search.seed_from:
        seed_from(study, storage, settings)
    if settings.space.baseline is not None and not _done_or_queued(study, settings.space.baseline):
        _enqueue_baseline(study, settings.space.baseline)
    for params in settings.space.enqueue:
        study.enqueue_trial(params, skip_if_exists=True)
    if settings.search.first_tries:  # as many as the trials left to run have room for
        waiting = len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
        room = settings.search.n_trials - finished_count(study) - waiting
        for params in first_tries(settings.space)[: max(room, 0)]:
            study.enqueue_trial(params, skip_if_exists=True)
    return study


def _require_same_constraints(study: optuna.Study, settings: Settings) -> None:
    """Each told trial keeps the constraint values it was told with: a resumed sweep keeps
    its constraints (samplers refuse trials with different sets of them)."""
    before = study.user_attrs.get(CONSTRAINTS_ATTR)
    now = settings.constraint_specs()
    if before is not None and before != now and study.get_trials(deepcopy=False):
        raise SweepError(
            f"sweep {settings.sweep.name!r} was started with search.constraints {before}; "
            f"this config asks for {now}. Use another sweep.name."
        )
    study.set_user_attr(CONSTRAINTS_ATTR, now)


def _check_same_space(study: optuna.Study, settings: Settings) -> None:
    """A resumed sweep runs under the space and task it was started with: its trials would
    not compare otherwise. Another one is refused, naming what changed, unless allowed."""
    searched = {key: settings.resolved[key] for key in ("task", "space")}
    searched["space"] = {k: v for k, v in searched["space"].items() if k != "enqueue"}
    before = study.user_attrs.get(SEARCHED_ATTR)
    if before is not None and before != searched and not settings.sweep.allow_changed_space:
        changed = _differences(before, searched)
        raise SweepError(
            f"sweep {settings.sweep.name!r} was started under another space or task "
            f"({'; '.join(changed[:3])}{'; ...' if len(changed) > 3 else ''}); use another "
            "sweep.name, or sweep.allow_changed_space=true to go on under this one"
        )
    study.set_user_attr(SEARCHED_ATTR, searched)


def _differences(before: Any, now: Any, where: str = "") -> list[str]:
    if isinstance(before, dict) and isinstance(now, dict):
        return [
            change
            for key in sorted(set(before) | set(now), key=str)
            for change in _differences(before.get(key), now.get(key), f"{where}.{key}".lstrip("."))
        ]
    return [] if before == now else [f"{where}: {before!r} -> {now!r}"]


def _enqueue_baseline(study: optuna.Study, baseline: dict[str, Any]) -> None:
    """The baseline runs first; again if it failed before, then in place of that failure
    (which no longer counts toward n_trials)."""
    failed = [
        t.number
        for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
        if t.system_attrs.get("fixed_params", t.params) == baseline
    ]
    attrs = {REQUEUED_FROM_ATTR: failed[-1]} if failed else {}
    study.enqueue_trial(baseline, user_attrs=attrs)


def _done_or_queued(study: optuna.Study, params: dict[str, Any]) -> bool:
    live = (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING)
    for trial in study.get_trials(deepcopy=False, states=live):
        if trial.system_attrs.get("fixed_params", trial.params) == params:
            return True
    return False


def interrupted_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Trials left RUNNING by a driver that stopped or died: failed, their params asked again.

    Called only by the driver that holds the sweep's lease, so every RUNNING trial is
    orphaned. Those whose heartbeat outlived the grace period go through Optuna's own
    `fail_stale_trials`; those of a driver that died moments ago (its lease was freed because
    its process is gone) through the same callback."""
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study.tell(trial.number, state=TrialState.FAIL)
        _ask_again(study, trial)
    return running


def _ask_again(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """Optuna's stale-trial callback: the orphaned recipe is queued to run again, in place of
    the failed trial (which then no longer counts toward n_trials)."""
    study.enqueue_trial(trial.params, user_attrs={REQUEUED_FROM_ATTR: trial.number})


def finished_count(study: optuna.Study) -> int:
    """Trials that count toward n_trials: an interrupted one is replaced by its re-run."""
    trials = study.get_trials(deepcopy=False)
    ended = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    done = sum(t.state in ended for t in trials)
    taken = sum(SEEDED_FROM_ATTR in t.user_attrs for t in trials)  # run by another sweep
    refused = sum(REFUSED_ATTR in t.user_attrs for t in trials)  # its runtime ran nothing
    return done - taken - refused - sum(REQUEUED_FROM_ATTR in t.user_attrs for t in trials)


def open_existing(storage: str, name: str | None) -> optuna.Study:
    """A study to read: the named one, or the one run most recently."""
    try:
        rdb = open_storage(storage)
        names = optuna.get_all_study_names(rdb)
    except Exception as error:
        raise SweepError(f"cannot read sweeps from {storage}: {error}") from None
    if not names:
        raise SweepError(f"no sweeps in {storage}; run `slimsweep run` first")
    if name is None:
        studies = [optuna.load_study(study_name=n, storage=rdb) for n in names]
        return max(studies, key=lambda s: s.user_attrs.get(LAST_RUN_AT_ATTR, ""))
    if name not in names:
        raise SweepError(f"unknown sweep {name!r}; known: {', '.join(sorted(names))}")
    return optuna.load_study(study_name=name, storage=rdb)

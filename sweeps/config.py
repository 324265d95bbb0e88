"""Compose the Hydra config and check all of it before anything launches."""

import copy
import dataclasses
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slimsweep.sweeps.errors import ConfigError, require_choice
from slimsweep.sweeps.plugins import Plugins
from slimsweep.sweeps.settings import (
    QUALITY,
    ClusterSettings,
    RuntimeConfig,
    SearchSettings,
    SweepSettings,
    TrackingSettings,
)
from slimsweep.sweeps.space import NO_STAGE, RecipeStep, Space
from slimsweep.sweeps.typed import typed

if TYPE_CHECKING:
    from slimsweep.sweeps.engine.worker import WorkerSpec

SECTIONS = ("sweep", "search", "cluster", "tracking", "runtime", "task", "space", "plugins")
# Filled by `compose`, not written by users: each runtime a space's `runtime` choice lists,
# composed as `runtime=<name>` would compose it, with the settings the space gives it.
RUNTIME_CHOICES = "runtime_choices"


@dataclass(frozen=True)
class Settings:
    sweep: SweepSettings
    search: SearchSettings
    cluster: ClusterSettings
    tracking: TrackingSettings
    runtime: RuntimeConfig  # the sweep's: its baseline is what every latency is paired with
    task: dict[str, Any]
    space: Space
    plugins: Plugins
    quality_metric: str  # the task's name for its metric, e.g. "accuracy"
    resolved: dict[str, Any]  # the whole config as composed, logged with every run
    runtimes: dict[str, RuntimeConfig] = dataclasses.field(default_factory=dict)  # choices

    def trial_spec(self, spec: "WorkerSpec", params: dict[str, Any]) -> "WorkerSpec":
        """The worker spec of one draw: the runtime it chose, its latency paired with the
        sweep runtime's baseline (so that every latency compares on the same target)."""
        chosen = self.space.runtime_of(params)
        if chosen is None or chosen == self.runtime.name:
            return spec
        return dataclasses.replace(spec, runtime=self.runtimes[chosen], reference=self.runtime)

    def worker_spec(self, scratch: Path | None = None) -> "WorkerSpec":
        """What every worker of this sweep sets up: task, runtime, plugins, the node lock, and
        the folder its temporary files go to (removed by the driver when it stops)."""
        from slimsweep.sweeps.engine.worker import WorkerSpec

        # On a cluster the plugins' folder reaches the nodes as Ray's working_dir, first on
        # their import path; the driver's own path is still added after it, for a Ray that
        # was started without that runtime_env (in a notebook, say) on this machine.
        return WorkerSpec(
            self.task,
            self.runtime,
            self.plugins,
            self.cluster.exclusive_latency,
            str(scratch) if scratch else "",
            gpu=self.cluster.gpus_per_trial > 0,
            early_stop=self.search.early_stop,
        )

    def runtime_env(self) -> dict[str, Any] | None:
        """Ray's runtime_env on a cluster: the folder the user's plugins live in becomes
        every worker's working directory (and import path), without the sweep's own stores."""
        if self.cluster.address is None or not self.plugins.modules:
            return None
        folder = Path(self.plugins.search_dir)
        stores = [
            Path(path).expanduser().resolve()
            for path in (self.sweep.dir, self.sweep.cache_dir, self.tracking.artifact_root)
            if path
        ]
        # anchored at the folder ("/runs", not every "runs" below it); a store that is the
        # folder itself is left to the patterns after it (its databases, MLflow's folders)
        inside = [
            f"/{p.relative_to(folder)}" for p in stores if p != folder and p.is_relative_to(folder)
        ]
        return {
            "working_dir": str(folder),
            "excludes": [*inside, ".git", ".venv", "__pycache__", "*.db", "mlruns", "mlartifacts"],
        }

    def measure_options(self) -> dict[str, Any]:
        """Ray options of the task that times an artifact: a hardware-target node when
        `cluster.measure_on` names one, else wherever a trial runs."""
        from slimsweep.sweeps.runtimes import RUNTIMES

        if not self.cluster.measure_on:
            return self.cluster.compute_options()
        return self.cluster.measure_options(RUNTIMES.get(self.runtime.name).gpu)

    def metric_names(self) -> list[str]:
        """Objective names as a user reads them: `quality` becomes the task's metric."""
        return [self._metric(o.metric) for o in self.search.objectives]

    def constraint_specs(self) -> list[dict[str, Any]]:
        """The constraints as the study keeps them, `quality` named as the task's metric."""
        return [
            {**dataclasses.asdict(c), "metric": self._metric(c.metric)}
            for c in self.search.constraints
        ]

    def _metric(self, name: str) -> str:
        return self.quality_metric if name == QUALITY else name


def compose(overrides: list[str], runtime_choices: bool = True) -> dict[str, Any]:
    """The config from conf/ plus Hydra overrides, resolved, with `sweep.dir` made absolute."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        with initialize_config_module(config_module="slimsweep.conf", version_base="1.3"):
            cfg = hydra_compose(config_name="config", overrides=overrides)
        cfg.sweep.dir = str(Path(cfg.sweep.dir).expanduser().resolve())
        resolved = OmegaConf.to_container(cfg, resolve=True)
    except (HydraException, OmegaConfBaseException) as error:
        as_fields = _task_fields_added(str(error), overrides)
        if as_fields is not None:
            return compose(as_fields, runtime_choices)
        raise ConfigError(_explain(str(error), overrides)) from None
    for key in resolved:
        if key not in (*SECTIONS, RUNTIME_CHOICES):
            raise ConfigError(f"unknown key {key!r}; allowed top-level keys: {', '.join(SECTIONS)}")
    spec = resolved["space"].get("runtime")
    choices = spec.get("choices") if isinstance(spec, dict) else None  # else: refused later
    if runtime_choices and isinstance(choices, list) and choices:
        # the sweep's own runtime keeps its overrides; the others are composed as named,
        # with the settings the space gives them
        others = [o for o in overrides if not o.lstrip("+~").startswith("runtime")]
        settings = spec.get("settings") or {}
        if not isinstance(settings, dict):
            raise ConfigError(
                f"space.runtime.settings must map a choice to its runtime keys; got {settings!r}"
            )
        own = resolved["runtime"].get("name")
        if own in settings and own in choices:
            raise ConfigError(
                f"space.runtime.settings.{own}: {own} is the sweep's runtime (runtime=), whose "
                f"keys are runtime.* overrides; give settings to a labelled choice "
                f"({own}:<label>) instead"
            )
        resolved[RUNTIME_CHOICES] = {
            name: copy.deepcopy(resolved["runtime"])
            if name == own
            else _composed_runtime(others, str(name), settings.get(name) or {})
            for name in choices
        }
    return resolved


def _composed_runtime(
    overrides: list[str], choice: str, settings: dict[str, Any]
) -> dict[str, Any]:
    from slimsweep.sweeps.space import runtime_name

    where = f"space.runtime.settings.{choice}"
    if not isinstance(settings, dict):
        raise ConfigError(f"{where} must map runtime keys to values; got {settings!r}")
    if "name" in settings:
        raise ConfigError(f"{where}.name: a choice's runtime is its label's ({choice})")
    own = [f"runtime.{key}={_override_value(value)}" for key, value in _dotted(settings)]
    try:
        composed = compose(
            [*overrides, f"runtime={runtime_name(choice)}", *own], runtime_choices=False
        )
    except ConfigError as error:
        raise ConfigError(f"space.runtime.choices: {choice}: {error}") from None
    return composed["runtime"]


def _dotted(settings: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Nested settings as dotted keys (`latency: {repeats: 5}` → `latency.repeats`)."""
    pairs: list[tuple[str, Any]] = []
    for key, value in settings.items():
        if isinstance(value, dict):
            pairs += _dotted(value, f"{prefix}{key}.")
        else:
            pairs.append((f"{prefix}{key}", value))
    return pairs


def _override_value(value: Any) -> str:
    """A settings value as a Hydra override writes it (JSON's scalars and lists are its)."""
    import json

    return json.dumps(value)


def load_settings(overrides: list[str]) -> Settings:
    """Everything a sweep needs, checked: a wrong key or value fails here, naming it."""
    return settings_from(compose(overrides))


def settings_from(resolved: dict[str, Any]) -> Settings:
    """Settings from a config as composed (by `compose`, or as a sweep logged it)."""
    from slimsweep.compressors import STAGES
    from slimsweep.sweeps.runtimes import RUNTIMES, runtime_config
    from slimsweep.sweeps.space import parse_space
    from slimsweep.sweeps.task import build_task

    plugins = Plugins(tuple(resolved.get("plugins") or ()), os.getcwd())
    plugins.load()
    task = build_task(resolved["task"])
    stage_configs = {name: STAGES.get(name).config_type for name in STAGES}
    cluster = typed(ClusterSettings, resolved["cluster"], "cluster")  # runtime threads follow it
    runtime = runtime_config(resolved["runtime"])
    space = parse_space(resolved["space"], stage_configs, tuple(RUNTIMES.names()), runtime.name)
    runtimes = {
        name: _choice_config(name, node) for name, node in resolved.get(RUNTIME_CHOICES, {}).items()
    }
    _check_runtime_choices(runtime, runtimes)
    _check_queued_runtimes(space)
    _check_runtime_realises(space, [runtime] if space.runtime is None else list(runtimes.values()))
    _check_stage_order(space)
    _check_architecture(space, task)
    if cluster.address is None:  # trials run on this machine: it must have the hardware
        for name in dict.fromkeys([runtime.name, *(c.name for c in runtimes.values())]):
            reason = RUNTIMES.get(name).unavailable()
            if reason:
                raise ConfigError(f"runtime={name} cannot run here: {reason}")
    if RUNTIMES.get(runtime.name).gpu and not cluster.gpus_per_trial:
        raise ConfigError(
            f"runtime={runtime.name} runs on a GPU, and a trial has one only when it asks Ray "
            "for it: set cluster.gpus_per_trial (1, or 0.5 for two trials per GPU)"
        )
    if cluster.address is None:
        cpus = cluster.num_cpus or os.cpu_count() or 1
        if cluster.cpus_per_trial > cpus:
            raise ConfigError(
                f"cluster.cpus_per_trial={cluster.cpus_per_trial} is more than the {cpus} CPUs "
                "this machine gives Ray (cluster.num_cpus): no trial could ever start"
            )
        gpus = _local_gpus()
        if cluster.gpus_per_trial > gpus:
            raise ConfigError(
                f"cluster.gpus_per_trial={cluster.gpus_per_trial:g}: this machine has {gpus} "
                "CUDA GPU(s); no trial could ever start"
            )
    return Settings(
        sweep=typed(SweepSettings, resolved["sweep"], "sweep"),
        search=typed(SearchSettings, resolved["search"], "search"),
        cluster=cluster,
        tracking=typed(TrackingSettings, resolved["tracking"], "tracking"),
        runtime=runtime,
        task=resolved["task"],
        space=space,
        plugins=plugins,
        quality_metric=task.metric,
        resolved=resolved,
        runtimes=runtimes,
    )


def _choice_config(choice: str, node: dict[str, Any]) -> RuntimeConfig:
    """A runtime choice's config, typed; a refusal names the choice it belongs to."""
    from slimsweep.sweeps.runtimes import runtime_config

    try:
        return runtime_config(node)
    except ConfigError as error:
        raise ConfigError(f"space.runtime.choices: {choice}: {error}") from None


def _local_gpus() -> int:
    import torch

    return torch.cuda.device_count()


def check_objectives(settings: Settings, quality_metrics: tuple[str, ...]) -> None:
    """Objectives may name any metric every trial records: the task's quality scores (from
    its check), size, latency statistics, parameters, and the bytes each slot saved."""
    from slimsweep.sweeps.results.keys import SAVED_BYTES_PREFIX, TRIAL_METRICS

    slots = [f"{SAVED_BYTES_PREFIX}{slot.name}" for slot in settings.space.slots]
    recorded = (QUALITY, *quality_metrics, *TRIAL_METRICS, *slots)
    names = settings.metric_names()
    for objective in settings.search.objectives:
        require_choice("search.objectives[].metric", objective.metric, recorded)
    for constraint in settings.search.constraints:
        require_choice("search.constraints[].metric", constraint.metric, recorded)
        if constraint.of_baseline and settings.space.baseline is None:
            raise ConfigError(
                f"search.constraints[{constraint.metric}]: of_baseline needs the space's "
                "baseline; this space has none"
            )
    if len(set(names)) != len(names):
        raise ConfigError(f"search.objectives names a metric twice: {names}")


def _check_runtime_realises(space: Space, runtimes: list[RuntimeConfig]) -> None:
    """Every quantization plan the space can produce must have a handler in a runtime it
    may target (with a runtime choice, a draw that its runtime refuses is pruned when drawn,
    see `runtime_refusal`). Defaults count too. The refusal names the key whose value no
    runtime can run, when changing it would do."""
    from slimsweep.compressors import STAGES

    names = ", ".join(dict.fromkeys(r.name for r in runtimes))
    who = f"runtime {names} cannot" if len(runtimes) == 1 else f"none of the runtimes {names} can"
    for slot in space.slots:
        for name in slot.stage.candidates():
            if name == NO_STAGE or not STAGES.get(name).quantizes:
                continue

            def refusal(params: dict[str, Any], name: str = name) -> str | None:
                """Why every runtime refuses the step, `_ACCEPTED`, or None for a config the
                stage refuses itself (its own check says so when the space is parsed)."""
                reasons = [_step_refusal(name, params, r.name) for r in runtimes]
                if any(r is None for r in reasons):
                    return None
                if any(r == _ACCEPTED for r in reasons):
                    return _ACCEPTED
                return "; ".join(dict.fromkeys(str(r) for r in reasons))

            for params in slot.configurations(name):
                reason = refusal(params)
                if reason in (None, _ACCEPTED):
                    continue
                where = f"space.recipe.{slot.name}"
                options = {p.key: p.candidates() for p in slot.params}
                for key, value in params.items():
                    if any(refusal({**params, key: o}) == _ACCEPTED for o in options[key]):
                        raise ConfigError(
                            f"{where}.{key}: {who} run {name}({key}={value}): {reason}"
                        )
                raise ConfigError(f"{where}.stage: {who} run {name}: {reason}")


_ACCEPTED = "accepted"


def _step_refusal(stage_name: str, params: dict[str, Any], runtime: str) -> str | None:
    """The runtime's reason for refusing the plan a step fixes, `_ACCEPTED`, or None for a
    config the stage refuses itself."""
    from slimsweep.compressors import STAGES
    from slimsweep.sweeps.runtimes import RUNTIMES
    from slimsweep.sweeps.space import runtime_name

    handlers = getattr(RUNTIMES.get(runtime_name(runtime)), "handlers", None)
    if handlers is None:
        raise ConfigError(f"runtime {runtime}: it declares no `handlers` for plan types")
    stage = STAGES.get(stage_name)
    try:
        plan = stage.plan(params)
    except (ConfigError, TypeError, ValueError):
        return None
    return handlers.refusal(plan) or _ACCEPTED


def runtime_refusal(recipe: list[RecipeStep], runtime: str) -> str | None:
    """Why `runtime` cannot realise a drawn recipe (its quantizing step), or None."""
    from slimsweep.compressors import STAGES

    for step in recipe:
        if STAGES.get(step.stage).quantizes:
            reason = _step_refusal(step.stage, step.params, runtime)
            if reason not in (None, _ACCEPTED):
                return f"runtime {runtime} cannot run {step}: {reason}"
    return None


def _check_queued_runtimes(space: Space) -> None:
    """The baseline and every enqueued recipe must be one its runtime can realise (a drawn
    one is pruned instead); the baseline runs on the sweep's runtime."""
    import optuna

    queued = [("space.baseline", space.baseline)] if space.baseline else []
    queued += [(f"space.enqueue[{i}]", params) for i, params in enumerate(space.enqueue)]
    for where, params in queued:
        runtime = space.runtime_of(params)
        if runtime is None:
            continue
        reason = runtime_refusal(space.sample(optuna.trial.FixedTrial(params)), runtime)
        if reason is not None:
            raise ConfigError(f"{where}: {reason}")


def _check_runtime_choices(runtime: RuntimeConfig, choices: dict[str, RuntimeConfig]) -> None:
    """A space's runtimes are timed beside the sweep runtime's baseline, on one hardware
    target: all on the CPU or all on the GPU."""
    from slimsweep.sweeps.runtimes import RUNTIMES

    for name, config in choices.items():
        if config.threads != runtime.threads:
            raise ConfigError(
                f"space.runtime.choices: {name} would run on {config.threads} threads and "
                f"runtime={runtime.name} on {runtime.threads} (runtime.threads reaches the "
                "sweep's runtime only): set cluster.cpus_per_trial, which every runtime follows"
            )
        if RUNTIMES.get(config.name).gpu != RUNTIMES.get(runtime.name).gpu:
            where = "a GPU" if RUNTIMES.get(config.name).gpu else "the CPU"
            raise ConfigError(
                f"space.runtime.choices: {name} runs on {where} and runtime={runtime.name} does "
                "not; every latency of a sweep is measured on one hardware target, so its "
                "runtimes must all be CPU runtimes or all GPU runtimes"
            )


def _check_architecture(space: Space, task: Any) -> None:
    """An architecture family's stage builds its student from the teacher, so it comes
    first, and only for a task whose model is of that family."""
    from slimsweep.compressors.architecture import FAMILIES

    declared = getattr(task, "architecture_family", None)
    for i, slot in enumerate(space.slots):
        for name in slot.stage.candidates():
            if name not in FAMILIES.names():
                continue
            if i > 0:
                raise ConfigError(
                    f"space.recipe.{slot.name}: {name} builds a student from the teacher, so "
                    f"its slot must come first (it follows {space.slots[0].name})"
                )
            if declared != name:
                has = f"declares {declared!r}" if declared else "declares no architecture_family"
                raise ConfigError(
                    f"space.recipe.{slot.name}.stage: {name} does not fit task {task.name}, "
                    f"which {has} (see README: architecture families)"
                )


def _check_stage_order(space: Space) -> None:
    """A stage that quantizes fixes the plan the runtime realises, so it must come last."""
    from slimsweep.compressors import STAGES

    for i, slot in enumerate(space.slots):
        quantizing = [
            s for s in slot.stage.candidates() if s != NO_STAGE and STAGES.get(s).quantizes
        ]
        later = [
            (other.name, stage)
            for other in space.slots[i + 1 :]
            for stage in other.stage.candidates()
            if stage != NO_STAGE
        ]
        if quantizing and later:
            other, stage = later[0]
            raise ConfigError(
                f"space.recipe.{other}: {stage} after {quantizing[0]} (slot {slot.name}) is not "
                f"supported: a quantizing stage fixes the weights the runtime packs, so it must "
                f"be the recipe's last slot; move {slot.name} to the end"
            )


def _task_fields_added(message: str, overrides: list[str]) -> list[str] | None:
    """`task.epochs=10` names a field of the task's class that its YAML leaves at the default:
    Hydra refuses it (the key is not in the YAML), but the task's signature takes it, as
    Hydra's structured configs would. The overrides with it added (`+task.epochs=10`)."""
    unknown = re.match(r"Could not override '(task\.[^'.]+)'", " ".join(message.split()))
    if not unknown:
        return None
    path = unknown.group(1)
    given = [o for o in overrides if o.startswith(f"{path}=")]
    rest = [o for o in overrides if o not in given]
    if not given or path.split(".")[1] not in _task_parameters(compose(rest)["task"]):
        return None
    return [*rest, *(f"+{o}" for o in given)]


def _task_parameters(task: dict[str, Any]) -> list[str]:
    """The parameters the task's `_target_` takes (none if it cannot be imported yet: the
    task check says why, later, in one line)."""
    import importlib
    import inspect
    import sys

    module, _, name = str(task.get("_target_")).rpartition(".")
    here = os.getcwd()  # a user's plugin beside the launch, as `plugins` finds it
    added = here not in sys.path
    if added:
        sys.path.append(here)
    try:
        target = getattr(importlib.import_module(module), name)
        return list(inspect.signature(target).parameters)
    except Exception:
        return []
    finally:
        if added:
            sys.path.remove(here)


def _explain(message: str, overrides: list[str]) -> str:
    """Hydra's message in one paragraph, plus the keys allowed where an unknown one was given."""
    text = " ".join(line.strip() for line in message.strip().splitlines() if line.strip())
    text = text.split(" Config search path:")[0]
    unknown = re.match(r"Could not override '([^']+)'", text)
    if not unknown:
        return text
    path = unknown.group(1)
    node: Any = compose([o for o in overrides if not o.lstrip("+~").startswith(path)])
    walked = []
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            where = ".".join([*walked, part])
            keys = list(node) if isinstance(node, dict) else []
            if walked == ["task"]:  # the task's own fields may be set too
                keys += [p for p in _task_parameters(node) if p not in keys]
            allowed = ", ".join(keys) or "none (not a mapping)"
            return f"unknown key {where!r}; allowed keys there: {allowed}"
        walked.append(part)
        node = node[part]
    if isinstance(node, dict):  # Hydra merges a mapping into one, and refuses new keys
        value = next((o.split("=", 1)[1] for o in overrides if o.startswith(f"{path}=")), "...")
        return (
            f"{path} is a mapping ({node}), and Hydra merges an override into it; to replace "
            f"it, write: '~{path}' '+{path}={value}'"
        )
    return text

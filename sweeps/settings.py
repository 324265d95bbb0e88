"""Typed views of the composed config; each checks its own values with a message naming the key."""

from dataclasses import dataclass, field
from typing import Any

from slimsweep.sweeps.errors import ConfigError, require_choice

# The objective name that stands for the task's own quality metric (accuracy, fidelity, ...).
# Objectives may name any metric a trial records; `check_objectives` knows which those are.
QUALITY = "quality"


@dataclass
class SweepSettings:
    name: str
    dir: str
    storage: str
    cache_dir: str
    allow_changed_space: bool = False  # resume a sweep under another space or task
    heartbeat_s: int = 10  # the driver renews its lease and its trials' heartbeats this often
    lease_s: int = 60  # a driver silent this long is dead: its lease and trials are taken over

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name:
            raise ConfigError(f"sweep.name={self.name!r} must be a non-empty name without '/'")
        if not 0 < self.heartbeat_s * 2 <= self.lease_s:
            raise ConfigError(
                f"sweep.heartbeat_s={self.heartbeat_s} and sweep.lease_s={self.lease_s}: "
                "the heartbeat must be positive and at most half the lease"
            )


@dataclass
class Objective:
    metric: str
    direction: str

    def __post_init__(self) -> None:
        require_choice("search.objectives[].direction", self.direction, ("maximize", "minimize"))


@dataclass
class Constraint:
    """A bound a model must keep to be feasible: `metric` ≤ `max` or ≥ `min`, where with
    `of_baseline` the bound is a fraction of the baseline's value (min: 0.99 on quality: at
    most a 1 % drop)."""

    metric: str
    max: float | None = None
    min: float | None = None
    of_baseline: bool = False

    def __post_init__(self) -> None:
        bounds = [b for b in (self.max, self.min) if b is not None]
        if len(bounds) != 1:
            raise ConfigError(
                f"search.constraints[{self.metric}] needs exactly one of max or min; "
                f"got max={self.max!r} min={self.min!r}"
            )
        if isinstance(bounds[0], bool) or not isinstance(bounds[0], int | float):
            raise ConfigError(f"search.constraints[{self.metric}]: {bounds[0]!r} is not a number")
        require_choice(
            f"search.constraints[{self.metric}].of_baseline", self.of_baseline, (True, False)
        )


@dataclass
class EarlyStopSettings:
    """Fine-tuning trials read their quality every `every` steps and stop below `floor` x
    the baseline's (0: never)."""

    floor: float = 0.0
    every: int = 50

    def __post_init__(self) -> None:
        if not 0.0 <= self.floor <= 1.0:
            raise ConfigError(f"search.early_stop.floor={self.floor} must be between 0 and 1")
        if self.every < 1:
            raise ConfigError(f"search.early_stop.every={self.every} must be at least 1")


@dataclass
class SearchSettings:
    n_trials: int
    parallelism: int
    sampler: dict[str, Any]
    objectives: list[Objective]
    # Latency numbers are comparable only on one hardware fingerprint; mixing needs consent.
    allow_mixed_hardware: bool = False
    constraints: list[Constraint] = field(default_factory=list)
    # Before the sampler proposes: the baseline, then the recipes users try first (fp16, INT8
    # dynamic, INT8 static per channel) where the space and runtime can produce them.
    first_tries: bool = True
    seed_from: str | None = None  # a sweep in the same storage whose results start this one
    early_stop: EarlyStopSettings = field(default_factory=EarlyStopSettings)

    def __post_init__(self) -> None:
        if self.n_trials < 1:
            raise ConfigError(f"search.n_trials={self.n_trials} must be at least 1")
        if self.parallelism < 1:
            raise ConfigError(f"search.parallelism={self.parallelism} must be at least 1")
        if "_target_" not in self.sampler:
            raise ConfigError("search.sampler needs a _target_ (e.g. optuna.samplers.TPESampler)")
        metrics = [objective.metric for objective in self.objectives]
        if not metrics:
            raise ConfigError("search.objectives is empty; name at least one metric")
        if len(set(metrics)) != len(metrics):
            raise ConfigError(f"search.objectives names a metric twice: {metrics}")


@dataclass
class ClusterSettings:
    address: str | None = None
    num_cpus: int | None = None
    cpus_per_trial: int = 1
    # GPUs each trial asks Ray for (a fraction shares one); 0 hides every GPU from it.
    gpus_per_trial: float = 0
    memory_per_trial: int = 0  # bytes of RAM Ray reserves for each trial (0: none reserved)
    resources_per_trial: dict[str, float] | None = None  # custom Ray resources ({} if None)
    # The custom resources of the nodes that are the hardware target (e.g. {target_xeon: 1}):
    # when set, a trial compresses on any node and is evaluated and timed on one of these.
    measure_on: dict[str, float] | None = None
    max_retries: int = 3  # times Ray runs a task again whose worker or node died
    # One latency measurement at a time per node, never beside another trial's compute.
    exclusive_latency: bool = True

    def __post_init__(self) -> None:
        if self.cpus_per_trial < 1:
            raise ConfigError(f"cluster.cpus_per_trial={self.cpus_per_trial} must be at least 1")
        self.resources_per_trial = dict(self.resources_per_trial or {})
        self.measure_on = dict(self.measure_on or {})
        if self.memory_per_trial < 0 or self.max_retries < 0:
            raise ConfigError("cluster.memory_per_trial and cluster.max_retries must be 0 or more")
        for key, resources in (
            ("resources_per_trial", self.resources_per_trial),
            ("measure_on", self.measure_on),
        ):
            for name, amount in resources.items():
                if name in ("CPU", "GPU", "memory") or amount <= 0:
                    raise ConfigError(
                        f"cluster.{key}.{name}={amount}: a custom resource needs an amount above "
                        "0, and CPUs, GPUs and memory have their own keys (cpus_per_trial, ...)"
                    )
        if not 0 <= self.gpus_per_trial <= 1:
            raise ConfigError(
                f"cluster.gpus_per_trial={self.gpus_per_trial:g} must be 0, 1 or a fraction of "
                "one GPU (0.5: two trials share it); a trial computes on one GPU"
            )
        if self.num_cpus is not None and self.num_cpus < self.cpus_per_trial:
            raise ConfigError(
                f"cluster.num_cpus={self.num_cpus} is less than "
                f"cluster.cpus_per_trial={self.cpus_per_trial}: no trial could ever start"
            )

    def compute_options(self) -> dict[str, Any]:
        """Ray options of a task that compresses (and, without `measure_on`, also measures)."""
        return {
            "num_cpus": self.cpus_per_trial,
            "num_gpus": self.gpus_per_trial,
            "memory": self.memory_per_trial or None,
            "resources": dict(self.resources_per_trial),
            "max_retries": self.max_retries,
        }

    def measure_options(self, gpu: bool) -> dict[str, Any]:
        """Ray options of a task that evaluates and times artifacts on the hardware target."""
        return {
            "num_cpus": self.cpus_per_trial,
            "num_gpus": self.gpus_per_trial if gpu else 0,
            "resources": dict(self.measure_on),
            "max_retries": self.max_retries,
        }


@dataclass
class TrackingSettings:
    uri: str
    artifact_root: str | None = None  # where a local store keeps artifacts; a server has its own
    spool_wait_s: int = 120  # at the end of a sweep, how long spooled records wait for a server


@dataclass
class LatencySettings:
    warmup: int = 10
    repeats: int = 50  # at least this many timed runs...
    min_seconds: float = 1.0  # ...and more, in blocks of `repeats`, until this long was timed
    # After the sweep, the front is re-measured alone, interleaved (A B C A B C ...) for this
    # many rounds of `repeats` runs each; 0 keeps the in-sweep numbers.
    quiet_rounds: int = 5
    # A trial is timed in this many rounds, each a block of it and a block of the baseline's
    # artifact (A B, B A, ...): its latency is reported as a ratio to the baseline.
    pair_rounds: int = 20

    def __post_init__(self) -> None:
        if self.warmup < 0:
            raise ConfigError(f"runtime.latency.warmup={self.warmup} must be 0 or more")
        if self.repeats < 1:
            raise ConfigError(f"runtime.latency.repeats={self.repeats} must be at least 1")
        if self.min_seconds < 0:
            raise ConfigError(f"runtime.latency.min_seconds={self.min_seconds} must be 0 or more")
        if self.pair_rounds < 1:
            raise ConfigError(f"runtime.latency.pair_rounds={self.pair_rounds} must be at least 1")
        if self.quiet_rounds < 0:
            raise ConfigError(f"runtime.latency.quiet_rounds={self.quiet_rounds} must be 0 or more")


@dataclass
class RuntimeConfig:
    """What every runtime needs; a runtime subclasses it with its own options."""

    name: str
    threads: int = 1
    latency: LatencySettings = field(default_factory=LatencySettings)

    def __post_init__(self) -> None:
        if self.threads < 1:
            raise ConfigError(f"runtime.threads={self.threads} must be at least 1")

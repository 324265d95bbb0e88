"""Every name slimsweep writes into its stores, in one place: Optuna study and trial
attributes, MLflow tags and artifact names, and the metrics every trial records.

Readers and writers import these instead of repeating strings, so a renamed key cannot
leave a reader behind.
"""

# Optuna trial attributes
RECIPE_ATTR = "recipe"  # the recipe in one line
METRICS_ATTR = "metrics"  # everything the trial measured
RUN_ID_ATTR = "mlflow_run_id"
BASELINE_SHA_ATTR = "baseline_sha256"  # of the baseline file the sweep's trials loaded
# trial number -> run id, of trials whose run was created late (spooled while MLflow was away)
SENT_RUNS_ATTR = "mlflow_runs_sent_late"
PENDING_RUN = "spooled:"  # the run id of a trial whose run the server has not created yet
ARTIFACT_ATTR = "artifact"  # file name of the trial's artifact in its MLflow run
BASELINE_ATTR = "baseline"  # set on the trial that ran the space's baseline recipe
PHASES_ATTR = "phases"  # (phase, start, end) wall-clock windows on the trial's node
NODES_ATTR = "nodes"  # phase → the Ray node it ran on (compress, measure)
FAILURE_ATTR = "failure"  # the last line of a failed trial's traceback
REQUEUED_FROM_ATTR = "requeued_from"  # an interrupted trial's number, on its re-run

RECIPE_KEY_ATTR = "recipe_key"  # the recipe with its stages' defaults: equal keys, equal work
REUSED_FROM_ATTR = "reused_from"  # a repeated recipe answered from this earlier trial
SEEDED_FROM_ATTR = "seeded_from"  # {sweep, trial}: a result taken from another sweep
STOPPED_EARLY_ATTR = "stopped_early"  # why a fine-tuning trial was stopped (PRUNED)
REFUSED_ATTR = "refused"  # why the drawn runtime cannot realise the drawn recipe (PRUNED)
ARCH_ATTR = "arch"  # the student architecture in one line (`L4 H256 A8 I1024`), if any

# Optuna study attributes
CONSTRAINTS_ATTR = "constraints"  # [{metric, max|min, of_baseline}], metric names resolved
RUNTIME_ATTR = "runtime"  # the runtime config the sweep's latencies come from
HARDWARE_ATTR = "hardware"  # the fingerprint every latency of the sweep comes from
QUIET_ATTR = "quiet_latency"  # {trial number: latency metrics of the quiet phase}
REFERENCE_LATENCY_ATTR = "latency_reference_ms"  # the baseline median latencies are scaled to
LAST_RUN_AT_ATTR = "last_run_at"  # ISO time a driver last opened the sweep
SEARCHED_ATTR = "searched"  # the task and space (less its enqueued recipes) it runs under
FINISHED_ATTR = "finished"  # True once a driver ran the sweep to its end; False while not
QUIET_SUFFIX = "_quiet"  # metric names of the quiet phase: latency_ms_median_quiet, ...

# MLflow tags
PARENT_RUN_TAG = "mlflow.parentRunId"
ROLE_TAG = "slimsweep.role"  # "sweep" on the parent run, "trial" on each child
SWEEP_TAG = "slimsweep.sweep"
TRIAL_TAG = "slimsweep.trial"
RECIPE_TAG = "slimsweep.recipe"
BASELINE_SHA_TAG = "slimsweep.baseline_sha256"  # on the sweep's run: the file every node used
SHA256_TAG = "slimsweep.artifact_sha256"  # of the artifact that was measured
HARDWARE_TAG = "slimsweep.hardware"
LATENCY_SETUP_TAG = "slimsweep.latency_setup"  # how it was timed: mode, TF32, inputs' origin
FAILURE_TAG = "slimsweep.failure"
REUSED_BY_TAG = "slimsweep.reused_by"  # trials whose repeated recipe this run answered
STOPPED_EARLY_TAG = "slimsweep.stopped_early"  # why fine-tuning stopped the trial (PRUNED)
ARCH_TAG = "slimsweep.arch"  # the student architecture in one line, on its run
WARNINGS_TAG = "slimsweep.warnings"  # what a trial did that costs more than one might expect
PARETO_TAG = "pareto"  # "true" | "false", once the sweep ends
MODEL_ID_TAG = "slimsweep.model_id"  # the MLflow model the trial's artifact was logged as
MODEL_FILE_TAG = "slimsweep.model_file"  # the artifact's path inside that logged model
NOTE_TAG = "mlflow.note.content"  # a run's or an experiment's description in the MLflow UI
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
VIEW_TAG_PREFIX = "mlflow.sharedViewState."  # + key: a runs-table view a link can open

# MLflow artifacts
CONFIG_FILE = "config.yaml"  # the composed config, on the parent run and every trial
DETAILS_FILE = "trial.json"  # hardware fingerprint and phase windows
FAILURE_FILE = "failure.txt"  # a failed trial's traceback
PLOTS_FOLDER = "front"  # front.png and front.html on the parent run

# What every completed trial records, besides its task's quality scores. Its latency is
# timed paired with the baseline's artifact: latency_ms_median (and its CI) is the ratio to
# the baseline times the sweep's reference; the others are the window's own numbers.
LATENCY_METRICS = (
    "latency_ms_median",
    "latency_ms_ci95_low",
    "latency_ms_ci95_high",
    "latency_ratio",
    "latency_ratio_ci95_low",
    "latency_ratio_ci95_high",
    "latency_ratio_cpu_clock",
    "latency_reference_ms",
    "latency_ms_median_measured",
    "baseline_latency_ms_median",
    "latency_ms_p10",
    "latency_ms_p90",
    "latency_ms_std",
    "latency_repeats",
)
TRIAL_METRICS = (
    "size_bytes",
    "param_count",
    "flops",
    "zero_fraction",
    "trial_seconds",
    *LATENCY_METRICS,
)
SAVED_BYTES_PREFIX = "saved_bytes/"  # + slot name: the bytes that slot's stage saved

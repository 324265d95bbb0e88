"""MLflow: a parent run per sweep, a child run per trial. With mlflow_models.py, the only
modules that import mlflow."""

import hashlib
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from slimsweep.sweeps.errors import last_line
from slimsweep.sweeps.results.keys import (
    CONFIG_FILE,
    DETAILS_FILE,
    EXPERIMENT_KIND_TAG,
    FAILURE_FILE,
    FAILURE_TAG,
    HARDWARE_TAG,
    LATENCY_SETUP_TAG,
    MODEL_FILE_TAG,
    MODEL_ID_TAG,
    NOTE_TAG,
    PARENT_RUN_TAG,
    PARETO_TAG,
    PLOTS_FOLDER,
    RECIPE_TAG,
    ROLE_TAG,
    SHA256_TAG,
    SWEEP_TAG,
    TRIAL_TAG,
)

MODEL_TRAINING = "custom_model_development"  # MLflow's experiment kind for model training

if TYPE_CHECKING:
    from slimsweep.sweeps.task import SplitSummary


class TrackingStore:
    """Reading a sweep's runs back, and the Model Registry; creates no experiment or run."""

    def __init__(self, uri: str) -> None:
        # Progress bars of artifact downloads would interleave with the sweep's own output.
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        import mlflow

        quiet = logging.getLogger("mlflow")  # mlflow sets INFO on its first import
        if quiet.getEffectiveLevel() < logging.WARNING:
            quiet.setLevel(logging.WARNING)
        self.client = mlflow.MlflowClient(tracking_uri=uri)
        # Logged models are written, and `models:/` URIs resolved, through MLflow's global
        # tracking URI: one process works on one store.
        mlflow.set_tracking_uri(uri)

    def artifact(self, run_id: str, name: str) -> tuple[bytes, str]:
        """A trial's artifact (from its logged MLflow model, or a plain run artifact in
        sweeps from before models were logged) and the sha256 recorded when it was measured."""
        tags = self.client.get_run(run_id).data.tags
        if MODEL_ID_TAG in tags:
            from slimsweep.sweeps.results.mlflow_models import model_file

            return model_file(self.client, tags[MODEL_ID_TAG], tags[MODEL_FILE_TAG]), tags[
                SHA256_TAG
            ]
        from slimsweep.sweeps.runtimes.artifact import artifact_files, read_artifact

        with tempfile.TemporaryDirectory(prefix="slimsweep-get-") as scratch:
            main = Path(scratch) / name
            for file in artifact_files(main):
                self.client.download_artifacts(run_id, file.name, scratch)
            return read_artifact(main), tags[SHA256_TAG]

    def text(self, run_id: str, name: str) -> str:
        with tempfile.TemporaryDirectory(prefix="slimsweep-get-") as scratch:
            return Path(self.client.download_artifacts(run_id, name, scratch)).read_text()

    def sweep_config(self, sweep_name: str) -> str | None:
        """The composed config the sweep last ran with, from its parent run."""
        experiment = self.client.get_experiment_by_name(sweep_name)
        if experiment is None:
            return None
        runs = self.client.search_runs(
            [experiment.experiment_id], filter_string=f"tags.`{ROLE_TAG}` = 'sweep'", max_results=1
        )
        return self.text(runs[0].info.run_id, CONFIG_FILE) if runs else None

    def sweep_experiments(self) -> dict[str, str]:
        """Sweep name → experiment id, for every sweep in the store."""
        experiments = self.client.search_experiments()
        return {e.name: e.experiment_id for e in experiments if e.name != "Default"}

    def register(self, run_id: str, artifact: str, model_name: str, alias: str) -> str:
        """A new version of `model_name` in the Model Registry, sourced from the run's
        artifact and tagged with its sha256; `alias` now points to it. Returns the version."""
        from mlflow.exceptions import MlflowException

        try:
            self.client.create_registered_model(model_name)
        except MlflowException as error:
            if error.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        run = self.client.get_run(run_id)
        model_id = run.data.tags.get(MODEL_ID_TAG)
        version = self.client.create_model_version(
            model_name,
            source=f"models:/{model_id}" if model_id else f"{run.info.artifact_uri}/{artifact}",
            run_id=run_id,
            tags={SHA256_TAG: run.data.tags[SHA256_TAG]},
            model_id=model_id,
        )
        self.client.set_registered_model_alias(model_name, alias, version.version)
        return str(version.version)


class Tracker(TrackingStore):
    """The driver's side: a parent run per sweep, a child run per trial."""

    def __init__(self, uri: str, artifact_root: str | None, sweep_name: str) -> None:
        super().__init__(uri)
        experiment = self.client.get_experiment_by_name(sweep_name)
        if experiment is None:
            local = uri.startswith(("sqlite:", "file:")) or "://" not in uri
            location = Path(artifact_root).resolve().as_uri() if local and artifact_root else None
            self.experiment_id = self.client.create_experiment(
                sweep_name, artifact_location=location
            )
        else:
            self.experiment_id = experiment.experiment_id
        self.sweep_name = sweep_name
        self.sweep_run_id = self._sweep_run()

    def _sweep_run(self) -> str:
        """The sweep's parent run: found again when the sweep resumes."""
        found = self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.`{ROLE_TAG}` = 'sweep'", max_results=1
        )
        if found:
            self.client.update_run(found[0].info.run_id, status="RUNNING")
            return found[0].info.run_id
        run = self.client.create_run(
            self.experiment_id,
            run_name=self.sweep_name,
            tags={ROLE_TAG: "sweep", SWEEP_TAG: self.sweep_name},
        )
        return run.info.run_id

    def log_sweep_config(self, config: dict[str, Any]) -> None:
        self.client.log_text(
            self.sweep_run_id, yaml.safe_dump(config, sort_keys=False), CONFIG_FILE
        )

    def start_trial(
        self, number: int, params: dict[str, Any], recipe: str, config: dict[str, Any]
    ) -> str:
        run = self.client.create_run(
            self.experiment_id,
            run_name=f"trial-{number:04d}",
            tags={
                PARENT_RUN_TAG: self.sweep_run_id,
                ROLE_TAG: "trial",
                SWEEP_TAG: self.sweep_name,
                TRIAL_TAG: str(number),
                RECIPE_TAG: recipe,
            },
        )
        self.describe_trial(run.info.run_id, params, config)
        return run.info.run_id

    def describe_trial(self, run_id: str, params: dict[str, Any], config: dict[str, Any]) -> None:
        """The trial's params and composed config on its run (the same values again are
        accepted: a replayed record may send them twice)."""
        from mlflow.entities import Param

        self.client.log_batch(run_id, params=[Param(k, str(v)) for k, v in params.items()])
        self.client.log_text(run_id, yaml.safe_dump(config, sort_keys=False), CONFIG_FILE)

    def finish_trial(
        self,
        run_id: str,
        metrics: dict[str, float],
        artifact_name: str,
        artifact: bytes,
        sha256: str,
        details: dict[str, Any],
        example: tuple[dict[str, Any], Any] | None = None,
        splits: "list[SplitSummary] | None" = None,
    ) -> None:
        """Log what was measured; the artifact is checked against the worker's sha256 first,
        and logged as an MLflow model when there is an example (inputs, outputs) to sign it
        with.

        `details` (hardware fingerprint, phase windows) goes to `trial.json`; `splits`, the
        data it was judged on, become the run's dataset inputs."""
        from mlflow.entities import Metric, RunTag

        if hashlib.sha256(artifact).hexdigest() != sha256:
            raise RuntimeError(f"artifact of run {run_id} changed in transit (sha256 mismatch)")
        tags = {SHA256_TAG: sha256, HARDWARE_TAG: details.get("hardware", "")}
        with tempfile.TemporaryDirectory(prefix="slimsweep-log-") as scratch:
            from slimsweep.sweeps.runtimes.artifact import write_artifact

            path = Path(scratch) / artifact_name
            files = write_artifact(artifact, path)
            if example is None:
                for file in files:
                    self.client.log_artifact(run_id, str(file))
            else:
                from slimsweep.sweeps.results.mlflow_models import Example, log_trial_model

                signed = Example(*example)
                model_id, stored = log_trial_model(self.client, run_id, path, signed, sha256)
                tags.update({MODEL_ID_TAG: model_id, MODEL_FILE_TAG: stored})
        self._log_splits(run_id, splits or [])
        measured_as = details.get("measured_as", {})
        if measured_as:
            tags[LATENCY_SETUP_TAG] = "; ".join(f"{k}={v}" for k, v in measured_as.items())
        self.client.log_dict(run_id, details, DETAILS_FILE)
        self.client.log_batch(  # one write for all of them
            run_id,
            metrics=[Metric(k, float(v), 0, 0) for k, v in metrics.items()],
            tags=[RunTag(k, v) for k, v in tags.items()],
        )
        self.client.set_terminated(run_id, "FINISHED")

    def _log_splits(self, run_id: str, splits: "list[SplitSummary]") -> None:
        import json

        from mlflow.entities import Dataset, DatasetInput, InputTag

        inputs = [
            DatasetInput(
                Dataset(
                    name=split.name,
                    digest=split.digest,
                    source_type="code",
                    source=json.dumps({"task split": split.context}),
                    profile=json.dumps({"num_rows": split.rows}),
                ),
                tags=[InputTag("mlflow.data.context", split.context)],
            )
            for split in splits
        ]
        if inputs:
            self.client.log_inputs(run_id, datasets=inputs)

    def tag(self, run_id: str, key: str, value: str) -> None:
        self.client.set_tag(run_id, key, value[:4000])

    def log_quiet_latency(self, run_id: str, metrics: dict[str, float]) -> None:
        """Each quiet phase logs at its own time, so MLflow shows the latest one."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(run_id, metrics=[Metric(k, v, now, 0) for k, v in metrics.items()])

    def fail_trial(self, run_id: str, reason: str, *, status: str = "FAILED") -> None:
        self.client.set_tag(run_id, FAILURE_TAG, last_line(reason)[:4000])
        self.client.log_text(run_id, reason, FAILURE_FILE)
        self.client.set_terminated(run_id, status)

    def close_interrupted_trials(self, reason: str) -> int:
        """Mark KILLED every trial run still RUNNING: only one driver holds a sweep, so these
        belong to a driver that died (even one that died before Optuna knew the run's id)."""
        stale = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{ROLE_TAG}` = 'trial' and attributes.status = 'RUNNING'",
        )
        for run in stale:
            self.fail_trial(run.info.run_id, reason, status="KILLED")
        return len(stale)

    def describe_experiment(self, views: dict[str, str]) -> None:
        """Mark the experiment as model training (MLflow then offers its runs, not GenAI
        traces) and store the runs-table views that links open (`readers/links.py`)."""
        self.client.set_experiment_tag(self.experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING)
        for key, state in views.items():
            self.client.set_experiment_tag(self.experiment_id, key, state)

    def finish_sweep(
        self,
        on_front: dict[str, bool],
        notes: dict[str, str],
        front_note: str,
        plots: list[Path],
        status: str,
    ) -> None:
        """Tag every trial run pareto=true/false (the front's link filters on it), give each
        its description, put the front on the sweep's run and experiment (as a table and as
        plots), and end the sweep's run with `status`."""
        for run_id, front in on_front.items():
            self.client.set_tag(run_id, PARETO_TAG, str(front).lower())
        for run_id, note in notes.items():
            self.client.set_tag(run_id, NOTE_TAG, note)
        self.client.set_tag(self.sweep_run_id, NOTE_TAG, front_note)
        self.client.set_experiment_tag(self.experiment_id, NOTE_TAG, front_note)
        for plot in plots:
            self.client.log_artifact(self.sweep_run_id, str(plot), PLOTS_FOLDER)
        self.client.set_terminated(self.sweep_run_id, status)

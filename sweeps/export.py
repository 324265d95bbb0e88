"""Export one trial for deployment: the artifact that was measured (sha256-checked), its
recipe, the config it ran under, and a model card."""

import hashlib
import json
import tempfile
from pathlib import Path

import optuna
import yaml
from optuna.trial import TrialState

from slimsweep.sweeps.errors import SweepError
from slimsweep.sweeps.pareto import (
    ARTIFACT_ATTR,
    RECIPE_ATTR,
    RUN_ID_ATTR,
    baseline,
    describe_change,
    front,
    objectives,
    versus,
)
from slimsweep.sweeps.tracking import TrackingStore


def export_trial(
    study: optuna.Study, number: int, store: TrackingStore, target: Path
) -> list[Path]:
    """Write the trial's files into `target` (new or empty); on any refusal nothing is written."""
    trial = completed_trial(study, number)
    if target.exists() and any(target.iterdir()):
        raise SweepError(f"--to {target} is not empty; export into a new or empty folder")
    run_id = trial.user_attrs[RUN_ID_ATTR]
    name, content, sha256 = verified_artifact(trial, store)
    config = store.text(run_id, "config.yaml")
    details = json.loads(store.text(run_id, "trial.json"))
    recipe = {"recipe": trial.user_attrs.get(RECIPE_ATTR, ""), "params": trial.params}
    card = _card(study, trial, name, sha256, details, yaml.safe_load(config))
    files = {
        name: content,
        "recipe.yaml": yaml.safe_dump(recipe, sort_keys=False).encode(),
        "config.yaml": config.encode(),
        "MODEL_CARD.md": card.encode(),
    }
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target) as staging:  # all files appear, or none
        for file_name, data in files.items():
            (Path(staging) / file_name).write_bytes(data)
        for file_name in files:
            (Path(staging) / file_name).rename(target / file_name)
    return [target / file_name for file_name in files]


def completed_trial(study: optuna.Study, number: int) -> optuna.trial.FrozenTrial:
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    if number not in trials:
        last = len(trials) - 1
        raise SweepError(f"sweep {study.study_name!r} has no trial {number} (it has 0-{last})")
    trial = trials[number]
    if trial.state != TrialState.COMPLETE:
        state = trial.state.name
        raise SweepError(f"trial {number} of {study.study_name!r} is {state}, not COMPLETE")
    return trial


def verified_artifact(
    trial: optuna.trial.FrozenTrial, store: TrackingStore
) -> tuple[str, bytes, str]:
    """(file name, bytes, sha256) of the trial's artifact, refused unless it is byte for byte
    the one that was measured."""
    name = trial.user_attrs.get(ARTIFACT_ATTR, "model.onnx")
    content, recorded = store.artifact(trial.user_attrs[RUN_ID_ATTR], name)
    actual = hashlib.sha256(content).hexdigest()
    if actual != recorded:
        raise SweepError(
            f"the artifact of trial {trial.number} has sha256 {actual[:12]}..., not the "
            f"{recorded[:12]}... recorded when it was measured: it was changed; refusing it"
        )
    return name, content, actual


def _card(
    study: optuna.Study,
    trial: optuna.trial.FrozenTrial,
    artifact: str,
    sha256: str,
    details: dict,
    config: dict,
) -> str:
    rows = {r.trial: r for r in front(study)}
    row = rows.get(trial.number)
    reference = baseline(study)
    measured = row.values if row else dict(zip(objectives(study), trial.values, strict=True))
    lines = [
        f"# {study.study_name} / trial {trial.number}",
        "",
        f"- recipe: {trial.user_attrs.get(RECIPE_ATTR, '')}",
        f"- artifact: `{artifact}`, sha256 `{sha256}`",
        f"- runtime: {config['runtime']['name']} ({config['runtime'].get('threads')} threads)",
        f"- measured on: {details.get('hardware', 'unknown')}",
        f"- task: {config['task'].get('name', config['task'].get('_target_'))}",
        f"- on the Pareto front: {'yes' if row else 'no'}"
        + (" (latency re-measured in the quiet phase)" if row and row.remeasured else ""),
        f"- MLflow run: {trial.user_attrs[RUN_ID_ATTR]}",
        "",
        "| objective | value | baseline | vs baseline |",
        "| --- | --- | --- | --- |",
    ]
    compared = versus(row, reference, study) if row and reference else {}
    for name, up in objectives(study).items():
        base = f"{reference.values[name]:.6g}" if reference else "n/a"
        change = compared.get(name)
        shown = "n/a" if change is None else describe_change(change, up)
        lines.append(f"| {name} | {measured[name]:.6g} | {base} | {shown} |")
    return "\n".join(lines) + "\n"

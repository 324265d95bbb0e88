"""Export one trial for deployment: the artifact that was measured (sha256-checked), its
recipe, the config it ran under, and a model card."""

import hashlib
import json
import tempfile
from pathlib import Path

import yaml

from slimsweep.sweeps.config import RUNTIME_CHOICES
from slimsweep.sweeps.errors import SweepError
from slimsweep.sweeps.readers.descriptions import objectives_table
from slimsweep.sweeps.readers.pareto import UNFINISHED, not_remeasured
from slimsweep.sweeps.results.keys import CONFIG_FILE, DETAILS_FILE
from slimsweep.sweeps.results.rows import SweepResults, TrialRow
from slimsweep.sweeps.results.tracking import TrackingStore
from slimsweep.sweeps.runtimes.artifact import write_artifact


def export_trial(
    results: SweepResults, number: int, store: TrackingStore, target: Path
) -> list[Path]:
    """Write the trial's files into `target` (new or empty); on any refusal nothing is written."""
    row = results.completed(number)
    if target.exists() and any(target.iterdir()):
        raise SweepError(f"--to {target} is not empty; export into a new or empty folder")
    content, sha256 = verified_artifact(row, store)
    config = store.text(row.run_id, CONFIG_FILE)
    details = json.loads(store.text(row.run_id, DETAILS_FILE))
    recipe = {"recipe": row.recipe, "params": row.params}
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target) as staging:  # all files appear, or none
        artifact = write_artifact(content, Path(staging) / row.artifact)
        card = _card(results, row, sha256, details, yaml.safe_load(config), artifact)
        files = {
            "recipe.yaml": yaml.safe_dump(recipe, sort_keys=False).encode(),
            CONFIG_FILE: config.encode(),
            "MODEL_CARD.md": card.encode(),
        }
        for file_name, data in files.items():
            (Path(staging) / file_name).write_bytes(data)
        names = [*(file.name for file in artifact), *files]
        for file_name in names:
            (Path(staging) / file_name).rename(target / file_name)
    return [target / file_name for file_name in names]


def verified_artifact(row: TrialRow, store: TrackingStore) -> tuple[bytes, str]:
    """(bytes, sha256) of the trial's artifact, refused unless it is byte for byte the one
    that was measured."""
    content, recorded = store.artifact(row.run_id, row.artifact)
    actual = hashlib.sha256(content).hexdigest()
    if actual != recorded:
        raise SweepError(
            f"the artifact of trial {row.trial} has sha256 {actual[:12]}..., not the "
            f"{recorded[:12]}... recorded when it was measured: it was changed; refusing it"
        )
    return content, actual


def _latency_source(results: SweepResults, row: TrialRow) -> str:
    if not results.latency_objectives:
        return "no latency objective"
    return (
        "re-measured alone in the quiet phase" if row.remeasured else not_remeasured(results.name)
    )


def _artifact_line(row: TrialRow, sha256: str, files: list[Path]) -> str:
    """The artifact's sha256, as recorded; for several files, each file's too (the
    recorded one is of them bundled, as they travel)."""
    if len(files) == 1:
        return f"- artifact: `{row.artifact}`, sha256 `{sha256}`"
    each = ", ".join(
        f"`{file.name}` sha256 `{hashlib.sha256(file.read_bytes()).hexdigest()}`" for file in files
    )
    return f"- artifact: {each} (bundled as measured: sha256 `{sha256}`)"


def _card(
    results: SweepResults,
    row: TrialRow,
    sha256: str,
    details: dict,
    config: dict,
    files: list[Path],
) -> str:
    on_front = results.on_front(row.trial)
    # the runtime the space chose for this trial, as composed; else the sweep's
    runtime = config.get(RUNTIME_CHOICES, {}).get(row.runtime, config["runtime"])
    lines = [
        f"# {results.name} / trial {row.trial}",
        "",
        f"- recipe: {row.recipe}",
        _artifact_line(row, sha256, files),
        f"- runtime: {runtime['name']} ({runtime.get('threads')} threads"
        + (f", {runtime['mode']}" if "mode" in runtime else "")
        + ")",
        "- run as: "
        + ("; ".join(f"{k}={v}" for k, v in details.get("measured_as", {}).items()) or "unknown"),
        f"- measured on: {details.get('hardware', 'unknown')}",
        "- inputs: "
        + (
            ", ".join(
                f"`{name}` {spec['dtype']} [{', '.join(map(str, spec['shape']))}]"
                for name, spec in details.get("inputs", {}).items()
            )
            or "not recorded"
        ),
        f"- task: {config['task'].get('name', config['task'].get('_target_'))}",
        f"- on the Pareto front: {'yes' if on_front else 'no'}",
        f"- sweep: {'finished' if results.finished else UNFINISHED}",
        f"- latency: {_latency_source(results, row)}",
        f"- MLflow run: {row.run_id}",
        "",
        *objectives_table(results, row),
    ]
    return "\n".join(lines) + "\n"

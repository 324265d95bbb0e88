"""A real sweep over architecture × recipe × runtime (Ray, SQLite, MLflow, the CLI): trials
run on all three CPU runtimes, a draw its runtime cannot realise is pruned with the reason
before anything runs, the front lists each row's runtime, MLflow records each student's
architecture, its knobs and FLOPs, and an OpenVINO artifact exported from it runs in a fresh
process and is served by `mlflow models serve`."""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from slimsweep.sweeps.engine.study import open_storage
from slimsweep.sweeps.runtimes.openvino_plans import cpu_capabilities
from tests.integration.servers import served_predictions

pytestmark = pytest.mark.integration

HERE = Path(__file__).parent
TINY = "{stage: conv_student, blocks: 2, channels: 4, kernel: 1, hidden: 16, steps: 300}"
WIDE = "{stage: conv_student, blocks: 3, channels: 24, kernel: 3, hidden: 64, steps: 300}"
NONE = "{stage: none}"
ENQUEUED = [
    # the smallest model of the sweep, on torch_cpu (on the front), and a wider student
    # on OpenVINO compiled for the latency shape
    f"{{runtime: torch_cpu, arch: {TINY}, prune: {NONE}, "
    "quantize: {precision: int4_weight, group_size: 32}}",
    f"{{runtime: 'openvino_cpu:static', arch: {WIDE}, prune: {NONE}, "
    "quantize: {precision: fp16}}",
]
# then random draws of the runtime and of precisions that each runtime refuses one of
DRAWN = [
    "search/sampler=random",
    # draws refusals by OpenVINO and torch_cpu, and an ORT trial, within seven (a fixed
    # sequence)
    "search.sampler.seed=8",
    "space.recipe.prune.stage.choices=[none]",
    "space.recipe.quantize.precision.choices=[fp32,fp16,int4_weight,int8_weight,int8_dynamic]",
]


def slimsweep(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "slimsweep.sweeps.cli", *args]
    return subprocess.run(command, cwd=HERE, capture_output=True, text=True, timeout=600)


def test_an_enqueued_recipe_its_runtime_cannot_run_is_refused_before_launch(
    tmp_path: Path,
) -> None:
    bad = f"{{runtime: ort_cpu, arch: {NONE}, prune: {NONE}, quantize: {{precision: int8_weight}}}}"
    run = slimsweep("run", f"sweep.dir={tmp_path}", "space=digits_nas", f"space.enqueue=[{bad}]")
    assert run.returncode == 2
    assert "space.enqueue[0]: runtime ort_cpu cannot run quantize(precision=int8_weight)" in (
        run.stderr
    )
    assert not (tmp_path / "optuna.db").exists()


def test_a_joint_sweep_runs_every_runtime_prunes_refusals_and_records_architectures(
    tmp_path: Path, baseline_cache: Path, trained_digits, digits_data
) -> None:
    args = [
        f"sweep.dir={tmp_path}",
        f"sweep.cache_dir={baseline_cache}",
        "sweep.name=joint",
        "space=digits_nas",
        f"space.enqueue=[{', '.join(ENQUEUED)}]",
        *DRAWN,
        "search.n_trials=7",
        "search.first_tries=false",
        "runtime.latency.warmup=2",
        "runtime.latency.repeats=10",
        "runtime.latency.min_seconds=0",
        "runtime.latency.pair_rounds=2",
        "runtime.latency.quiet_rounds=1",
    ]
    run = slimsweep("run", "--quiet", *args)
    assert run.returncode == 0, run.stderr
    storage = open_storage(f"sqlite:///{tmp_path}/optuna.db")
    trials = optuna.load_study(study_name="joint", storage=storage).get_trials()

    refused = {t.params["runtime"]: t for t in trials if t.state == TrialState.PRUNED}
    assert set(refused) == {"openvino_cpu:static", "torch_cpu"}, [t.params for t in trials]
    assert (
        "runtime openvino_cpu:static cannot run quantize(precision=int8_dynamic"
        in (refused["openvino_cpu:static"].user_attrs["refused"])
    )
    assert (
        "runtime torch_cpu cannot run quantize(precision=int8_dynamic"
        in (refused["torch_cpu"].user_attrs["refused"])
    )
    # refused draws ran nothing and did not count: seven trials ran or were answered
    ran = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(ran) == 7 and all("refused" not in t.user_attrs for t in ran)
    done = [t for t in ran if "reused_from" not in t.user_attrs]
    artifacts = {t.params["runtime"]: t.user_attrs["artifact"] for t in done}
    assert artifacts["torch_cpu"].endswith(".pt2") and artifacts["ort_cpu"].endswith(".onnx")
    assert artifacts["openvino_cpu:static"] == "model.xml"
    # the quiet phase re-measured the torch_cpu student on its own runtime
    (tiny,) = [t for t in done if t.params.get("arch.channels") == 4]
    study = optuna.load_study(study_name="joint", storage=storage)
    assert str(tiny.number) in study.user_attrs["quiet_latency"]

    front = json.loads(slimsweep("pareto", "joint", f"sweep.dir={tmp_path}", "--json").stdout)
    assert {row["runtime"] for row in front["front"]} >= {"torch_cpu"}
    table = slimsweep("pareto", "joint", f"sweep.dir={tmp_path}").stdout
    assert "runtime" in table.splitlines()[2] and "torch_cpu" in table
    assert f"{len([t for t in trials if 'refused' in t.user_attrs])} refused by their" in table

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.get_experiment_by_name("joint")
    runs = client.search_runs([experiment.experiment_id], "tags.`slimsweep.role` = 'trial'")
    by_arch = {run.data.tags.get("slimsweep.arch", ""): run for run in runs}
    assert {"", "B2 C4 K1 U16", "B3 C24 K3 U64"} <= set(by_arch)  # and drawn ones
    tiny, baseline = by_arch["B2 C4 K1 U16"], by_arch[""]
    assert tiny.data.params["arch.channels"] == "4" and tiny.data.params["runtime"] == "torch_cpu"
    assert 0 < tiny.data.metrics["flops"] < baseline.data.metrics["flops"] / 10
    assert tiny.data.metrics["param_count"] < baseline.data.metrics["param_count"] / 10

    wide = by_arch["B3 C24 K3 U64"]
    _check_openvino_export(tmp_path, wide, digits_data.eval[0][0]["pixels"].numpy()[:32])


def _check_openvino_export(workdir: Path, run, pixels) -> None:
    """The IR as exported: both files, sized as recorded, a card that says how it runs and
    which shape it takes; it runs in a fresh process as the card says, and MLflow serves it
    with the same answers."""
    out = workdir / "deploy"
    number = run.data.tags["slimsweep.trial"]
    exported = slimsweep("export", "joint", number, f"sweep.dir={workdir}", "--to", str(out))
    assert exported.returncode == 0, exported.stderr
    files = sorted(p.name for p in out.iterdir())
    assert files == ["MODEL_CARD.md", "config.yaml", "model.bin", "model.xml", "recipe.yaml"]
    size = (out / "model.xml").stat().st_size + (out / "model.bin").stat().st_size
    assert run.data.metrics["size_bytes"] == size
    weights_sha = hashlib.sha256((out / "model.bin").read_bytes()).hexdigest()
    assert f"`model.bin` sha256 `{weights_sha}`" in (out / "MODEL_CARD.md").read_text()
    card = (out / "MODEL_CARD.md").read_text()
    assert "- runtime: openvino_cpu" in card and "shape=static" in card
    # fp16 weights, computed in fp16 where the CPU can
    precision = "f16" if "FP16" in cpu_capabilities() else "f32"
    options = "INFERENCE_NUM_THREADS=1; PERFORMANCE_HINT=LATENCY; NUM_STREAMS=1; "
    assert f"{options}INFERENCE_PRECISION_HINT={precision}" in card
    assert "- inputs: `pixels` float32 [32, 1, 8, 8]" in card  # the latency batch, alone

    script = (
        "import sys, numpy as np, openvino as ov\n"
        "core = ov.Core()\n"
        "options = {'PERFORMANCE_HINT': 'LATENCY', 'NUM_STREAMS': 1, "
        "'INFERENCE_PRECISION_HINT': sys.argv[3]}\n"
        "compiled = core.compile_model(core.read_model(sys.argv[1]), 'CPU', options)\n"
        "pixels = np.load(sys.argv[2])\n"
        "np.save(sys.argv[2], compiled({'pixels': pixels})[0])\n"
    )
    np.save(workdir / "pixels.npy", pixels)
    fresh = subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            str(out / "model.xml"),
            str(workdir / "pixels.npy"),
            precision,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert fresh.returncode == 0, fresh.stderr
    expected = np.load(workdir / "pixels.npy")
    served = served_predictions(
        f"models:/{run.data.tags['slimsweep.model_id']}",
        f"sqlite:///{workdir}/mlflow.db",
        {"pixels": pixels.tolist()},
    )
    np.testing.assert_allclose(np.array(served["output"]), expected, rtol=1e-5, atol=1e-5)

    # weights changed in the store after the trial measured them: refused, nothing written
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{workdir}/mlflow.db")
    model = client.get_logged_model(run.data.tags["slimsweep.model_id"])
    weights = Path(model.artifact_location.removeprefix("file://")) / "artifacts" / "model.bin"
    weights.write_bytes(weights.read_bytes() + b"\0")
    again = workdir / "tampered"
    refused = slimsweep("export", "joint", number, f"sweep.dir={workdir}", "--to", str(again))
    assert refused.returncode == 2 and "it was changed; refusing it" in refused.stderr
    assert not again.exists()

"""Each trial's artifact as an MLflow model: the ONNX flavour for `.onnx`, a pyfunc wrapper
for a torch.export program (`.pt2`) and for OpenVINO IR (`.xml` with its `.bin`), each
with a signature and an input example, so that `mlflow.pyfunc.load_model` and `mlflow
models serve` run exactly the bytes that were measured (their sha256 is checked after
logging)."""

import hashlib
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np

OUTPUT_NAME = "output"  # the one output every artifact has


@dataclass(frozen=True)
class Example:
    """A few rows of the task's latency inputs, and what the artifact returned for them."""

    inputs: dict[str, np.ndarray]
    outputs: np.ndarray


# MLflow reads `predict`'s type hints as a signature and warns without them (it cannot take
# named arrays); the signature comes from the example instead, so its warning is recorded
# here and dropped (MLflow re-enables the warning inside, which a plain "ignore" loses to).
with warnings.catch_warnings(record=True):

    class TorchProgramModel(mlflow.pyfunc.PythonModel):
        """A torch.export program served through pyfunc: named input arrays in, `output` out."""

        def load_context(self, context: Any) -> None:
            from slimsweep.sweeps.runtimes.torch_program import load_program

            self.module, self.dtype = load_program(context.artifacts["program"])

        def predict(self, context, model_input, params=None):
            import torch

            tensors = {
                name: torch.as_tensor(np.asarray(v)) for name, v in dict(model_input).items()
            }
            tensors = {
                k: v.to(self.dtype) if v.is_floating_point() else v for k, v in tensors.items()
            }
            with torch.inference_mode():
                return {OUTPUT_NAME: self.module(**tensors).float().numpy()}

    class OpenVinoModel(mlflow.pyfunc.PythonModel):
        """OpenVINO IR served through pyfunc, compiled as the trials ran it (precision and
        shape from the IR, the latency hint, one stream; OpenVINO's own thread count)."""

        def load_context(self, context: Any) -> None:
            from slimsweep.sweeps.runtimes.openvino_runtime import CompiledIR

            self.predict_arrays = CompiledIR(Path(context.artifacts["model"]), threads=0)

        def predict(self, context, model_input, params=None):
            arrays = {name: np.asarray(v) for name, v in dict(model_input).items()}
            return {OUTPUT_NAME: self.predict_arrays(arrays)}


def _log_onnx(path: Path, signature: Any, example: Example) -> tuple[Any, str]:
    import onnx
    import onnxruntime

    offered = onnxruntime.get_available_providers()
    info = mlflow.onnx.log_model(
        onnx.load(path),
        name="model",
        signature=signature,
        input_example=example.inputs,
        save_as_external_data=False,
        # the providers this machine has, GPU first: the model's pyfunc loads with those
        onnx_execution_providers=[
            p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in offered
        ],
        pip_requirements=[f"onnxruntime=={_version('onnxruntime')}", f"onnx=={onnx.__version__}"],
    )
    return info, path.name


def _log_program(path: Path, signature: Any, example: Example) -> tuple[Any, str]:
    info = mlflow.pyfunc.log_model(
        name="model",
        python_model=TorchProgramModel(),
        artifacts={"program": str(path)},
        signature=signature,
        input_example=example.inputs,
        pip_requirements=[f"torch=={_version('torch')}", f"slimsweep=={_version('slimsweep')}"],
    )
    return info, f"artifacts/{path.name}"


def _log_openvino(path: Path, signature: Any, example: Example) -> tuple[Any, str]:
    info = mlflow.pyfunc.log_model(
        name="model",
        python_model=OpenVinoModel(),
        artifacts={"model": str(path), "weights": str(path.with_suffix(".bin"))},
        signature=signature,
        input_example=example.inputs,
        pip_requirements=[
            f"openvino=={_version('openvino')}",
            f"slimsweep=={_version('slimsweep')}",
        ],
    )
    return info, f"artifacts/{path.name}"


# How each kind of artifact is logged: file suffix → logger returning (model info, the
# artifact's path inside the model).
LOGGERS: dict[str, Callable[[Path, Any, Example], tuple[Any, str]]] = {
    ".onnx": _log_onnx,
    ".pt2": _log_program,
    ".xml": _log_openvino,
}


def log_trial_model(
    client: Any, run_id: str, path: Path, example: Example, sha256: str
) -> tuple[str, str]:
    """Log the artifact at `path` as the run's MLflow model (the run's store must be the
    global tracking URI); returns the model id and the artifact's path inside the model. The
    bytes MLflow stored must be the measured ones."""
    from mlflow.models import infer_signature

    logger = LOGGERS.get(path.suffix)
    if logger is None:
        raise ValueError(f"no MLflow model flavour for {path.name}; known: {', '.join(LOGGERS)}")
    signature = infer_signature(example.inputs, {OUTPUT_NAME: example.outputs})
    with mlflow.start_run(run_id=run_id):
        info, stored = logger(path, signature, example)
    if hashlib.sha256(model_file(client, info.model_id, stored)).hexdigest() != sha256:
        raise RuntimeError(f"MLflow stored other bytes than the measured {path.name}")
    return info.model_id, stored


def model_file(client: Any, model_id: str, relative: str) -> bytes:
    """The blob of the artifact whose main file is `relative` inside a logged model (its
    bytes, or its files bundled as in transit)."""
    from slimsweep.sweeps.runtimes.artifact import artifact_files, read_artifact

    location = client.get_logged_model(model_id).artifact_location.rstrip("/")
    with tempfile.TemporaryDirectory(prefix="slimsweep-model-") as scratch:
        main = Path(scratch) / Path(relative).name
        for file in artifact_files(main):
            uri = f"{location}/{Path(relative).with_name(file.name).as_posix()}"
            mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=scratch)
        return read_artifact(main)


def _version(distribution: str) -> str:
    from importlib.metadata import version

    return version(distribution)

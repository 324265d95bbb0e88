"""One suite over every registered stage: it runs, keeps the model runnable and exportable."""

import copy
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np
import pytest
import torch

from slimsweep.compressors import STAGES, CompressedModel, StageContext
from slimsweep.sweeps.runtimes.ort_session import OrtCpuConfig, OrtCpuRuntime


@pytest.mark.parametrize("name", STAGES.names())
def test_stage_config_round_trips_and_has_defaults(name: str) -> None:
    config_type = STAGES.get(name).config_type
    assert all(f.default is not f.default_factory for f in fields(config_type))  # all defaulted
    config = config_type()
    assert config_type(**asdict(config)) == config


# Stages whose targets the digits CNN lacks; their own tests run them on models that have.
NOT_IN_DIGITS = {
    "bert_student": "the digits CNN is no BERT-family encoder",
    "drop_layers": "the digits CNN has no stack of same-type blocks",
    "head_prune": "the digits CNN has no attention",
    "ffn_prune": "the digits CNN has no transformer feed-forward blocks",
}


@pytest.mark.parametrize("name", STAGES.names())
def test_stage_keeps_model_runnable_and_exportable(
    name: str, trained_digits: torch.nn.Module, digits_data, digits_task, tmp_path: Path
) -> None:
    if name in NOT_IN_DIGITS:
        pytest.skip(NOT_IN_DIGITS[name])
    model = CompressedModel(copy.deepcopy(trained_digits))
    context = StageContext(digits_data, task=digits_task, teacher=trained_digits)
    out = STAGES.get(name).run(model, {}, context)
    inputs = digits_task.latency_inputs()
    assert out.module(**inputs).shape == (inputs["pixels"].shape[0], 10)
    runtime = OrtCpuRuntime(OrtCpuConfig(name="ort_cpu"))
    path = tmp_path / runtime.artifact_name
    calibration = [batch for batch, _ in digits_data.calibration]
    runtime.export(out, inputs, calibration, path)
    predicted = runtime.load(path)({k: v.numpy() for k, v in inputs.items()})
    assert predicted.shape == (inputs["pixels"].shape[0], 10)
    assert np.isfinite(predicted).all()

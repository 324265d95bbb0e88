import pytest

from slimsweep.compressors import STAGES, CompressedModel, Int8Plan, StageContext
from slimsweep.compressors.quantize import QuantizeConfig
from slimsweep.sweeps.errors import ConfigError


def test_fp32_leaves_the_model_unquantized(trained_digits, digits_data) -> None:
    out = STAGES.get("quantize").run(
        CompressedModel(trained_digits), {"precision": "fp32"}, StageContext(digits_data)
    )
    assert out.quantization is None


def test_the_stage_records_a_plan_for_the_runtime(trained_digits, digits_data) -> None:
    params = {"precision": "int8_static", "per_channel": False, "calibration": "entropy"}
    out = STAGES.get("quantize").run(
        CompressedModel(trained_digits), params, StageContext(digits_data)
    )
    assert out.quantization == Int8Plan(per_channel=False, symmetric=False, calibration="entropy")
    with pytest.raises(ValueError, match="already quantized"):
        STAGES.get("quantize").run(out, params, StageContext(digits_data))


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"precision": "int4"},
            "precision='int4' is not allowed; choose one of 'fp32', 'fp16', 'bf16', "
            "'int8_dynamic', 'int8_static', 'int8_weight', 'int4_weight'",
        ),
        ({"calibration": "mse"}, "calibration='mse' is not allowed"),
        ({"per_channel": "yes"}, "per_channel='yes' must be true or false"),
    ],
)
def test_config_refuses_bad_values(params: dict, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        QuantizeConfig(**params)
    assert message in str(error.value)

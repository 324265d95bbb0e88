import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from slimsweep.sweeps.runtimes.onnx_rewrite import gemm_to_matmul


@pytest.mark.parametrize("trans_b", [0, 1])
@pytest.mark.parametrize("bias", [True, False])
def test_gemm_becomes_an_exact_matmul(trans_b: int, bias: bool) -> None:
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((24, 16) if trans_b else (16, 24)).astype(np.float32)
    initializers = [numpy_helper.from_array(weight, "w")]
    inputs = ["x", "w"]
    if bias:
        initializers.append(
            numpy_helper.from_array(rng.standard_normal(24).astype(np.float32), "b")
        )
        inputs.append("b")
    graph = helper.make_graph(
        [helper.make_node("Gemm", inputs, ["y"], transB=trans_b)],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 24])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = rng.standard_normal((5, 16)).astype(np.float32)

    def run() -> np.ndarray:
        return ort.InferenceSession(
            model.SerializeToString(), providers=["CPUExecutionProvider"]
        ).run(None, {"x": x})[0]

    before = run()
    assert gemm_to_matmul(model) == 1
    assert [n.op_type for n in model.graph.node] == (["MatMul", "Add"] if bias else ["MatMul"])
    assert "w" not in {i.name for i in model.graph.initializer}  # the transposed copy replaced it
    np.testing.assert_allclose(run(), before, rtol=1e-6, atol=1e-6)

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from slimsweep.sweeps.runtimes.onnx_storage import store_sparse_where_smaller, store_weights_fp16


def _matmul_model(weight: np.ndarray) -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, weight.shape[0]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, weight.shape[1]])],
        [numpy_helper.from_array(weight, "w")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"x": x}
    )[0]


@pytest.mark.parametrize(
    ("shape", "index_type"),
    [((8, 12), TensorProto.INT8), ((64, 64), TensorProto.INT16), ((256, 256), TensorProto.INT32)],
)
def test_sparse_storage_is_exact_and_uses_the_narrowest_index(shape, index_type) -> None:
    rng = np.random.default_rng(0)
    weight = rng.standard_normal(shape).astype(np.float32)
    weight[rng.random(shape) < 0.85] = 0
    x = rng.standard_normal((3, shape[0])).astype(np.float32)
    model = _matmul_model(weight)
    assert store_sparse_where_smaller(model) == 1
    stored = model.graph.sparse_initializer[0]
    assert stored.indices.data_type == index_type
    assert len(
        stored.values.float_data or numpy_helper.to_array(stored.values)
    ) == np.count_nonzero(weight)
    np.testing.assert_allclose(_run(model, x), x @ weight, rtol=1e-5, atol=1e-5)


def test_dense_weights_stay_dense() -> None:
    weight = np.random.default_rng(1).standard_normal((64, 64)).astype(np.float32)
    weight[:, :20] = 0  # 31 % zeros: a sparse copy would be larger
    model = _matmul_model(weight)
    assert store_sparse_where_smaller(model) == 0
    assert len(model.graph.initializer) == 1


def test_fp16_storage_halves_weights_and_rounds_like_fp16() -> None:
    rng = np.random.default_rng(2)
    weight = rng.standard_normal((128, 64)).astype(np.float32)
    x = rng.standard_normal((4, 128)).astype(np.float32)
    model = _matmul_model(weight)
    fp32_bytes = len(model.SerializeToString())
    store_weights_fp16(model)
    assert model.graph.initializer[0].data_type == TensorProto.FLOAT16
    assert len(model.SerializeToString()) < 0.52 * fp32_bytes
    rounded = weight.astype(np.float16).astype(np.float32)
    np.testing.assert_allclose(_run(model, x), x @ rounded, rtol=1e-5, atol=1e-5)

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from slimsweep.sweeps.runtimes.onnx_bitpack import pack_bit_planes, unpack_bit_planes
from slimsweep.sweeps.runtimes.onnx_storage import store_compact, store_weights_half


def _matmul_model(weight: np.ndarray) -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, weight.shape[0]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, weight.shape[1]])],
        [numpy_helper.from_array(weight, "w")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"x": x}
    )[0]


@pytest.mark.parametrize(
    ("shape", "index_type"),
    [((8, 12), TensorProto.INT8), ((64, 64), TensorProto.INT16), ((256, 256), TensorProto.INT32)],
)
def test_very_sparse_weights_are_stored_as_coo_with_the_narrowest_index(shape, index_type) -> None:
    rng = np.random.default_rng(0)
    weight = rng.standard_normal(shape).astype(np.float32)
    weight[rng.random(shape) < 0.97] = 0
    x = rng.standard_normal((3, shape[0])).astype(np.float32)
    model = _matmul_model(weight)
    assert store_compact(model)["sparse"] == 1
    stored = model.graph.sparse_initializer[0]
    assert stored.indices.data_type == index_type
    assert len(
        stored.values.float_data or numpy_helper.to_array(stored.values)
    ) == np.count_nonzero(weight)
    np.testing.assert_allclose(_run(model, x), x @ weight, rtol=1e-5, atol=1e-5)


def test_dense_weights_stay_dense() -> None:
    weight = np.random.default_rng(1).standard_normal((64, 64)).astype(np.float32)
    weight[:, :3] = 0  # 5 % zeros: a sparse copy or a bitmask would be larger
    model = _matmul_model(weight)
    assert not any(store_compact(model).values())
    assert len(model.graph.initializer) == 1


def test_fp16_storage_halves_weights_and_rounds_like_fp16() -> None:
    rng = np.random.default_rng(2)
    weight = rng.standard_normal((128, 64)).astype(np.float32)
    x = rng.standard_normal((4, 128)).astype(np.float32)
    model = _matmul_model(weight)
    fp32_bytes = len(model.SerializeToString())
    store_weights_half(model, "fp16")
    assert model.graph.initializer[0].data_type == TensorProto.FLOAT16
    assert len(model.SerializeToString()) < 0.52 * fp32_bytes
    rounded = weight.astype(np.float16).astype(np.float32)
    np.testing.assert_allclose(_run(model, x), x @ rounded, rtol=1e-5, atol=1e-5)


def _stored_bytes(model: onnx.ModelProto) -> int:
    return sum(len(t.SerializeToString()) for t in model.graph.initializer) + sum(
        len(t.SerializeToString()) for t in model.graph.sparse_initializer
    )


def test_half_sparse_weights_take_a_bitmask_decoded_exactly() -> None:
    rng = np.random.default_rng(3)
    weight = rng.standard_normal((256, 128)).astype(np.float32)
    weight[:, -7:] = 0  # trailing zeros: the last kept value is not the last element
    weight[rng.random(weight.shape) < 0.5] = 0
    x = rng.standard_normal((5, 256)).astype(np.float32)
    model = _matmul_model(weight)
    dense = _stored_bytes(model)
    assert store_compact(model)["bitmask"] == 1
    nonzero = np.count_nonzero(weight)
    assert _stored_bytes(model) < nonzero * 4 + weight.size / 8 + 1024  # values + 1 bit each
    assert _stored_bytes(model) < 0.6 * dense
    np.testing.assert_array_equal(_run(model, x), _run(_matmul_model(weight), x))


@pytest.mark.parametrize("distinct", [2, 16, 200])
def test_shared_values_take_a_codebook_with_log2_k_bit_indices(distinct: int) -> None:
    rng = np.random.default_rng(distinct)
    table = rng.standard_normal(distinct).astype(np.float32)
    weight = rng.choice(table, size=(512, 64))
    x = rng.standard_normal((2, 512)).astype(np.float32)
    model = _matmul_model(weight)
    assert store_compact(model)["codebook"] == 1
    bits = int(np.ceil(np.log2(distinct)))
    assert _stored_bytes(model) < weight.size * bits / 8 + distinct * 4 + 1024
    np.testing.assert_array_equal(_run(model, x), _run(_matmul_model(weight), x))


def test_bit_planes_round_trip() -> None:
    indices = np.random.default_rng(4).integers(0, 32, 1001)
    planes = pack_bit_planes(indices, 5)
    assert planes.shape == (5, 126)
    np.testing.assert_array_equal(unpack_bit_planes(planes, 1001), indices)


def test_half_precision_weights_are_never_left_to_a_decoder() -> None:
    # ORT does not fold the decoding of fp16 tensors; they would be decoded on every run
    rng = np.random.default_rng(5)
    weight = rng.standard_normal((256, 128)).astype(np.float32)
    weight[rng.random(weight.shape) < 0.6] = 0
    model = _matmul_model(weight)
    store_weights_half(model, "fp16")
    chosen = store_compact(model)
    assert chosen["bitmask"] == chosen["codebook"] == 0
    assert not any(n.op_type in ("BitShift", "Where") for n in model.graph.node)

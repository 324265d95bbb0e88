"""How weights are stored in an ONNX file: fp16 with a Cast, or sparse where that is smaller.

ONNX Runtime densifies sparse initializers and folds the Casts when it loads the model, so
both change the bytes on disk (what is shipped) and not the kernels that run.
"""

import numpy as np
import onnx
from onnx import helper, numpy_helper

_INDEX_TYPES = (np.int8, np.int16, np.int32, np.int64)


def store_weights_fp16(model: onnx.ModelProto) -> None:
    """Replace each float initializer by a half-precision one followed by a Cast to float."""
    graph = model.graph
    casts = []
    for init in graph.initializer:
        if init.data_type != onnx.TensorProto.FLOAT:
            continue
        half_name = f"{init.name}__fp16"
        half = numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), half_name)
        casts.append(helper.make_node("Cast", [half_name], [init.name], to=onnx.TensorProto.FLOAT))
        init.CopyFrom(half)
    nodes = [*casts, *graph.node]
    del graph.node[:]
    graph.node.extend(nodes)


def store_sparse_where_smaller(model: onnx.ModelProto) -> int:
    """Move initializers with enough zeros to sparse_initializer; returns how many moved."""
    graph = model.graph
    dense, moved = [], 0
    for init in graph.initializer:
        values = numpy_helper.to_array(init)
        sparse = _as_sparse(init.name, values)
        if sparse is None:
            dense.append(init)
        else:
            graph.sparse_initializer.append(sparse)
            moved += 1
    del graph.initializer[:]
    graph.initializer.extend(dense)
    return moved


def _as_sparse(name: str, values: np.ndarray) -> onnx.SparseTensorProto | None:
    flat = values.reshape(-1)
    if flat.size < 64:
        return None
    index_type = next(t for t in _INDEX_TYPES if flat.size - 1 <= np.iinfo(t).max)
    nonzero = np.flatnonzero(flat)
    sparse_bytes = nonzero.size * (flat.itemsize + np.dtype(index_type).itemsize)
    if sparse_bytes >= 0.9 * flat.nbytes:
        return None
    return helper.make_sparse_tensor(
        numpy_helper.from_array(flat[nonzero], name),
        numpy_helper.from_array(nonzero.astype(index_type), f"{name}__indices"),
        list(values.shape),
    )

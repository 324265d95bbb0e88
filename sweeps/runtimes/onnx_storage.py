"""How weights are stored in an ONNX file: half precision with a Cast, or in the smallest
exact compact form (sparse, bitmask, codebook) where that is smaller.

ONNX Runtime densifies sparse initializers and folds Casts and decoding subgraphs when it
loads the model, so these change the bytes on disk (what is shipped), not the kernels
that run.
"""

import numpy as np
import onnx
from onnx import helper, numpy_helper

from slimsweep.sweeps.runtimes.onnx_bitpack import (
    bitmask_bytes,
    codebook_bytes,
    encode_bitmask,
    encode_codebook,
)

_INDEX_TYPES = (np.int8, np.int16, np.int32, np.int64)


def store_weights_half(model: onnx.ModelProto, dtype: str) -> None:
    """Replace each float initializer by a fp16 or bf16 one followed by a Cast to float."""
    graph = model.graph
    casts = []
    for init in graph.initializer:
        if init.data_type != onnx.TensorProto.FLOAT:
            continue
        half_name = f"{init.name}__{dtype}"
        values = numpy_helper.to_array(init)
        if dtype == "bf16":
            half = helper.make_tensor(
                half_name, onnx.TensorProto.BFLOAT16, values.shape, _bf16_bits(values), raw=True
            )
        else:
            half = numpy_helper.from_array(values.astype(np.float16), half_name)
        casts.append(helper.make_node("Cast", [half_name], [init.name], to=onnx.TensorProto.FLOAT))
        init.CopyFrom(half)
    nodes = [*casts, *graph.node]
    del graph.node[:]
    graph.node.extend(nodes)


def _bf16_bits(values: np.ndarray) -> bytes:
    """float32 → bfloat16 bytes, rounded to nearest even (the top half of each float)."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    rounded = bits + 0x7FFF + ((bits >> 16) & 1)
    return (rounded >> 16).astype(np.uint16).tobytes()


def store_compact(model: onnx.ModelProto) -> dict[str, int]:
    """Store each initializer in its smallest exact form: dense, sparse (COO), a bitmask of
    nonzeros, or a codebook of shared values; returns how many took each compact form."""
    graph = model.graph
    decodable = any(o.domain in ("", "ai.onnx") and o.version >= 18 for o in model.opset_import)
    dense, decoders, chosen = [], [], {"sparse": 0, "bitmask": 0, "codebook": 0}
    for init in graph.initializer:
        values = numpy_helper.to_array(init)
        costs = {"dense": values.nbytes, "sparse": _sparse_bytes(values)}
        if decodable and values.size >= _SMALLEST and values.dtype in _FOLDED_TYPES:
            costs |= {"bitmask": bitmask_bytes(values), "codebook": codebook_bytes(values)}
        form = min((c, f) for f, c in costs.items() if c is not None)[1]
        if form != "dense" and costs[form] >= 0.9 * values.nbytes:
            form = "dense"
        if form == "dense":
            dense.append(init)
        elif form == "sparse":
            graph.sparse_initializer.append(_as_sparse(init.name, values))
        else:
            encode = encode_bitmask if form == "bitmask" else encode_codebook
            consts, nodes = encode(init.name, values)
            dense.extend(consts)
            decoders.extend(nodes)
        chosen[form] = chosen.get(form, 0) + 1
    del graph.initializer[:]
    graph.initializer.extend(dense)
    nodes = [*decoders, *graph.node]
    del graph.node[:]
    graph.node.extend(nodes)
    chosen.pop("dense", None)
    return chosen


_SMALLEST = 256  # elements; below this the decoding constants outweigh any saving
# Types whose decoding subgraph ORT's CPU provider folds at load. Half-precision ones get
# Casts inserted around kernels it lacks, which stops the folding: a demo sweep measured a
# bitmask-stored fp16 model 2.3x slower than its dense twin, so those stay dense or COO.
_FOLDED_TYPES = (np.dtype(np.float32), np.dtype(np.int8), np.dtype(np.uint8))


def _index_type(size: int) -> type:
    return next(t for t in _INDEX_TYPES if size - 1 <= np.iinfo(t).max)


def _sparse_bytes(values: np.ndarray) -> int | None:
    if values.size < 64:
        return None
    itemsize = np.dtype(_index_type(values.size)).itemsize
    return np.count_nonzero(values) * (values.itemsize + itemsize)


def _as_sparse(name: str, values: np.ndarray) -> onnx.SparseTensorProto:
    flat = values.reshape(-1)
    nonzero = np.flatnonzero(flat)
    return helper.make_sparse_tensor(
        numpy_helper.from_array(flat[nonzero], name),
        numpy_helper.from_array(nonzero.astype(_index_type(flat.size)), f"{name}__indices"),
        list(values.shape),
    )

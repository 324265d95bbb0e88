"""Compact encodings of a constant tensor inside an ONNX graph, decoded by standard ops.

All the decoding inputs are constants, so ONNX Runtime folds the decoding subgraph into a
plain initializer when it loads the model: the bytes on disk shrink and the kernels that
run are the dense ones.

- codebook: k ≤ 256 distinct values (weight sharing, quantized weights) as a table of k
  values plus ⌈log2 k⌉-bit indices, stored as bit planes.
- bitmask: the nonzero values in order plus one bit per element (N:M and other sparsity).
"""

import math

import numpy as np
import onnx
from onnx import helper, numpy_helper

Encoded = tuple[list[onnx.TensorProto], list[onnx.NodeProto]]


def pack_bit_planes(indices: np.ndarray, bits: int) -> np.ndarray:
    """[bits, ⌈n/8⌉] uint8: plane j holds bit j of every index, element i at bit i%8 of
    byte i//8."""
    planes = [(indices >> j) & 1 for j in range(bits)]
    return np.stack([np.packbits(p.astype(np.uint8), bitorder="little") for p in planes])


def unpack_bit_planes(planes: np.ndarray, count: int) -> np.ndarray:
    """The inverse of `pack_bit_planes` (what the decoding subgraph computes)."""
    bits = np.unpackbits(planes, axis=1, bitorder="little")[:, :count].astype(np.int64)
    return (bits << np.arange(len(planes))[:, None]).sum(axis=0)


def _unpack_nodes(name: str, planes: np.ndarray, count: int) -> Encoded:
    """Nodes computing int64 indices [count] into `{name}__indices` from packed bit planes."""
    bits = planes.shape[0]
    consts = [
        numpy_helper.from_array(planes, f"{name}__planes"),
        numpy_helper.from_array(np.arange(8, dtype=np.uint8).reshape(1, 1, 8), f"{name}__shifts"),
        numpy_helper.from_array(np.ones(1, np.uint8), f"{name}__one"),
        numpy_helper.from_array(np.array([2], np.int64), f"{name}__axis2"),
        numpy_helper.from_array(np.array([bits, -1], np.int64), f"{name}__flat"),
        numpy_helper.from_array(np.array([0], np.int64), f"{name}__zero"),
        numpy_helper.from_array(np.array([count], np.int64), f"{name}__count"),
        numpy_helper.from_array(np.array([1], np.int64), f"{name}__axis1"),
        numpy_helper.from_array((1 << np.arange(bits, dtype=np.int64))[:, None], f"{name}__place"),
        numpy_helper.from_array(np.array([0], np.int64), f"{name}__axis0"),
    ]
    n = f"{name}__"
    nodes = [
        helper.make_node("Unsqueeze", [n + "planes", n + "axis2"], [n + "u"]),
        helper.make_node("BitShift", [n + "u", n + "shifts"], [n + "s"], direction="RIGHT"),
        helper.make_node("BitwiseAnd", [n + "s", n + "one"], [n + "b"]),
        helper.make_node("Reshape", [n + "b", n + "flat"], [n + "r"]),
        helper.make_node("Slice", [n + "r", n + "zero", n + "count", n + "axis1"], [n + "c"]),
        helper.make_node("Cast", [n + "c"], [n + "i"], to=onnx.TensorProto.INT64),
        helper.make_node("Mul", [n + "i", n + "place"], [n + "w"]),
        helper.make_node("ReduceSum", [n + "w", n + "axis0"], [n + "indices"], keepdims=0),
    ]
    return consts, nodes


def codebook_bytes(values: np.ndarray) -> int | None:
    """Bytes of the codebook encoding, or None if the tensor has more than 256 values."""
    distinct = np.unique(values)
    if len(distinct) > 256:
        return None
    bits = max(1, math.ceil(math.log2(len(distinct))))
    return distinct.nbytes + bits * math.ceil(values.size / 8)


def encode_codebook(name: str, values: np.ndarray) -> Encoded:
    table, indices = np.unique(values.reshape(-1), return_inverse=True)
    bits = max(1, math.ceil(math.log2(len(table))))
    consts, nodes = _unpack_nodes(name, pack_bit_planes(indices, bits), values.size)
    consts += [
        numpy_helper.from_array(table, f"{name}__table"),
        numpy_helper.from_array(np.array(values.shape, np.int64), f"{name}__shape"),
    ]
    n = f"{name}__"
    nodes += [
        helper.make_node("Gather", [n + "table", n + "indices"], [n + "flat_values"]),
        helper.make_node("Reshape", [n + "flat_values", n + "shape"], [name]),
    ]
    return consts, nodes


def bitmask_bytes(values: np.ndarray) -> int | None:
    """Bytes of the bitmask encoding, or None when nothing is nonzero."""
    nonzero = np.count_nonzero(values)
    return nonzero * values.itemsize + math.ceil(values.size / 8) if nonzero else None


def encode_bitmask(name: str, values: np.ndarray) -> Encoded:
    flat = values.reshape(-1)
    mask = (flat != 0).astype(np.int64)
    consts, nodes = _unpack_nodes(name, pack_bit_planes(mask, 1), flat.size)
    consts += [
        numpy_helper.from_array(flat[flat != 0], f"{name}__values"),
        numpy_helper.from_array(np.zeros((), flat.dtype), f"{name}__fill"),
        numpy_helper.from_array(np.array(0, np.int64), f"{name}__scalar_axis"),
        numpy_helper.from_array(np.array(np.count_nonzero(flat) - 1), f"{name}__last"),
        numpy_helper.from_array(np.array(values.shape, np.int64), f"{name}__shape"),
    ]
    n = f"{name}__"
    nodes += [
        # each kept value's place among the kept ones: how many were kept before it
        helper.make_node("CumSum", [n + "indices", n + "scalar_axis"], [n + "after"], exclusive=1),
        helper.make_node("Min", [n + "after", n + "last"], [n + "position"]),
        helper.make_node("Gather", [n + "values", n + "position"], [n + "spread"]),
        helper.make_node("Cast", [n + "indices"], [n + "kept"], to=onnx.TensorProto.BOOL),
        helper.make_node("Where", [n + "kept", n + "spread", n + "fill"], [n + "flat_values"]),
        helper.make_node("Reshape", [n + "flat_values", n + "shape"], [name]),
    ]
    return consts, nodes

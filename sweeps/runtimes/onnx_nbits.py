"""Low-bit weights for ONNX Runtime: each constant MatMul becomes a MatMulNBits, and, when
the plan asks for embeddings, each constant Gather table a GatherBlockQuantized.

Weights go two 4-bit codes to a byte with one float scale and one packed zero point per
group (the layout the Triton kernels read too, `kernels/packing.py`), so those layers take
~1/8 of their fp32 bytes. Codes a stage already chose (GPTQ,
AWQ, QAT) are packed as they are, found by the float weight's content; any other weight is
rounded to nearest here. An embedding table is grouped along its rows' features and stays
4-bit in memory: ORT dequantizes only the rows a batch gathers.
"""

import numpy as np
import onnx
import torch
from onnx import helper, numpy_helper

from slimsweep.compressors.grouped import codes_for, round_to_nearest, warn_if_padded
from slimsweep.compressors.plans import WeightOnlyPlan
from slimsweep.kernels.packing import pack_int4, pack_nibbles
from slimsweep.sweeps.runtimes.onnx_rewrite import gemm_to_matmul, replace_nodes

CONTAINER_BITS = 4  # MatMulNBits' CPU kernel; a 3-bit grid is stored in 4-bit codes
ACCURACY_LEVEL = 4  # activations quantized to int8 at run time: MLAS's fastest CPU path
_NONE = onnx.TensorProto()  # stands for "not a constant": it has no dims


def matmul_nbits(plan: WeightOnlyPlan, node: onnx.NodeProto, weight: np.ndarray) -> tuple:
    """The MatMulNBits node and its initializers replacing MatMul(A, weight [K, N])."""
    k, n = weight.shape
    warn_if_padded(k, plan.group_size)
    float_weight = torch.from_numpy(np.ascontiguousarray(weight.T))
    packed = pack_int4(codes_for(plan, float_weight, f"{node.op_type} {node.name!r}"), k)
    name = node.input[1]
    blocks = packed.qweight.numpy().reshape(n, packed.groups, -1)  # the shared layout's bytes
    initializers = [
        numpy_helper.from_array(blocks, f"{name}__q4"),
        numpy_helper.from_array(packed.scales.numpy().reshape(-1), f"{name}__scales"),
        numpy_helper.from_array(packed.zeros.numpy().reshape(-1), f"{name}__zero_points"),
    ]
    matmul = helper.make_node(
        "MatMulNBits",
        [node.input[0], *(init.name for init in initializers)],
        list(node.output),
        name=f"{node.name}_Q4",
        domain="com.microsoft",
        K=k,
        N=n,
        bits=CONTAINER_BITS,
        block_size=plan.group_size,
        accuracy_level=ACCURACY_LEVEL,
    )
    return matmul, initializers


def gather_block_quantized(plan: WeightOnlyPlan, node: onnx.NodeProto, table: np.ndarray) -> tuple:
    """The GatherBlockQuantized node and its initializers replacing Gather(table [rows, d])."""
    weights = torch.from_numpy(table.copy())
    rounded = round_to_nearest(weights, plan.bits, plan.group_size, plan.symmetric)
    name = node.input[0]
    initializers = [
        numpy_helper.from_array(pack_nibbles(rounded.codes.numpy()), f"{name}__gq4"),
        numpy_helper.from_array(rounded.scales.numpy(), f"{name}__gscales"),
        numpy_helper.from_array(pack_nibbles(rounded.zeros.numpy()), f"{name}__gzero_points"),
    ]
    gather = helper.make_node(
        "GatherBlockQuantized",
        [initializers[0].name, node.input[1], *(init.name for init in initializers[1:])],
        list(node.output),
        name=f"{node.name}_Q4",
        domain="com.microsoft",
        gather_axis=0,
        quantize_axis=1,
        block_size=plan.group_size,
        bits=CONTAINER_BITS,
    )
    return gather, initializers


def _embedding_table(node: onnx.NodeProto, constants: dict, plan: WeightOnlyPlan) -> bool:
    """A Gather of rows from a constant float table whose width fills whole groups."""
    if not plan.embeddings or node.op_type != "Gather" or node.input[0] not in constants:
        return False
    init = constants[node.input[0]]
    axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
    return (
        axis == 0
        and len(init.dims) == 2
        and init.data_type == onnx.TensorProto.FLOAT
        and init.dims[1] % plan.group_size == 0
    )


def quantize_matmuls(model: onnx.ModelProto, plan: WeightOnlyPlan) -> int:
    """Rewrite every MatMul with a constant 2-D weight in place (and every embedding Gather,
    if the plan says so); returns how many nodes."""
    gemm_to_matmul(model)
    graph = model.graph
    constants = {init.name: init for init in graph.initializer}
    nodes, added, rewritten = [], {}, 0
    for node in graph.node:
        if _embedding_table(node, constants, plan):
            table = numpy_helper.to_array(constants[node.input[0]])
            new, initializers = gather_block_quantized(plan, node, table)
        elif node.op_type == "MatMul" and len(constants.get(node.input[1], _NONE).dims) == 2:
            weight = numpy_helper.to_array(constants[node.input[1]])
            new, initializers = matmul_nbits(plan, node, weight)
        else:
            nodes.append(node)
            continue
        nodes.append(new)
        added.update({init.name: init for init in initializers})  # a shared table packs once
        rewritten += 1
    replace_nodes(graph, nodes, list(added.values()))
    if not any(opset.domain == "com.microsoft" for opset in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return rewritten

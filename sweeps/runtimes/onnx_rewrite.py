"""Graph rewrites that let ONNX Runtime's quantizers reach more of an exported model."""

import onnx
from onnx import helper, numpy_helper


def gemm_to_matmul(model: onnx.ModelProto) -> int:
    """Rewrite Gemm(A, W, b) with a constant W as MatMul(A, Wᵀ) + b; returns how many.

    The dynamo exporter emits Gemm for 2-D linears, and ORT's 4-bit MatMulNBits quantizer
    only takes MatMul. The result is exact: the same products and sums, in another layout.
    """
    graph = model.graph
    initializers = {init.name: init for init in graph.initializer}
    nodes, rewritten = [], 0
    for node in graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        plain = attrs.get("alpha", 1.0) == 1.0 and attrs.get("beta", 1.0) == 1.0
        if (
            node.op_type != "Gemm"
            or not plain
            or attrs.get("transA", 0)
            or node.input[1] not in initializers
        ):
            nodes.append(node)
            continue
        weight = numpy_helper.to_array(initializers[node.input[1]])
        if attrs.get("transB", 0):
            weight = weight.T
        weight_name = f"{node.input[1]}__kn"
        graph.initializer.append(numpy_helper.from_array(weight.copy(), weight_name))
        has_bias = len(node.input) > 2 and node.input[2]
        product = f"{node.output[0]}__matmul" if has_bias else node.output[0]
        nodes.append(
            helper.make_node(
                "MatMul", [node.input[0], weight_name], [product], name=f"{node.name}_MatMul"
            )
        )
        if has_bias:
            nodes.append(
                helper.make_node(
                    "Add", [product, node.input[2]], [node.output[0]], name=f"{node.name}_Add"
                )
            )
        rewritten += 1
    replace_nodes(graph, nodes)
    return rewritten


def replace_nodes(
    graph: onnx.GraphProto, nodes: list[onnx.NodeProto], added: list[onnx.TensorProto] = ()
) -> None:
    """Give `graph` these nodes and initializers, dropping initializers nothing reads."""
    used = {name for node in nodes for name in node.input}
    kept = [init for init in graph.initializer if init.name in used]
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.initializer[:]
    graph.initializer.extend([*kept, *added])

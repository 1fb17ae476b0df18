"""`--quant w8a8`: int8 weights with one scale per output column, int8 activations with one scale per row.

Every MatMul with a constant weight W [K, N] becomes

    s = max(|x|, over K) / 127                      [..., 1]  per row (token), computed each call
    q = uint8(round(x / s) + 128)                   [..., K]  one quantization per distinct input
    y = MatMulIntegerToFloat(q, Wq, 1, c, 128) * s  [..., N]  Wq = round(W / c), c = max(|W|, over K) / qmax

MatMulIntegerToFloat runs MLAS's QGEMM (packed int8 weights, the int32 accumulation exact), which on CPUs
without VNNI uses AVX2 far better than MatMulNBits' CompInt8 kernels do for more than one row, and on AMX
uses the tiles (docs/engine.md). A row's quantization depends on that row alone and the accumulation is
integer, so a stream's numbers do not depend on the batch it runs in.

The weight codes are stored as u8 around 128 (b_zero_point 128): MLAS then takes its u8 x u8 kernels, which
widen both operands to 16 bits before multiplying. With s8 weights AVX2's u8 x s8 kernel (`vpmaddubsw`) adds
two products in 16 bits and saturates past 32,767 (255 x 127 x 2 = 64,770): 12% error on random data,
measured. The u8 x u8 path is exact and, on AVX2, as fast at 16 and 509 rows.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

MS = "com.microsoft"


@dataclass
class W8A8Report:
    linears: int = 0
    inputs: int = 0  # distinct inputs quantized (linears sharing an input share its quantization)
    max_rel_error: dict[str, float] = field(default_factory=dict)  # weight -> max |W - Wq c| / max |W|


def _constant_weights(graph: onnx.GraphProto) -> dict[str, onnx.TensorProto]:
    return {
        init.name: init for init in graph.initializer if init.data_type == TensorProto.FLOAT and len(init.dims) == 2
    }


def _reduce_max(x: str, out: str, opset: int) -> onnx.NodeProto:
    """Max over the last axis, kept: `axes` is an input from opset 18 on, an attribute before."""
    if opset >= 18:
        return helper.make_node("ReduceMax", [x, "w8a8.last_axis"], [out], keepdims=1)
    return helper.make_node("ReduceMax", [x], [out], axes=[-1], keepdims=1)


def encode_w8a8(model: onnx.ModelProto, qmax: int = 127, exclude: frozenset[str] = frozenset()) -> W8A8Report:
    """Rewrite `model` in place (but the MatMuls named in `exclude`); return what was encoded."""
    graph = model.graph
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    weights = _constant_weights(graph)
    linears = [n for n in graph.node if n.op_type == "MatMul" and n.input[1] in weights and n.name not in exclude]
    by_input: dict[str, list[onnx.NodeProto]] = defaultdict(list)
    for node in linears:
        by_input[node.input[0]].append(node)
    report = W8A8Report(linears=len(linears), inputs=len(by_input))
    graph.initializer.extend(
        [
            numpy_helper.from_array(np.array(1.0, np.float32), "w8a8.one"),
            numpy_helper.from_array(np.array(1.0 / 127.0, np.float32), "w8a8.inv127"),
            numpy_helper.from_array(np.array(1e-12, np.float32), "w8a8.tiny"),
            numpy_helper.from_array(np.array(128.0, np.float32), "w8a8.f128"),
            numpy_helper.from_array(np.array(128, np.uint8), "w8a8.zp"),
            numpy_helper.from_array(np.array([-1], np.int64), "w8a8.last_axis"),
        ]
    )
    for x, nodes in by_input.items():
        tag = nodes[0].name or nodes[0].output[0]
        q, s = f"{tag}/w8a8/q", f"{tag}/w8a8/s"
        quant_nodes = [
            helper.make_node("Abs", [x], [f"{tag}/w8a8/abs"]),
            _reduce_max(f"{tag}/w8a8/abs", f"{tag}/w8a8/amax", opset),
            helper.make_node("Max", [f"{tag}/w8a8/amax", "w8a8.tiny"], [f"{tag}/w8a8/amax1"]),
            helper.make_node("Mul", [f"{tag}/w8a8/amax1", "w8a8.inv127"], [s]),  # [..., 1]
            helper.make_node("Div", [x, s], [f"{tag}/w8a8/xs"]),
            helper.make_node("Round", [f"{tag}/w8a8/xs"], [f"{tag}/w8a8/r"]),  # [-127, 127]
            helper.make_node("Add", [f"{tag}/w8a8/r", "w8a8.f128"], [f"{tag}/w8a8/u"]),
            helper.make_node("Cast", [f"{tag}/w8a8/u"], [q], to=TensorProto.UINT8),  # [..., K]
        ]
        first = min(list(graph.node).index(n) for n in nodes)
        for offset, qn in enumerate(quant_nodes):
            qn.name = qn.output[0]
            graph.node.insert(first + offset, qn)
        for node in nodes:
            w = numpy_helper.to_array(weights[node.input[1]])  # [K, N]
            col = np.abs(w).max(axis=0) / qmax  # [N]
            col[col == 0] = 1.0
            wq = np.clip(np.round(w / col), -qmax, qmax).astype(np.int8)  # [K, N]
            peak = float(np.abs(w).max()) or 1.0
            report.max_rel_error[node.input[1]] = float(np.abs(w - wq * col).max()) / peak
            name = node.name or node.output[0]
            graph.initializer.extend(
                [
                    # u8 codes around 128: MLAS's u8 x u8 kernels widen to 16 bits first, so no CPU saturates
                    numpy_helper.from_array((wq.astype(np.int16) + 128).astype(np.uint8), f"{node.input[1]}.w8"),
                    numpy_helper.from_array(col.astype(np.float32), f"{node.input[1]}.w8.scale"),
                ]
            )
            y = f"{name}/w8a8/y"
            index = list(graph.node).index(node)
            graph.node.remove(node)
            graph.node.insert(
                index,
                helper.make_node(
                    "MatMulIntegerToFloat",
                    [q, f"{node.input[1]}.w8", "w8a8.one", f"{node.input[1]}.w8.scale", "w8a8.zp", "w8a8.zp"],
                    [y],
                    name=f"{name}/w8a8",
                    domain=MS,
                ),
            )
            graph.node.insert(index + 1, helper.make_node("Mul", [y, s], list(node.output), name=f"{name}/w8a8/rows"))
    if not any(op.domain == MS for op in model.opset_import):
        model.opset_import.append(helper.make_opsetid(MS, 1))
    from export.quantize import drop_unused

    drop_unused(graph)
    return report

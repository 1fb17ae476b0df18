"""`--quant gguf`: the graph's weights in the GGUF source's own blocks, exactly.

Each MatMul whose weight rows come from GGUF blocks (`export/gguf_source.py`) becomes a MatMulNBits
over those very codes and scales (zero point 2 ** (bits - 1)). Formats with a float block offset
(Q4_1, Q5_1, Q4_K, Q5_K: w = d * q + m) cannot put `m` in MatMulNBits' integer zero points, so the
offset becomes a separate term: for a block b of the input x,
    sum_k x[k] * offsets[n, b]  =  (blocksum(x) @ offsets.T)[n],   blocksum(x)[b] = sum_{k in b} x[k].
How that term is laid out is `MinimumTerm` (docs/export.md has what each costs). The token embedding
becomes a GatherBlockQuantized over the same blocks when they are 8-bit and offset-free (Q8_0).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from export.gguf_blocks import Blocks, stack
from export.gguf_source import GgufBlockSource

MS = "com.microsoft"


class MinimumTerm(enum.StrEnum):
    PER_LINEAR = "per-linear"  # Reshape + ReduceSum + MatMul + Add after every MatMulNBits
    SHARED = "shared"  # one blocksum MatMul per distinct input, linears of one input merged: 3 ops per input
    FLOAT_ZERO_POINTS = "float-zero-points"  # 4-bit MatMulNBits' float zero points, zp = 8 - m / d: one op


@dataclass
class ExactReport:
    errors: dict[str, float] = field(default_factory=dict)  # graph weight -> max abs error vs the GGUF's values
    sources: dict[str, list[str]] = field(default_factory=dict)  # graph weight -> GGUF tensors behind it
    formats: dict[str, str] = field(default_factory=dict)  # graph weight -> GGUF type(s)
    kept: list[str] = field(default_factory=list)  # weights left in fp32 (float or unknown source rows)
    bits: dict[str, int] = field(default_factory=dict)  # graph weight -> MatMulNBits width

    @property
    def body_bits(self) -> int | None:
        """The width most weights got (4 for a Q4_1 file, 8 for Q8_0)."""
        widths = list(self.bits.values())
        return max(set(widths), key=widths.count) if widths else None


@dataclass
class _Linear:
    node: onnx.NodeProto
    blocks: Blocks


def encode_exact(
    model: onnx.ModelProto, gguf_path: Path, term: MinimumTerm = MinimumTerm.SHARED, accuracy_level: int = 4
) -> ExactReport:
    from export.quantize import drop_unused

    source = GgufBlockSource(gguf_path)
    graph = model.graph
    report = ExactReport()
    inits = {init.name: init for init in graph.initializer}
    linears: dict[str, list[_Linear]] = {}  # input name -> linears reading it
    for node in graph.node:
        if node.op_type != "MatMul" or node.input[1] not in inits:
            continue
        weight = numpy_helper.to_array(inits[node.input[1]])  # [K, N]
        if weight.ndim != 2 or weight.dtype != np.float32:
            continue
        match = source.match(np.ascontiguousarray(weight.T))
        if match is None or match.blocks is None:
            report.kept.append(node.input[1])
            continue
        report.errors[node.input[1]] = match.max_abs_error
        report.sources[node.input[1]] = match.tensors
        report.formats[node.input[1]] = match.blocks.source_type
        report.bits[node.input[1]] = match.blocks.bits
        linears.setdefault(node.input[0], []).append(_Linear(node, match.blocks))
    encoder = _Encoder(graph, term, accuracy_level)
    replaced = {id(lin.node): (x, group) for x, group in linears.items() for lin in group}
    new_nodes: list[onnx.NodeProto] = []
    done: set[str] = set()
    for node in graph.node:
        if id(node) not in replaced:
            new_nodes.append(node)
            continue
        x, group = replaced[id(node)]
        if x not in done:
            new_nodes.extend(encoder.group(x, group))
            done.add(x)
    del graph.node[:]
    graph.node.extend(new_nodes)
    graph.initializer.extend(encoder.initializers)
    _embedding(model, source, report)
    drop_unused(graph)
    return report


class _Encoder:
    def __init__(self, graph: onnx.GraphProto, term: MinimumTerm, accuracy_level: int) -> None:
        self.graph = graph
        self.term = term
        self.accuracy_level = accuracy_level
        self.initializers: list[onnx.TensorProto] = []

    def group(self, x: str, group: list[_Linear]) -> list[onnx.NodeProto]:
        """Nodes replacing the MatMuls that read `x`."""
        if self.term is not MinimumTerm.SHARED or len(group) == 1:
            return [node for lin in group for node in self.single(x, lin.blocks, lin.node.name, lin.node.output[0])]
        name = group[0].node.name + "_merged"
        merged = stack([lin.blocks for lin in group])
        nodes = self.single(x, merged, name, f"{name}/output_0")
        sizes = np.array([lin.blocks.shape[0] for lin in group], np.int64)
        self._add(f"{name}/split", sizes)
        outputs = [lin.node.output[0] for lin in group]
        nodes.append(
            helper.make_node("Split", [f"{name}/output_0", f"{name}/split"], outputs, name=f"{name}/Split", axis=-1)
        )
        return nodes

    def single(self, x: str, blocks: Blocks, name: str, output: str) -> list[onnx.NodeProto]:
        # ORT 1.32 refuses float zero points with 8-bit weights: those keep the separate offset term
        float_zp = self.term is MinimumTerm.FLOAT_ZERO_POINTS and blocks.offsets is not None and blocks.bits == 4
        needs_term = blocks.offsets is not None and not float_zp
        raw = f"{name}/nbits" if needs_term else output
        nodes = [self._nbits(x, blocks, name, raw, float_zp)]
        if needs_term:
            nodes.extend(self._offset_term(x, blocks, name, raw, output))
        return nodes

    def _nbits(self, x: str, blocks: Blocks, name: str, output: str, float_zp: bool) -> onnx.NodeProto:
        rows, cols = blocks.shape
        per_row = cols // blocks.block_size
        codes = blocks.codes.reshape(rows, per_row, blocks.block_size)
        if blocks.bits == 4:
            codes = codes[..., 0::2] | (codes[..., 1::2] << 4)  # two codes a byte, the even one low
        scales = blocks.scales
        if float_zp:
            # a constant block (scale 0, offset m) gets a tiny scale: s * (q - zp) = m + s * (q - 8), |s| = |m| / 2^20
            tiny = np.maximum(np.abs(blocks.offsets), np.float32(1e-30)) * np.float32(2.0**-20)
            scales = np.where(blocks.scales == 0, tiny, blocks.scales)
            zero_points = (blocks.zero_point - blocks.offsets / scales).astype(np.float32).reshape(-1)
        elif blocks.bits == 4:
            zero_points = np.full(rows * ((per_row + 1) // 2), 0x88, np.uint8)
        else:
            zero_points = np.full(rows * per_row, blocks.zero_point, np.uint8)
        inputs = [x, self._add(f"{name}/q{blocks.bits}", np.ascontiguousarray(codes, np.uint8))]
        inputs.append(self._add(f"{name}/scales", scales.reshape(-1).astype(np.float32)))
        inputs.append(self._add(f"{name}/zero_points", zero_points))
        return helper.make_node(
            "MatMulNBits", inputs, [output], name=f"{name}_Q{blocks.bits}", domain=MS,
            K=cols, N=rows, bits=blocks.bits, block_size=blocks.block_size, accuracy_level=self.accuracy_level,
        )  # fmt: skip

    def _offset_term(self, x: str, blocks: Blocks, name: str, raw: str, output: str) -> list[onnx.NodeProto]:
        per_row = blocks.shape[1] // blocks.block_size
        offsets_t = self._add(f"{name}/offsets_t", np.ascontiguousarray(blocks.offsets.T))  # [K / block, N]
        if self.term is MinimumTerm.PER_LINEAR:
            shape = self._add(f"{name}/block_shape", np.array([0, 0, per_row, blocks.block_size], np.int64))
            axes = self._add(f"{name}/block_axis", np.array([-1], np.int64))
            sums = [
                helper.make_node("Reshape", [x, shape], [f"{name}/blocks"], name=f"{name}/Reshape"),
                helper.make_node(
                    "ReduceSum", [f"{name}/blocks", axes], [f"{name}/blocksum"], name=f"{name}/ReduceSum", keepdims=0
                ),
            ]
            blocksum = f"{name}/blocksum"
        else:  # one [K, K / block] 0/1 matrix per input turns x into its block sums in one MatMul
            blocksum = f"{x}/blocksum{blocks.block_size}"
            ones = np.kron(np.eye(per_row, dtype=np.float32), np.ones((blocks.block_size, 1), np.float32))
            indicator = self._add(f"block_indicator_{per_row}x{blocks.block_size}", ones)  # [K, K / block], shared
            sums = [helper.make_node("MatMul", [x, indicator], [blocksum], name=f"{name}/BlockSum")]
        return [
            *sums,
            helper.make_node("MatMul", [blocksum, offsets_t], [f"{name}/offset_term"], name=f"{name}/OffsetTerm"),
            helper.make_node("Add", [raw, f"{name}/offset_term"], [output], name=f"{name}/AddOffsets"),
        ]

    def _add(self, name: str, array: np.ndarray) -> str:
        if not any(init.name == name for init in self.initializers):
            self.initializers.append(numpy_helper.from_array(array, name))
        return name


def _embedding(model: onnx.ModelProto, source: GgufBlockSource, report: ExactReport) -> None:
    """The token embedding from its GGUF blocks (exact for 8-bit offset-free formats), else 8-bit RTN."""
    from export.quantize import embedding_table, quantize_embedding, replace_gather

    found = embedding_table(model)
    if found is None:
        return
    node, table = found  # [V, H]
    match = source.match(table)
    key = f"{node.name or node.output[0]}.table"
    if match is not None and match.blocks is not None and match.blocks.bits == 8 and match.blocks.offsets is None:
        replace_gather(model.graph, node, match.blocks.codes, match.blocks.scales, match.blocks.block_size)
        report.errors[key] = match.max_abs_error
        report.sources[key] = match.tensors
        report.formats[key] = match.blocks.source_type
        return
    quantize_embedding(model)
    report.errors[key] = _rtn8_error(table)
    report.formats[key] = "RTN 8-bit (no exact GatherBlockQuantized form)"


def _rtn8_error(table: np.ndarray, block_size: int = 32) -> float:
    blocks = table.reshape(table.shape[0], -1, block_size)
    scale = np.abs(blocks).max(-1, keepdims=True) / 127.0
    scale[scale == 0] = 1.0
    return float(np.abs(np.clip(np.round(blocks / scale), -127, 127) * scale - blocks).max())

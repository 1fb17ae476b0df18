"""Activation smoothing before int8: per-channel scales moved from a MatMul's input into its weight rows.

MatMulNBits at accuracy level 4 quantizes its input to int8 per block of the weight's block size, so one
outlier channel (SmolLM2's normed hidden states have channels 50x their median) coarsens the other 63 or
127 values of its block. SmoothQuant's remedy (Xiao et al., 2023): for an input channel k with calibrated
maximum |x_k| and weight row maximum |W_k|, take
    s_k = max|x_k| ** alpha / max|W_k| ** (1 - alpha),   x @ W == (x / s) @ (diag(s) @ W),
and fold 1 / s into whatever produced x, so the graph computes the same function in fp32 with fewer
bytes' worth of error after quantization. The producers folded here, all exact in fp32:
- a (Skip)SimplifiedLayerNormalization: its gamma (every MatMul reading the normed output shares one s);
- `silu(gate) * up` before down_proj: the up projection's output columns;
- GroupQueryAttention before o_proj: the value columns of the packed QKV weight (a value channel serves
  `num_heads / kv_num_heads` query heads, so those heads share its scale; rotary touches only q and k).
The lm_head reads the final norm through a Slice (num_logits_to_keep), folded into that norm the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

NORMS = ("SimplifiedLayerNormalization", "SkipSimplifiedLayerNormalization")
CALIBRATION_TEXT = Path(__file__).with_name("data") / "calibration.txt"
MIN_SCALE = 1e-5


@dataclass
class SmoothingReport:
    folded: dict[str, str] = field(default_factory=dict)  # MatMul name -> where 1/s went
    skipped: list[str] = field(default_factory=list)  # MatMuls whose input had no foldable producer


def smoothing_scales(x_max: np.ndarray, w_max: np.ndarray, alpha: float) -> np.ndarray:
    """[K] channel scales; 1 where a channel never fired or its weights are all zero."""
    x_max = np.asarray(x_max, np.float64)
    w_max = np.asarray(w_max, np.float64)
    live = (x_max > 0) & (w_max > 0)
    s = np.ones_like(x_max)
    s[live] = x_max[live] ** alpha / w_max[live] ** (1.0 - alpha)
    return np.maximum(s, MIN_SCALE).astype(np.float32)


def calibration_maxima(model: onnx.ModelProto, token_ids: list[int]) -> dict[str, np.ndarray]:
    """max |x| per channel [K] of every constant-weight MatMul's input, over one forward pass of `token_ids`."""
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    inits = {init.name for init in probe.graph.initializer}
    names = list(dict.fromkeys(n.input[0] for n in probe.graph.node if n.op_type == "MatMul" and n.input[1] in inits))
    present = {o.name for o in probe.graph.output}
    probe.graph.output.extend(
        helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None) for name in names if name not in present
    )
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep the probed tensors
    session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
    n = len(token_ids)
    feeds: dict[str, np.ndarray] = {}
    for graph_input in session.get_inputs():
        if graph_input.name == "input_ids":
            feeds[graph_input.name] = np.asarray([token_ids], np.int64)
        elif graph_input.name == "attention_mask":
            feeds[graph_input.name] = np.ones((1, n), np.int64)
        elif graph_input.name == "position_ids":  # the Optimum graph's
            feeds[graph_input.name] = np.arange(n, dtype=np.int64)[None, :]
        elif graph_input.name.startswith("past_key_values"):
            heads, head_dim = graph_input.shape[1], graph_input.shape[3]
            feeds[graph_input.name] = np.zeros((1, heads, 0, head_dim), np.float32)  # [1, kv, 0, hd]: no past
    outputs = session.run(names, feeds)  # each [1, T, K] (or [T, K])
    return {name: np.abs(v.reshape(-1, v.shape[-1])).max(axis=0) for name, v in zip(names, outputs, strict=True)}


def smooth(model: onnx.ModelProto, maxima: dict[str, np.ndarray], alpha: float) -> SmoothingReport:
    """Fold smoothing scales into `model` in place (same function in fp32)."""
    graph = model.graph
    inits = {init.name: init for init in graph.initializer}
    producers = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    report = SmoothingReport()
    weights = _Weights(inits)
    changed: set[str] = set()

    def const_matmuls(x: str) -> list[onnx.NodeProto] | None:
        readers = consumers.get(x, [])
        if readers and all(r.op_type == "MatMul" and r.input[0] == x and r.input[1] in inits for r in readers):
            return readers
        return None

    done: set[str] = set()
    for node in graph.node:
        if node.op_type != "MatMul" or node.input[1] not in inits or node.input[0] in done:
            continue
        x = node.input[0]
        done.add(x)
        readers = const_matmuls(x)
        source = producers.get(x)
        if readers is None or source is None or x not in maxima:
            report.skipped.extend(r.name for r in readers or [node])
            continue
        w_max = np.max([np.abs(weights[r.input[1]]).max(axis=1) for r in readers], axis=0)  # [K]
        normed = x
        if source.op_type == "Slice" and len(consumers.get(source.input[0], [])) == 1:
            normed, source = source.input[0], producers.get(source.input[0])  # the lm_head's num_logits_to_keep
        gamma = _gamma(source) if source is not None and source.op_type in NORMS else None
        if source is not None and gamma in inits and gamma not in changed and source.output[0] == normed:
            s = smoothing_scales(maxima[x], w_max, alpha)
            weights[gamma] = weights[gamma] / s
            changed.add(gamma)
            where = f"{source.name} gamma"
        elif (
            source is not None
            and source.op_type == "Mul"
            and (up := _lone_matmul_operand(source, producers, consumers, inits))
        ):
            s = smoothing_scales(maxima[x], w_max, alpha)
            weights[up.input[1]] = weights[up.input[1]] / s[None, :]
            changed.add(up.input[1])
            where = f"{up.name} columns"
        elif source is not None and source.op_type == "GroupQueryAttention" and source.output[0] == x:
            folded = _fold_into_values(source, maxima[x], w_max, alpha, producers, consumers, inits, weights)
            if folded is None:
                report.skipped.extend(r.name for r in readers)
                continue
            s, where, packed = folded
            changed.add(packed)
        else:
            report.skipped.extend(r.name for r in readers)
            continue
        for reader in readers:
            if len(consumers[reader.input[1]]) > 1:  # a tied weight (the lm_head and the embedding): untie
                tied = reader.input[1]
                consumers[tied].remove(reader)
                reader.input[1] = f"{tied}.smoothed"
                graph.initializer.append(numpy_helper.from_array(weights[tied], reader.input[1]))
                inits[reader.input[1]] = graph.initializer[-1]
                consumers[reader.input[1]] = [reader]
            weights[reader.input[1]] = weights[reader.input[1]] * s[:, None]
            changed.add(reader.input[1])
            report.folded[reader.name] = where
    for name in changed:
        inits[name].CopyFrom(numpy_helper.from_array(weights[name].astype(np.float32), name))
    return report


class _Weights(dict):
    """Initializers as arrays, converted on first use (most of a graph's weights are never read here)."""

    def __init__(self, inits: dict[str, onnx.TensorProto]) -> None:
        super().__init__()
        self._inits = inits

    def __missing__(self, name: str) -> np.ndarray:
        self[name] = numpy_helper.to_array(self._inits[name])
        return self[name]


def _gamma(norm: onnx.NodeProto) -> str:
    return norm.input[1 if norm.op_type == "SimplifiedLayerNormalization" else 2]


def _lone_matmul_operand(mul: onnx.NodeProto, producers: dict, consumers: dict, inits: dict) -> onnx.NodeProto | None:
    """The constant-weight MatMul feeding `mul` whose output nothing else reads (llama's up projection)."""
    for operand in mul.input:
        up = producers.get(operand)
        if up is not None and up.op_type == "MatMul" and up.input[1] in inits and len(consumers[operand]) == 1:
            return up
    return None


def _fold_into_values(
    gqa: onnx.NodeProto, x_max: np.ndarray, w_max: np.ndarray, alpha: float,
    producers: dict, consumers: dict, inits: dict, weights: dict,
) -> tuple[np.ndarray, str, str] | None:  # fmt: skip
    """(o_proj's input scales [heads * head_dim], where, the packed weight) after dividing V's columns."""
    attrs = {a.name: helper.get_attribute_value(a) for a in gqa.attribute}
    heads, kv_heads = int(attrs["num_heads"]), int(attrs["kv_num_heads"])
    packed = producers.get(gqa.input[0])
    if (len(gqa.input) > 1 and gqa.input[1]) or packed is None or packed.op_type != "MatMul":
        return None  # separate K and V inputs: not the packed layout folded here
    if packed.input[1] not in inits or len(consumers[gqa.input[0]]) != 1:
        return None
    head_dim = x_max.shape[0] // heads
    group = heads // kv_heads
    # [kv_heads, head_dim]: a value channel's statistics over the query heads it serves
    xv = x_max.reshape(kv_heads, group, head_dim).max(axis=1)
    wv = w_max.reshape(kv_heads, group, head_dim).max(axis=1)
    t = smoothing_scales(xv.reshape(-1), wv.reshape(-1), alpha)  # [kv_heads * head_dim]
    qkv = weights[packed.input[1]].copy()  # [H, (heads + 2 kv_heads) * head_dim]: q, k, v
    v0 = (heads + kv_heads) * head_dim
    qkv[:, v0:] = qkv[:, v0:] / t[None, :]
    weights[packed.input[1]] = qkv
    s = np.repeat(t.reshape(kv_heads, 1, head_dim), group, axis=1).reshape(-1)  # [heads * head_dim]
    return s, f"{packed.name} value columns", packed.input[1]

"""`--quant w8a8` (export/w8a8.py) on a one-linear graph: the integer reference exactly, batch invariance,
no saturation at the extremes of both operands."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from app.engine.manifest import read_manifest
from export.w8a8 import encode_w8a8

K, N = 96, 40


def _linear(w: np.ndarray):
    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", "s", K])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", "s", N])],
        [numpy_helper.from_array(w, "w")],
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)])


def _session(w: np.ndarray) -> ort.InferenceSession:
    model = _linear(w)
    report = encode_w8a8(model)
    assert report.linears == 1 and report.inputs == 1
    assert [n.op_type for n in model.graph.node].count("MatMulIntegerToFloat") == 1
    assert "MatMul" not in [n.op_type for n in model.graph.node]
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _reference(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Per-row symmetric int8 activations, per-column symmetric int8 weights, exact integer products."""
    s = np.maximum(np.abs(x).max(-1, keepdims=True), 1e-12) / 127  # [..., 1]
    q = np.round(x / s).astype(np.int64)  # [..., K]
    c = np.abs(w).max(0) / 127  # [N]
    wq = np.round(w / c).astype(np.int64)  # [K, N]
    return (q @ wq).astype(np.float64) * c * s


def test_w8a8_computes_the_integer_reference_and_stays_near_fp32():
    rng = np.random.default_rng(0)
    w = (rng.standard_normal((K, N)) * 0.05).astype(np.float32)
    x = rng.standard_normal((2, 5, K)).astype(np.float32)
    y = _session(w).run(None, {"x": x})[0]
    np.testing.assert_allclose(y, _reference(x, w), rtol=1e-5, atol=1e-6)
    assert np.abs(y - x @ w).max() < 0.02 * np.abs(x @ w).max()


def test_a_row_gets_the_same_bits_alone_and_in_any_batch():
    rng = np.random.default_rng(1)
    w = (rng.standard_normal((K, N)) * 0.05).astype(np.float32)
    x = rng.standard_normal((7, 1, K)).astype(np.float32) * rng.uniform(0.1, 30, (7, 1, 1)).astype(np.float32)
    sess = _session(w)
    batch = sess.run(None, {"x": x})[0]
    for i in range(7):
        np.testing.assert_array_equal(sess.run(None, {"x": x[i : i + 1]})[0], batch[i : i + 1])


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_extreme_operands_do_not_saturate(sign):
    # every activation code at +-127 and every weight code at +127: a 16-bit pair sum would clip
    w = np.ones((K, N), np.float32)
    x = np.full((1, 3, K), sign, np.float32)
    y = _session(w).run(None, {"x": x})[0]
    np.testing.assert_allclose(y, np.full((1, 3, N), sign * K), rtol=1e-6)


def test_the_embedded_model_exports_as_w8a8_within_one_percent(real_models):
    import onnx

    folder = real_models.get("gqa", "w8a8")
    m = read_manifest(folder)
    assert m.quant == "w8a8" and m.recipe.method == "w8a8" and m.recipe.smoothing_alpha == 0.5
    assert m.recipe.min_rows == 1
    v = m.validation
    assert v.passed and v.perplexity_increase_pct < 1.0 and v.top1_agreement > 0.92
    ops = [n.op_type for n in onnx.load(str(folder / m.io.onnx_file), load_external_data=False).graph.node]
    # 30 layers x (packed QKV, o, gate, up, down); gate and up share one quantized input
    assert ops.count("MatMulIntegerToFloat") == 30 * 5 and ops.count("Round") == 30 * 4
    assert ops.count("MatMulNBits") == 1 and "GatherBlockQuantized" in ops  # the lm_head, the embedding
    assert m.size_bytes < 200e6

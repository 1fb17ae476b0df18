"""Exactness of the GGUF block encodings, on synthetic tensors: decoding, ONNX Runtime's kernels, the row mapping."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFWriter
from gguf.quants import dequantize, quantize
from onnx import TensorProto, helper

from export.exact import MinimumTerm, _Encoder
from export.gguf_blocks import decode, stack, supported_types, widen
from export.gguf_source import GgufBlockSource

Q = GGMLQuantizationType
ROWS, COLS = 48, 512  # two Q*_K super-blocks per row
QUANTIZABLE = [Q.Q8_0, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1]  # gguf-py quantizes these; the K-quants are hand-packed
K_SCALE_FIELDS = {Q.Q4_K: (0, 2), Q.Q5_K: (0, 2), Q.Q6_K: (-2,)}  # byte offsets of fp16 super-block scales


def raw_tensor(qtype: GGMLQuantizationType, rows: int = ROWS, cols: int = COLS, seed: int = 0) -> np.ndarray:
    """[rows, bytes per row] of valid blocks of `qtype`."""
    rng = np.random.default_rng(seed)
    if qtype in QUANTIZABLE:
        return quantize(rng.normal(0, 0.05, (rows, cols)).astype(np.float32), qtype)
    block, size = GGML_QUANT_SIZES[qtype]
    blocks = rng.integers(0, 256, (rows * cols // block, size), dtype=np.uint8)
    for offset in K_SCALE_FIELDS[qtype]:  # random bytes are valid codes; the fp16 scales must be finite
        scale = rng.uniform(1e-4, 2e-3, len(blocks)).astype(np.float16).view(np.uint8).reshape(-1, 2)
        blocks[:, offset : offset + 2 if offset >= 0 else None] = scale
    return blocks.reshape(rows, -1)


@pytest.mark.parametrize("qtype", [Q[name] for name in supported_types()])
def test_decoded_blocks_reproduce_gguf_dequantization(qtype):
    raw = raw_tensor(qtype)
    reference = dequantize(raw, qtype).reshape(ROWS, COLS)
    blocks = decode(raw, qtype, ROWS, COLS)
    assert blocks.codes.dtype == np.uint8 and blocks.bits in (4, 8)
    assert blocks.codes.max() < (1 << blocks.bits)
    error = np.abs(blocks.dequantize() - reference).max()
    assert error <= 2e-7 * np.abs(reference).max(), error  # fp32 rounding of the folded offsets only
    if qtype in (Q.Q8_0, Q.Q4_0, Q.Q5_0, Q.Q6_K):
        assert blocks.offsets is None and error == 0.0


def test_an_unsupported_format_is_named():
    with pytest.raises(ValueError, match="IQ2_XS"):
        decode(np.zeros((1, 74), np.uint8), Q.IQ2_XS, 1, 256)


def test_widening_and_stacking_mixed_formats_is_exact():
    q4k, q6k = (decode(raw_tensor(t), t, ROWS, COLS) for t in (Q.Q4_K, Q.Q6_K))
    mixed = stack([q4k, q6k])
    assert (mixed.bits, mixed.block_size, mixed.source_type) == (8, 16, "Q4_K+Q6_K")
    expected = np.concatenate([q4k.dequantize(), q6k.dequantize()])
    assert np.abs(mixed.dequantize() - expected).max() <= 1e-7 * np.abs(expected).max()
    assert widen(q6k, 8, 16, False) is q6k


def run_encoded(blocks, term: MinimumTerm, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    graph = helper.make_graph(
        [], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, None, blocks.shape[1]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, None, blocks.shape[0]])],
    )  # fmt: skip
    encoder = _Encoder(graph, term, accuracy_level=1)  # fp32 compute: the weights alone decide the result
    graph.node.extend(encoder.single("x", blocks, "lin", "y"))
    graph.initializer.extend(encoder.initializers)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("com.microsoft", 1)]
    )
    onnx.checker.check_model(model)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


@pytest.mark.parametrize("term", list(MinimumTerm))
@pytest.mark.parametrize("qtype", [Q.Q8_0, Q.Q4_0, Q.Q4_1, Q.Q5_1, Q.Q4_K, Q.Q6_K])
def test_onnx_runtime_computes_with_the_exact_weights(qtype, term):
    blocks = decode(raw_tensor(qtype), qtype, ROWS, COLS)
    x = np.random.default_rng(1).normal(size=(1, 3, COLS)).astype(np.float32)  # [1, S, K]
    expected = x @ dequantize(raw_tensor(qtype), qtype).reshape(ROWS, COLS).T.astype(np.float64)
    y = run_encoded(blocks, term, x)
    assert y.shape == (1, 3, ROWS)
    assert np.abs(y - expected).max() <= 1e-5 * np.abs(expected).max()


def _permute_for_rope(w: np.ndarray, heads: int) -> np.ndarray:
    """transformers' reverse permutation of llama's q/k rows (modeling_gguf_pytorch_utils)."""
    dim = w.shape[0] // heads // 2
    return w.reshape(heads, dim, 2, *w.shape[1:]).swapaxes(2, 1).reshape(w.shape)


def test_graph_rows_are_mapped_to_their_gguf_blocks_through_permutation_and_packing(tmp_path):
    path = tmp_path / "m.gguf"
    writer = GGUFWriter(path, "llama")
    raws = {
        "blk.0.attn_q.weight": raw_tensor(Q.Q4_1, 64, 256, 1),
        "blk.0.attn_k.weight": raw_tensor(Q.Q4_1, 32, 256, 2),
    }
    raws["blk.0.ffn_down.weight"] = raw_tensor(Q.Q8_0, 256, 256, 3)
    for name, raw in raws.items():
        qtype = Q.Q8_0 if "ffn" in name else Q.Q4_1
        writer.add_tensor(name, raw, raw_shape=raw.shape, raw_dtype=qtype)
    writer.add_tensor("blk.0.attn_norm.weight", np.ones(256, np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    source = GgufBlockSource(path)
    q = _permute_for_rope(dequantize(raws["blk.0.attn_q.weight"], Q.Q4_1).reshape(64, 256), heads=4)
    k = _permute_for_rope(dequantize(raws["blk.0.attn_k.weight"], Q.Q4_1).reshape(32, 256), heads=2)
    packed = np.concatenate([q, k]).astype(np.float32)  # the GQA graph's QKV weight, transposed: [N, K]
    match = source.match(packed)
    assert match is not None and match.tensors == ["blk.0.attn_q.weight", "blk.0.attn_k.weight"]
    assert match.blocks.source_type == "Q4_1" and match.blocks.shape == (96, 256)
    assert match.max_abs_error <= 2e-7 * np.abs(packed).max()
    assert np.abs(match.blocks.dequantize() - packed).max() == pytest.approx(match.max_abs_error)
    down = source.match(dequantize(raws["blk.0.ffn_down.weight"], Q.Q8_0).reshape(256, 256)[::-1].copy())
    assert down is not None and down.max_abs_error == 0.0 and down.blocks.bits == 8
    assert source.match(packed + 1e-3) is None  # rows the file does not hold have no source

"""`--quant gguf`: the embedded Q4_1 GGUF exported in its own blocks, through the real CLI."""

from __future__ import annotations

import onnx

from app.engine.manifest import read_manifest
from tests.conftest import run_cli
from tests.export.test_export_errors import assert_clear_error


def test_embedded_gguf_exports_its_own_blocks_exactly(real_models):
    folder = real_models.get("gqa", "gguf")
    m = read_manifest(folder)
    assert m.quant == "gguf" and m.recipe.method == "gguf-blocks" and m.recipe.algorithm == "exact/shared"
    errors = m.recipe.max_abs_error
    # 30 layers x (packed QKV, o, gate, up, down) from Q4_1, the lm_head and the embedding from Q8_0
    assert len(errors) == 30 * 5 + 2
    assert max(errors.values()) < 1e-6  # fp32 rounding of the folded block minima, nothing else
    v = m.validation
    assert v.passed and abs(v.perplexity_increase_pct) < 1.0 and v.top1_agreement > 0.93
    graph = onnx.load(str(folder / m.io.onnx_file), load_external_data=False).graph
    ops = [n.op_type for n in graph.node]
    assert ops.count("MatMulNBits") == 30 * 4 + 1 and "GatherBlockQuantized" in ops  # gate + up merged
    bits = sorted(
        {next(a.i for a in n.attribute if a.name == "bits") for n in graph.node if n.op_type == "MatMulNBits"}
    )
    assert bits == [4, 8] and "MatMul" in ops  # the block-minimum terms
    assert m.size_bytes < 160e6  # int8: 194 MB
    log = (folder / "export.log").read_text()
    assert "Q4_1 from blk.0.attn_q.weight, blk.0.attn_k.weight, blk.0.attn_v.weight" in log


def test_gguf_quant_needs_a_gguf_source(tiny_source):
    proc = run_cli("export", str(tiny_source), "--quant", "gguf")
    assert_clear_error(proc, "--quant gguf", "not a GGUF source", "hint:")

"""`llm-gateway export` on a tiny random Llama built in the test: fast, through the real CLI."""

from __future__ import annotations

import collections
import json
import math

import onnx
import pytest

from app.engine.manifest import read_manifest
from export.sources import resolve_source, sha256_file, source_sha256
from tests.conftest import run_cli


@pytest.mark.parametrize("graph", ["gqa", "optimum"])
def test_fp32_export_is_self_describing_and_matches_pytorch(tiny_models, tiny_source, graph):
    folder = tiny_models[graph]
    manifest = read_manifest(folder)
    assert manifest.graph == graph and manifest.quant == "fp32"
    assert manifest.source.kind == "folder" and manifest.source.sha256 == source_sha256(
        resolve_source(str(tiny_source))
    )
    for name in ("tokenizer.json", "chat_template.jinja", "generation_config.json", manifest.io.onnx_file):
        assert (folder / name).is_file(), name
    for name, digest in manifest.files.items():
        assert sha256_file(folder / name) == digest
    v = manifest.validation
    assert v.passed and v.greedy.exact_prompts + v.greedy.tie_divergences == v.greedy.prompts
    assert abs(v.perplexity_increase_pct) < 0.01 and v.top1_agreement > 0.99
    assert v.heldout_tokens >= 512
    assert manifest.versions["onnxruntime"] and manifest.io.opset > 0
    assert set(manifest.timings_s) == {"load", "export", "quantize", "validate"}
    assert "num_logits_to_keep" in manifest.io.inputs


def test_int8_export_and_default_folder_name(tiny_source, tmp_path):
    proc = run_cli("export", str(tiny_source), "--quant", "int8", cwd=tmp_path, check=True)
    folder = tmp_path / "models" / "tiny-llama-gqa-int8"
    manifest = read_manifest(folder)
    assert manifest.recipe.method == "matmulnbits" and manifest.recipe.bits == 8
    graph = onnx.load(str(folder / manifest.io.onnx_file), load_external_data=False).graph
    ops = collections.Counter(n.op_type for n in graph.node)
    assert ops["MatMulNBits"] == 2 * 5 + 1 and ops["GatherBlockQuantized"] == 1  # layers x (qkv, o, gate, up, down)
    nbits = [n for n in graph.node if n.op_type == "MatMulNBits"]
    blocks = {n.name: next(a.i for a in n.attribute if a.name == "block_size") for n in nbits}
    head = [name for name in blocks if "lm_head" in name]
    assert len(head) == 1 and blocks.pop(head[0]) == manifest.recipe.head_block_size == 32  # the lm_head picks tokens
    assert set(blocks.values()) == {manifest.recipe.block_size} == {64}
    table = manifest.model.vocab_size * manifest.model.hidden_size
    fp32 = [i.name for i in graph.initializer if i.data_type == onnx.TensorProto.FLOAT and math.prod(i.dims) >= table]
    assert fp32 == []  # neither the embedding nor the lm_head is left in fp32
    assert manifest.validation.perplexity_increase_pct < 2.0
    for stage in ("load", "export", "quantize", "validate", "write"):
        assert stage in proc.stderr  # progress per stage, with timings
    assert "wrote" in proc.stderr


def test_quiet_prints_only_the_folder(tiny_source, tmp_path):
    proc = run_cli("export", str(tiny_source), "--quant", "fp32", "--out", str(tmp_path / "m"), "--quiet", check=True)
    assert proc.stdout.strip() == str((tmp_path / "m").absolute())
    assert proc.stderr == ""


def test_refuses_to_overwrite_without_force_and_replaces_with_it(tiny_models, tiny_source, tmp_path):
    dest = tmp_path / "m"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    proc = run_cli("export", str(tiny_source), "--quant", "fp32", "--out", str(dest))
    assert proc.returncode == 2 and "already exists" in proc.stderr and "--force" in proc.stderr
    assert (dest / "keep.txt").read_text() == "mine"
    run_cli("export", str(tiny_source), "--quant", "fp32", "--out", str(dest), "--force", check=True)
    assert not (dest / "keep.txt").exists() and read_manifest(dest).validation.passed
    assert [p.name for p in tmp_path.iterdir()] == ["m"]  # no temporary folders left behind


def test_a_failed_validation_writes_nothing(tiny_source, tmp_path):
    # 4-bit weights on a random tiny model lose far more than the int4 limit allows
    proc = run_cli("export", str(tiny_source), "--quant", "int4", "--out", str(tmp_path / "m"))
    assert proc.returncode == 2
    assert "validation against PyTorch failed" in proc.stderr and "top-1 agreement" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_loss_limits_can_be_overridden(tiny_source, tmp_path):
    proc = run_cli(
        "export",
        str(tiny_source),
        "--quant",
        "int4",
        "--out",
        str(tmp_path / "m"),
        "--min-top1",
        "0.1",
        "--max-ppl-increase",
        "500",
    )
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert manifest["validation"]["thresholds"]["min_top1_agreement"] == 0.1
    assert manifest["recipe"]["overrides"] == {"lm_head": 8}

"""The embedded SmolLM2, exported once per session in every variant we ship or document."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.engine.manifest import read_manifest
from export.sources import resolve_source, sha256_file
from tests.conftest import run_cli

VARIANTS = [
    ("gqa", "int8"),
    ("gqa", "fp32"),
    ("gqa", "int4"),
    ("optimum", "fp32"),
    ("optimum", "int8"),
    ("optimum", "int4"),
]
LIMITS = {"fp32": 0.1, "int8": 2.0, "int4": 35.0}


@pytest.mark.parametrize(("graph", "quant"), VARIANTS)
def test_variant_is_validated_against_pytorch(real_models, graph, quant):
    folder = real_models.get(graph, quant)
    m = read_manifest(folder)
    source = resolve_source(None)
    assert (m.graph, m.quant) == (graph, quant) and m.name == "SmolLM2-135M-Instruct"
    gguf = Path(source.location) / source.gguf_file
    assert m.source.sha256 == sha256_file(gguf) and m.source.file == gguf.name
    for name, digest in m.files.items():
        assert sha256_file(folder / name) == digest, name
    v = m.validation
    assert v.passed and not v.failures and v.heldout_tokens >= 512
    assert v.perplexity_increase_pct <= LIMITS[quant]
    assert v.perplexity_torch == pytest.approx(21.835, rel=1e-3)  # the PyTorch model's own figure on our text
    if quant == "fp32":
        assert v.greedy.exact_prompts + v.greedy.tie_divergences == v.greedy.prompts
        assert abs(v.perplexity_increase_pct) < 0.01 and v.top1_agreement > 0.99
    if quant == "int8":
        assert v.top1_agreement > 0.93
    if quant != "fp32":
        assert m.recipe.method == "matmulnbits" and m.recipe.accuracy_level == 4
        assert m.recipe.block_size == {"int8": 64, "int4": 32}[quant]
        assert m.recipe.head_block_size == {"int8": 32, "int4": None}[quant]
    assert m.size_bytes < {"fp32": 700e6, "int8": 300e6, "int4": 240e6}[quant]
    assert set(m.timings_s) >= {"load", "export", "quantize", "validate"}


def test_no_arguments_export_the_default_variant(real_models):
    folder = real_models.default
    assert folder.name == "SmolLM2-135M-Instruct-gqa-auto" and folder.parent.name == "models"
    m = read_manifest(folder)
    assert m.source.kind == "embedded" and m.selection is not None and m.quant == m.selection.chosen
    assert m.validation.perplexity_increase_pct <= 1.0  # the default is within 1% of PyTorch fp32
    assert (folder / "chat_template.jinja").read_text().startswith("{% for message in messages %}")


def test_existing_export_is_kept_unless_forced_or_skipped(real_models):
    folder = real_models.default
    before = (folder / "manifest.json").read_bytes()
    proc = run_cli("export", cwd=real_models.workdir)
    assert proc.returncode == 2 and "already exists" in proc.stderr
    proc = run_cli("export", "--skip-existing", cwd=real_models.workdir)
    assert proc.returncode == 0 and "skipping" in proc.stderr
    assert (folder / "manifest.json").read_bytes() == before

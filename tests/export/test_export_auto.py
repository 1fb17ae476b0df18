"""`llm-gateway export` (`--quant auto`, the default) on the tiny model: every level built, validated and timed,
the one the rule chooses kept, the choice and its figures in manifest.json."""

from __future__ import annotations

from app.engine.cpu import host_cpu
from app.engine.manifest import read_manifest
from app.engine.selection import choose_variant, eligible, outpaced
from export.sources import sha256_file
from tests.conftest import run_cli


def test_auto_is_the_default_and_keeps_the_variant_the_rule_chooses(tiny_source, tmp_path):
    proc = run_cli("export", str(tiny_source), cwd=tmp_path, check=True)
    folder = tmp_path / "models" / "tiny-llama-gqa-auto"
    m = read_manifest(folder)
    sel = m.selection
    assert sel is not None and m.quant == sel.chosen and sel.cpu == host_cpu()
    by_quant = {c.quant: c for c in sel.candidates}
    assert list(by_quant) == ["fp32", "int8", "int4", "w8a8"]
    chosen = by_quant[m.quant]
    assert chosen.passed and chosen.perplexity_increase_pct <= sel.max_ppl_increase_pct == 1.0
    assert m.validation.passed and m.validation.perplexity_increase_pct == chosen.perplexity_increase_pct
    within = [c for c in sel.candidates if eligible(c, sel.max_ppl_increase_pct)]
    for c in sel.candidates:  # every level timed; validated unless one within the limit had outpaced it
        assert c.size_bytes > 0 and c.decode_tokens_per_s > 0 and c.prefill_ms > 0 and c.batch_tokens_per_s > 0
        assert 0 < c.score <= 1
        if c.perplexity_increase_pct is None:
            assert not c.passed and c.note.startswith("not validated")
            assert any(outpaced(c.score, w.score) for w in within)
    if by_quant["int4"].perplexity_increase_pct is not None:  # random weights: 4 bits fail their own limits
        assert not by_quant["int4"].passed and "top-1 agreement" in " ".join(by_quant["int4"].failures)
    # the recorded figures decide the same way again: the choice is the rule's, not an accident of the run
    assert choose_variant(sel.cpu, sel.candidates, sel.max_ppl_increase_pct).chosen is m.quant
    assert sel.rule.startswith("best serving score") and sel.reason.startswith(f"{m.quant} (")
    assert (sel.rounds, sel.decode_steps, sel.batch_rows) == (3, 16, 16) and 0 < sel.prompt_tokens <= 128
    onnx_files = sorted(p.name for p in folder.iterdir() if ".onnx" in p.name)
    assert onnx_files == [f"model.{m.quant}.onnx", f"model.{m.quant}.onnx.data"]
    assert not (folder / ".candidates").exists() and m.io.onnx_file == f"model.{m.quant}.onnx"
    for name, digest in m.files.items():
        assert sha256_file(folder / name) == digest, name
    assert set(m.timings_s) >= {"load", "export", "quantize", "validate", "select"}
    assert f"chose {m.quant}: " in proc.stderr and "[5/6] select" in proc.stderr
    again = run_cli("export", str(tiny_source), "--quant", "auto", "--skip-existing", cwd=tmp_path, check=True)
    assert "skipping" in again.stderr
    other = "int8" if m.quant == "fp32" else "fp32"  # an explicit level the folder does not hold: another request
    explicit = run_cli("export", str(tiny_source), "--quant", other, "--skip-existing", "--out", str(folder))
    assert explicit.returncode == 2 and "already exists" in explicit.stderr


def test_auto_with_no_variant_within_the_limit_fails_and_writes_nothing(tiny_source, tmp_path):
    proc = run_cli("export", str(tiny_source), "--max-ppl-increase", "-50", "--out", str(tmp_path / "m"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "no variant passed validation within -50% perplexity" in proc.stderr
    assert "fp32 (" in proc.stderr and "int4 (" in proc.stderr and "failed validation" in proc.stderr
    assert "--max-ppl-increase" in proc.stderr
    assert list(tmp_path.iterdir()) == []

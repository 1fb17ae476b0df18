"""The default export's choice through the real server: `/v1/info` shows it, and a folder chosen on another
ISA is served with a warning in the log."""

from __future__ import annotations

import json

import httpx
import msgspec

from app.engine.cpu import host_cpu
from app.engine.manifest import CandidateFigures
from app.engine.selection import choose_variant, serving_scores, speeds


def test_info_shows_how_the_default_variant_was_chosen_here(server):
    info = httpx.get(f"{server.url}/v1/info").json()
    m, sel = info["manifest"], info["manifest"]["selection"]
    here = msgspec.to_builtins(host_cpu())
    assert sel["cpu"] == here and info["runtime"]["cpu"] == here and here["isa"] and here["model"]
    assert sel["chosen"] == m["quant"] and m["variant"].endswith(f"-gqa-{sel['chosen']}")
    by_quant = {c["quant"]: c for c in sel["candidates"]}
    assert set(by_quant) >= {"fp32", "int8", "int4", "w8a8"}
    chosen = by_quant[sel["chosen"]]
    assert chosen["passed"] and chosen["perplexity_increase_pct"] <= sel["max_ppl_increase_pct"] == 1.0
    assert chosen["perplexity_increase_pct"] == m["validation"]["perplexity_increase_pct"]
    assert by_quant["int4"]["perplexity_increase_pct"] > 5  # RTN 4-bit on the Q4_1 source: ~+22%
    assert by_quant["fp32"]["decode_tokens_per_s"] > 0 and by_quant["fp32"]["prefill_ms"] > 0
    assert all(c["batch_tokens_per_s"] > 0 and 0 < c["score"] <= 1 for c in by_quant.values())
    assert sel["batch_rows"] == 16 and "serving score" in sel["rule"]
    candidates = msgspec.convert(sel["candidates"], list[CandidateFigures])
    cpu = msgspec.convert(sel["cpu"], type(host_cpu()))
    assert choose_variant(cpu, candidates, sel["max_ppl_increase_pct"]).chosen == sel["chosen"]
    scores = serving_scores({c.quant: speeds(c) for c in candidates})  # the recorded scores are the rule's
    assert {c.quant: c.score for c in candidates} == scores
    assert sel["cpu"]["model"] in sel["reason"] and str(sel["cpu"]["isa"]) in sel["rule"]
    assert sel["threads"] >= 1 and sel["rounds"] == 3


def test_a_folder_chosen_on_another_isa_warns_at_load(server, real_models, make_server, tmp_path):
    assert not [e for e in server.log_lines() if e.get("event") == "model.chosen_on_another_isa"]  # chosen here
    source = real_models.default
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    for path in source.iterdir():
        if path.is_file() and path.name != "manifest.json":
            (folder / path.name).symlink_to(path)
    manifest = json.loads((source / "manifest.json").read_text())
    other = "amx" if host_cpu().isa != "amx" else "avx2"
    manifest["selection"]["cpu"] = {"model": "Intel(R) Xeon(R) Platinum 8480+", "flags": ["amx_int8"], "isa": other}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    srv = make_server(model=folder)
    warnings = [e for e in srv.log_lines() if e.get("event") == "model.chosen_on_another_isa"]
    assert len(warnings) == 1 and warnings[0]["level"] == "warning"
    assert "Platinum 8480+" in warnings[0]["detail"] and f"({other})" in warnings[0]["detail"]
    assert httpx.get(f"{srv.url}/v1/info").json()["manifest"]["selection"]["cpu"]["isa"] == other

"""Grammar compile and mask times over issue 11's schemas (benchmarks/schemas.py), in this process, with the
engine's own compiler and mask filler: what a request pays before it takes a slot, and per constrained token.

Run alone: `python -m benchmarks.grammar_speed MODEL_DIR [REPS] [--outlines-core]` prints the figures as JSON
(`--outlines-core`: the same compile and walk with outlines-core beside them, when it is installed).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from app.engine import sampler
from app.engine.grammar import GrammarCompiler, MaskFiller, advance
from app.engine.manifest import read_manifest
from app.engine.params import Grammar, GrammarKind
from benchmarks.scenario_results import GrammarSpeed
from benchmarks.schemas import SCHEMAS
from benchmarks.stats import percentile

WALK_STEPS = 48  # tokens walked per schema for the mask figures
BATCH = 16  # matchers filled in one call for the batched figure (GrammarSpeed.batch_*)


def compiler_for(model_dir: Path) -> GrammarCompiler:
    shape = read_manifest(model_dir).model
    return GrammarCompiler.from_tokenizer_json(
        model_dir / "tokenizer.json", shape.vocab_size, tuple(shape.eos_token_ids)
    )


def compile_times(model_dir: Path, schemas: Sequence[dict[str, Any]], reps: int) -> list[float]:
    """Seconds per compile, every schema once per repetition, each repetition on a fresh compiler."""
    times = []
    for _ in range(reps):
        compiler = compiler_for(model_dir)
        for schema in schemas:
            start = time.perf_counter()
            compiler.compile(Grammar(GrammarKind.JSON_SCHEMA, json.dumps(schema)))
            times.append(time.perf_counter() - start)
    return times


def walk_mask_times(compiler: GrammarCompiler, schemas: Sequence[dict[str, Any]]) -> list[float]:
    """Seconds per single-matcher fill, walking each schema with a fixed logits row (tokens with the highest
    logit among the allowed: deterministic, and a real path through the grammar)."""
    filler = MaskFiller(compiler.vocab_size)
    logits = np.random.default_rng(0).standard_normal(compiler.vocab_size).astype(np.float32)  # [V]
    times = []
    for schema in schemas:
        matcher = compiler.matcher(Grammar(GrammarKind.JSON_SCHEMA, json.dumps(schema)))
        for _ in range(WALK_STEPS):
            if matcher.is_stopped():
                break
            start = time.perf_counter()
            mask = filler.fill([matcher])[0]  # [W]
            times.append(time.perf_counter() - start)
            row = logits.copy()
            sampler.apply_mask(row, mask)
            if advance(matcher, int(row.argmax())) is not None:
                break
    return times


def batch_times(compiler: GrammarCompiler, schemas: Sequence[dict[str, Any]]) -> tuple[list[float], list[float]]:
    """(fill seconds, apply seconds) per step for BATCH matchers over different schemas, stepped together."""
    filler = MaskFiller(compiler.vocab_size)
    rng = np.random.default_rng(0)
    base = rng.standard_normal((BATCH, compiler.vocab_size)).astype(np.float32)  # [B, V]
    grammars = [Grammar(GrammarKind.JSON_SCHEMA, json.dumps(schemas[i % len(schemas)])) for i in range(BATCH)]
    matchers = [compiler.matcher(g) for g in grammars]
    fills, applies = [], []
    for _ in range(WALK_STEPS):
        # a full batch every step: a finished (or failed) matcher starts its schema over
        matchers = [compiler.matcher(g) if m.is_stopped() else m for m, g in zip(matchers, grammars, strict=True)]
        start = time.perf_counter()
        masks = filler.fill(matchers)  # [B, W]
        fills.append(time.perf_counter() - start)
        logits = base.copy()
        start = time.perf_counter()
        sampler.apply_masks(logits, np.arange(BATCH), masks)
        applies.append(time.perf_counter() - start)
        for matcher, token in zip(matchers, logits.argmax(-1).tolist(), strict=True):
            advance(matcher, token)
    return fills, applies


def measure(model_dir: Path, reps: int = 5, schemas: Sequence[dict[str, Any]] = SCHEMAS) -> GrammarSpeed:
    compiles = compile_times(model_dir, schemas, reps)
    compiler = compiler_for(model_dir)
    masks = walk_mask_times(compiler, schemas)
    fills, applies = batch_times(compiler, schemas)
    return GrammarSpeed(
        schemas=len(schemas),
        compile_p50_ms=1e3 * percentile(compiles, 50),
        compile_p99_ms=1e3 * percentile(compiles, 99),
        mask_p50_us=1e6 * percentile(masks, 50),
        mask_p99_us=1e6 * percentile(masks, 99),
        batch_mask_p50_us=1e6 * percentile(fills, 50),
        apply_p50_us=1e6 * percentile(applies, 50),
    )


def outlines_times(model_dir: Path, schemas: Sequence[dict[str, Any]]) -> dict[str, float]:
    """The same compile and walk with outlines-core (regex from the schema, then an Index over the vocabulary),
    for the comparison in docs/structured-outputs.md; needs `outlines-core` importable (not a dependency)."""
    from outlines_core import Guide, Index, Vocabulary  # optional: the comparison only
    from outlines_core.json_schema import build_regex_from_schema

    shape = read_manifest(model_dir).model
    vocab = Vocabulary(shape.eos_token_ids[0], _token_bytes(model_dir / "tokenizer.json", set(shape.eos_token_ids)))
    width = (shape.vocab_size + 31) // 32
    logits = np.random.default_rng(0).standard_normal(shape.vocab_size).astype(np.float32)  # [V]
    compiles, masks = [], []
    for schema in schemas:
        start = time.perf_counter()
        index = Index(build_regex_from_schema(json.dumps(schema)), vocab)
        compiles.append(time.perf_counter() - start)
        guide, mask = Guide(index), np.zeros(width, np.int32)  # [W]
        for _ in range(WALK_STEPS):
            if guide.is_finished():
                break
            start = time.perf_counter()
            guide.write_mask_into(mask.ctypes.data, width, 4)
            masks.append(time.perf_counter() - start)
            row = logits.copy()
            sampler.apply_mask(row, mask)
            token = int(row.argmax())
            if token in shape.eos_token_ids:
                break
            guide.advance(token)
    return {
        "compile_p50_ms": 1e3 * percentile(compiles, 50),
        "compile_p99_ms": 1e3 * percentile(compiles, 99),
        "mask_p50_us": 1e6 * percentile(masks, 50),
        "mask_p99_us": 1e6 * percentile(masks, 99),
    }


def _token_bytes(path: Path, special: set[int]) -> dict[bytes, list[int]]:
    """tokenizer.json's byte-level BPE vocabulary as raw bytes -> ids (GPT-2's byte-to-unicode table undone)."""
    spec = json.loads(path.read_text(encoding="utf-8"))
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    extra = [b for b in range(256) if b not in printable]
    to_byte = {chr(b): b for b in printable} | {chr(256 + i): b for i, b in enumerate(extra)}
    vocab: dict[bytes, list[int]] = {}
    for token, token_id in spec["model"]["vocab"].items():
        if token_id not in special and all(c in to_byte for c in token):
            vocab.setdefault(bytes(to_byte[c] for c in token), []).append(token_id)
    return vocab


if __name__ == "__main__":
    model = Path(sys.argv[1])
    figures = msgspec.to_builtins(measure(model, int(sys.argv[2]) if len(sys.argv) > 2 else 5))
    if "--outlines-core" in sys.argv:
        figures = {"llguidance": figures, "outlines-core": outlines_times(model, SCHEMAS)}
    print(json.dumps(figures, indent=2))

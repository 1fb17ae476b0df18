"""`--quant auto`: time the validated candidates with the engine's runner, then let the pure rule choose.

The candidates are every quant level that can be built from the source (`quantize.levels_for`). Timing
comes first, short and interleaved: ROUNDS rounds, each running every candidate once in a rotated order (a
prefill of PROMPT_TOKENS held-out tokens, DECODE_STEPS greedy steps of that one stream, then DECODE_STEPS
steps of BATCH_ROWS streams together), so that another process slowing the machine slows them all alike;
figures are medians. Then the candidates are validated as an explicit `--quant` would be, best serving
score first (app/engine/selection.py), until the rest cannot win.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping

import numpy as np

from app.engine.cpu import host_cpu
from app.engine.manifest import CandidateFigures, Quant, Selection, Validation
from app.engine.runner import ModelRunner
from app.engine.selection import choose_variant, outpaced, serving_scores, workload_speeds

PROMPT_TOKENS = 128
DECODE_STEPS = 16
BATCH_ROWS = 16  # the bench's and issue 16's "16 streams"
BATCH_PROMPT_TOKENS = 16  # each further stream's prompt: the batch step's cost is the weights, not the context
ROUNDS = 3

Timed = tuple[float, float, float | None]  # prefill ms, single-stream decode tok/s, batch decode tok/s


def _decode(runner: ModelRunner, tokens: np.ndarray, lengths: np.ndarray, steps: int) -> float:
    """Seconds per greedy step of the rows `tokens` [n] at `lengths` [n] (slots 0..n-1)."""
    start = time.perf_counter()
    for _ in range(steps):
        tokens = runner.decode(tokens, lengths).argmax(axis=-1).astype(np.int64)  # [n]
        lengths = lengths + 1
    return (time.perf_counter() - start) / steps


def time_once(runner: ModelRunner, prompt: np.ndarray, steps: int, batch_rows: int) -> tuple[float, float, float]:
    """(prefill seconds for `prompt` [S] in slot 0, seconds per decode step of that stream alone, seconds per
    decode step of `batch_rows` streams: slot 0 and as many more on short prompts; 0 when batch_rows < 2)."""
    start = time.perf_counter()
    token = int(runner.prefill(0, prompt, 0).argmax())
    prefill = time.perf_counter() - start
    lone = _decode(runner, np.array([token], np.int64), np.array([len(prompt)], np.int64), steps)
    batch = 0.0
    if batch_rows > 1:
        short = prompt[:BATCH_PROMPT_TOKENS]
        tokens = [token] + [int(runner.prefill(slot, short, 0).argmax()) for slot in range(1, batch_rows)]
        lengths = np.array([len(prompt) + steps] + [len(short)] * (batch_rows - 1), np.int64)
        batch = _decode(runner, np.array(tokens, np.int64), lengths, steps)
    for slot in range(max(1, batch_rows)):
        runner.release(slot)
    return prefill, lone, batch


def time_candidates(
    runners: Mapping[Quant, ModelRunner],
    prompt: np.ndarray,
    rounds: int = ROUNDS,
    steps: int = DECODE_STEPS,
    batch_rows: int = BATCH_ROWS,
) -> dict[Quant, Timed]:
    """Quant -> (median prefill ms, median single-stream decode tokens/s, median decode tokens/s of
    `batch_rows` streams, None if a runner has fewer slots), the candidates interleaved round by round."""
    order = list(runners)
    rows = {q: min(batch_rows, r.max_slots) for q, r in runners.items()}
    for q, runner in runners.items():  # a session's first runs allocate: keep them out of the figures
        time_once(runner, prompt[:8], 2, rows[q])
    seen: dict[Quant, list[tuple[float, float, float]]] = {q: [] for q in order}
    for r in range(rounds if order else 0):
        for quant in order[r % len(order) :] + order[: r % len(order)]:
            seen[quant].append(time_once(runners[quant], prompt, steps, rows[quant]))
    return {
        q: (
            round(1000 * statistics.median(p for p, _, _ in runs), 1),
            round(1 / statistics.median(d for _, d, _ in runs), 1),
            round(rows[q] / statistics.median(b for _, _, b in runs), 1) if rows[q] > 1 else None,
        )
        for q, runs in seen.items()
    }


def scores(timed: Mapping[Quant, Timed]) -> dict[Quant, float]:
    return serving_scores({q: workload_speeds(d, b, p) for q, (p, d, b) in timed.items()})


def validate_in_score_order(
    runners: Mapping[Quant, ModelRunner],
    timed: Mapping[Quant, Timed],
    validate: Callable[[Quant, ModelRunner], Validation],
    max_ppl_increase_pct: float,
) -> dict[Quant, Validation]:
    """Validate the best score first; skip those a validated variant within the limit has outpaced (they
    cannot win: `selection.outpaced`). The choice is the same as with every candidate validated, for less time."""
    score = scores(timed)
    validations: dict[Quant, Validation] = {}
    best: float | None = None
    for quant in sorted(runners, key=lambda q: -score[q]):
        if outpaced(score[quant], best):
            continue
        validation = validations[quant] = validate(quant, runners[quant])
        if validation.passed and validation.perplexity_increase_pct <= max_ppl_increase_pct:
            best = max(best or 0.0, score[quant])
    return validations


def figures(quant: Quant, validation: Validation | None, size_bytes: int, timed: Timed) -> CandidateFigures:
    return CandidateFigures(
        quant=quant,
        passed=validation is not None and validation.passed,
        size_bytes=size_bytes,
        perplexity_increase_pct=validation.perplexity_increase_pct if validation else None,
        top1_agreement=validation.top1_agreement if validation else None,
        prefill_ms=timed[0],
        decode_tokens_per_s=timed[1],
        batch_tokens_per_s=timed[2],
        failures=validation.failures if validation else [],
        note="" if validation else "not validated: outpaced by a variant within the limit",
    )


def select(
    validations: Mapping[Quant, Validation],
    timed: Mapping[Quant, Timed],
    sizes: Mapping[Quant, int],
    prompt_tokens: int,
    threads: int,
    max_ppl_increase_pct: float,
    batch_rows: int = BATCH_ROWS,
) -> Selection:
    """Choose among the timed candidates and say why (raises NoEligibleVariant)."""
    candidates = [figures(q, validations.get(q), sizes[q], timed[q]) for q in timed]
    cpu = host_cpu()
    choice = choose_variant(cpu, candidates, max_ppl_increase_pct)
    return Selection(
        cpu=cpu,
        chosen=choice.chosen,
        rule=choice.rule,
        reason=choice.reason,
        max_ppl_increase_pct=max_ppl_increase_pct,
        threads=threads,
        prompt_tokens=prompt_tokens,
        decode_steps=DECODE_STEPS,
        batch_rows=batch_rows,
        rounds=ROUNDS,
        candidates=choice.candidates,
    )

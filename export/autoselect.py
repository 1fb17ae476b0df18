"""`--quant auto`: time the validated candidates with the engine's runner, then let the pure rule choose.

The candidates are every quant level that can be built from the source (`quantize.levels_for`), each
validated as an explicit `--quant` would be. Timing is short and interleaved: ROUNDS rounds, each running
every candidate once in a rotated order (a prefill of PROMPT_TOKENS held-out tokens, then DECODE_STEPS
greedy steps), so that another process slowing the machine slows them all alike; figures are medians.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping

import numpy as np

from app.engine.cpu import host_cpu
from app.engine.manifest import CandidateFigures, Quant, Selection, Validation
from app.engine.runner import ModelRunner
from app.engine.selection import MAX_PPL_INCREASE_PCT, choose_variant

PROMPT_TOKENS = 256
DECODE_STEPS = 16
ROUNDS = 3


def time_once(runner: ModelRunner, prompt: np.ndarray, steps: int) -> tuple[float, float]:
    """(prefill seconds for `prompt` [S], decode seconds per step over `steps` greedy steps) in slot 0."""
    start = time.perf_counter()
    token = int(runner.prefill(0, prompt, 0).argmax())
    prefilled = time.perf_counter()
    length = len(prompt)
    for _ in range(steps):
        token = int(runner.decode(np.array([token], np.int64), np.array([length], np.int64))[0].argmax())
        length += 1
    done = time.perf_counter()
    runner.release(0)
    return prefilled - start, (done - prefilled) / steps


def time_candidates(
    runners: Mapping[Quant, ModelRunner], prompt: np.ndarray, rounds: int = ROUNDS, steps: int = DECODE_STEPS
) -> dict[Quant, tuple[float, float]]:
    """Quant -> (median prefill ms, median decode tokens/s), the candidates interleaved round by round."""
    order = list(runners)
    seen: dict[Quant, list[tuple[float, float]]] = {q: [] for q in order}
    for r in range(rounds if order else 0):
        for quant in order[r % len(order) :] + order[: r % len(order)]:
            seen[quant].append(time_once(runners[quant], prompt, steps))
    return {
        q: (
            round(1000 * statistics.median(p for p, _ in runs), 1),
            round(1 / statistics.median(d for _, d in runs), 1),
        )
        for q, runs in seen.items()
    }


def figures(
    quant: Quant, validation: Validation, size_bytes: int, timed: tuple[float, float] | None
) -> CandidateFigures:
    return CandidateFigures(
        quant=quant,
        passed=validation.passed,
        perplexity_increase_pct=validation.perplexity_increase_pct,
        top1_agreement=validation.top1_agreement,
        size_bytes=size_bytes,
        prefill_ms=timed[0] if timed else None,
        decode_tokens_per_s=timed[1] if timed else None,
        failures=validation.failures,
    )


def select(
    validations: Mapping[Quant, Validation],
    runners: Mapping[Quant, ModelRunner],
    sizes: Mapping[Quant, int],
    prompt: np.ndarray,
    threads: int,
    max_ppl_increase_pct: float | None = None,
) -> Selection:
    """Time the candidates that passed, choose, and say why (raises NoEligibleVariant)."""
    limit = MAX_PPL_INCREASE_PCT if max_ppl_increase_pct is None else max_ppl_increase_pct
    timed = time_candidates({q: r for q, r in runners.items() if validations[q].passed}, prompt)
    candidates = [figures(q, v, sizes[q], timed.get(q)) for q, v in validations.items()]
    cpu = host_cpu()
    choice = choose_variant(cpu, candidates, limit)
    return Selection(
        cpu=cpu,
        chosen=choice.chosen,
        rule=choice.rule,
        reason=choice.reason,
        max_ppl_increase_pct=limit,
        threads=threads,
        prompt_tokens=len(prompt),
        decode_steps=DECODE_STEPS,
        rounds=ROUNDS,
        candidates=candidates,
    )

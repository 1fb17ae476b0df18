"""`--quant auto`: time the validated candidates with the engine's runner, then let the pure rule choose.

The candidates are every quant level that can be built from the source (`quantize.levels_for`). Timing
comes first, short and interleaved: ROUNDS rounds, each running every candidate once in a rotated order (a
prefill of PROMPT_TOKENS held-out tokens, then DECODE_STEPS greedy steps), so that another process slowing
the machine slows them all alike; figures are medians. Then the candidates are validated as an explicit
`--quant` would be, fastest first, until the rest cannot win.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping

import numpy as np

from app.engine.cpu import host_cpu
from app.engine.manifest import CandidateFigures, Quant, Selection, Validation
from app.engine.runner import ModelRunner
from app.engine.selection import choose_variant, outpaced

PROMPT_TOKENS = 128
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
    for runner in runners.values():  # a session's first runs allocate: keep them out of the figures
        time_once(runner, prompt[:8], 2)
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


def validate_in_decode_order(
    runners: Mapping[Quant, ModelRunner],
    timed: Mapping[Quant, tuple[float, float]],
    validate: Callable[[Quant, ModelRunner], Validation],
    max_ppl_increase_pct: float,
) -> dict[Quant, Validation]:
    """Validate the fastest first; skip those a validated variant within the limit has outpaced (they cannot
    win: `selection.outpaced`). The choice is the same as with every candidate validated, for less time."""
    validations: dict[Quant, Validation] = {}
    fastest: float | None = None
    for quant in sorted(runners, key=lambda q: -timed[q][1]):
        if outpaced(timed[quant][1], fastest):
            continue
        validation = validations[quant] = validate(quant, runners[quant])
        if validation.passed and validation.perplexity_increase_pct <= max_ppl_increase_pct:
            fastest = max(fastest or 0.0, timed[quant][1])
    return validations


def figures(
    quant: Quant, validation: Validation | None, size_bytes: int, timed: tuple[float, float]
) -> CandidateFigures:
    return CandidateFigures(
        quant=quant,
        passed=validation is not None and validation.passed,
        size_bytes=size_bytes,
        perplexity_increase_pct=validation.perplexity_increase_pct if validation else None,
        top1_agreement=validation.top1_agreement if validation else None,
        prefill_ms=timed[0],
        decode_tokens_per_s=timed[1],
        failures=validation.failures if validation else [],
        note="" if validation else "not validated: outpaced by a variant within the limit",
    )


def select(
    validations: Mapping[Quant, Validation],
    timed: Mapping[Quant, tuple[float, float]],
    sizes: Mapping[Quant, int],
    prompt_tokens: int,
    threads: int,
    max_ppl_increase_pct: float,
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
        rounds=ROUNDS,
        candidates=candidates,
    )

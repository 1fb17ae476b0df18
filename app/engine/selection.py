"""Which variant is the default on this machine: a pure function of the CPU and the candidates' figures.

The rule: among the variants that passed their own validation and stay within `max_ppl_increase_pct` (1%)
of PyTorch fp32's perplexity, the one with the best serving score. A candidate's score is the geometric
mean, over the three workloads a server runs and the bench's goals measure, of its speed as a fraction of
the fastest candidate's there:
- one stream decoding (tokens/s at batch 1: every weight streamed once per token),
- a batch of streams decoding together (their tokens/s: what a busy server delivers),
- a prompt's prefill (prompts/s: the time to first token).
1.0 is fastest at all three. Equal weights, so a variant 9% slower on a lone stream but twice as fast on
prompts and a third faster on batches wins (int8 activations through MLAS's QGEMM against MatMulNBits on
AVX2): docs/export.md. Scores within TIE of the best cannot be told apart on a shared machine; the ISA
breaks such a tie by what still differs between the recipes there:
- with one-instruction int8 dot products (VNNI, AMX) prompts run fast on every int8-activation recipe,
  so the smaller variant wins (fewer bytes per token under load, less memory);
- without them (AVX2) int8-activation kernels emulate the dot product and prompts are where recipes
  differ most, so the faster prefill wins.
Then the lower perplexity.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import msgspec

from app.engine.cpu import CpuFeatures, Isa
from app.engine.manifest import CandidateFigures, Quant

AUTO = "auto"  # `llm-gateway export --quant auto`: build every level, keep the one this rule chooses
MAX_PPL_INCREASE_PCT = 1.0
TIE = 0.03  # scores within 3% of the best are a tie

# (lone decode tok/s, batch decode tok/s, prefill prompts/s); None where a workload was not measured
Speeds = tuple[float | None, float | None, float | None]


class NoEligibleVariant(ValueError):
    """No candidate passed its validation within the perplexity limit; the message lists them all."""


@dataclass(frozen=True, slots=True)
class Choice:
    chosen: Quant
    rule: str
    reason: str
    candidates: list[CandidateFigures]  # as given, with their scores


def rule_text(isa: Isa, max_ppl_increase_pct: float) -> str:
    tiebreak = "the smaller variant" if isa.int8_dot else "the faster prefill"
    return (
        f"best serving score among the variants that passed validation within {max_ppl_increase_pct:g}% "
        "perplexity of PyTorch fp32: the geometric mean of each variant's speed as a fraction of the fastest's "
        f"at single-stream decode, batched decode and prefill; scores within {TIE:.0%} of the best are a tie, "
        f"broken on {isa} by {tiebreak}, then by the lower perplexity"
    )


def _tiebreak(isa: Isa) -> Callable[[CandidateFigures], tuple[float, float]]:
    def key(c: CandidateFigures) -> tuple[float, float]:
        first = float(c.size_bytes) if isa.int8_dot else (c.prefill_ms or float("inf"))
        return first, c.perplexity_increase_pct or 0.0

    return key


def workload_speeds(
    decode_tokens_per_s: float | None, batch_tokens_per_s: float | None, prefill_ms: float | None
) -> Speeds:
    return decode_tokens_per_s, batch_tokens_per_s, 1000.0 / prefill_ms if prefill_ms else None


def speeds(c: CandidateFigures) -> Speeds:
    return workload_speeds(c.decode_tokens_per_s, c.batch_tokens_per_s, c.prefill_ms)


def serving_scores(measured: Mapping[Quant, Speeds]) -> dict[Quant, float]:
    """Quant -> geometric mean of its speed / the fastest's, over the workloads every candidate with a
    single-stream figure was measured on (the others score 0: untimed); rounded to 3 places, as the manifest
    records them, so that validation order and choice compare the same figures."""
    scores = dict.fromkeys(measured, 0.0)
    timed = {q: s for q, s in measured.items() if s[0]}
    if not timed:
        return scores
    columns = [i for i in range(3) if all(s[i] for s in timed.values())]  # column 0 always
    best = {i: max(s[i] or 0.0 for s in timed.values()) for i in columns}
    for q, s in timed.items():
        scores[q] = round(math.prod((s[i] or 0.0) / best[i] for i in columns) ** (1 / len(columns)), 3)
    return scores


def with_scores(candidates: Sequence[CandidateFigures]) -> list[CandidateFigures]:
    """The candidates with `score` filled in."""
    scores = serving_scores({c.quant: speeds(c) for c in candidates})
    return [msgspec.structs.replace(c, score=scores[c.quant] if c.decode_tokens_per_s else None) for c in candidates]


def describe(c: CandidateFigures) -> str:
    ppl = f"{c.perplexity_increase_pct:+.2f}% perplexity" if c.perplexity_increase_pct is not None else "not validated"
    speed = f"{c.decode_tokens_per_s:.1f} tok/s" if c.decode_tokens_per_s is not None else "not timed"
    batch = f", batch {c.batch_tokens_per_s:.1f} tok/s" if c.batch_tokens_per_s is not None else ""
    prefill = f", prefill {c.prefill_ms:.0f} ms" if c.prefill_ms is not None else ""
    score = f", score {c.score:.3f}" if c.score is not None else ""
    return f"{c.quant} ({ppl}, {speed}{batch}{prefill}{score})"


def eligible(c: CandidateFigures, max_ppl_increase_pct: float) -> bool:
    ppl = c.perplexity_increase_pct
    return c.passed and ppl is not None and ppl <= max_ppl_increase_pct and c.decode_tokens_per_s is not None


def outpaced(score: float, eligible_best: float | None) -> bool:
    """Whether a candidate scoring this can no longer win (more than TIE below one already within the
    limit), so that validating it would change nothing: `--quant auto` validates in score order and stops."""
    return eligible_best is not None and score < eligible_best * (1 - TIE)


def choose_variant(
    cpu: CpuFeatures, candidates: Sequence[CandidateFigures], max_ppl_increase_pct: float = MAX_PPL_INCREASE_PCT
) -> Choice:
    """The default variant among `candidates`, and why; raises NoEligibleVariant when none qualifies."""
    candidates = with_scores(candidates)
    within = [c for c in candidates if eligible(c, max_ppl_increase_pct)]
    if not within:
        listed = "; ".join(describe(c) + ("" if c.passed else " failed validation") for c in candidates)
        raise NoEligibleVariant(
            f"no variant passed validation within {max_ppl_increase_pct:g}% perplexity of PyTorch: {listed}"
        )
    best = max(c.score or 0.0 for c in within)
    tied = [c for c in within if not outpaced(c.score or 0.0, best)]
    winner = min(tied, key=_tiebreak(cpu.isa))
    others = [c for c in candidates if c.quant is not winner.quant]
    reason = f"{describe(winner)} on {cpu.model} ({cpu.isa})"
    if len(tied) > 1:
        basis = "smaller" if cpu.isa.int8_dot else "faster prefill"
        reason += f"; tied on score with {', '.join(str(c.quant) for c in tied if c is not winner)}, {basis}"
    lower = [describe(c) for c in sorted(within, key=lambda c: -(c.score or 0.0)) if c not in tied]
    if lower:
        reason += f"; lower scores within the limit: {', '.join(lower)}"
    excluded = [describe(c) for c in others if c not in within and c.perplexity_increase_pct is not None]
    if excluded:
        reason += f"; over the limit or failed: {', '.join(excluded)}"
    unvalidated = [describe(c) for c in others if c.perplexity_increase_pct is None]
    if unvalidated:
        reason += f"; not validated (lower score than {winner.quant}): {', '.join(unvalidated)}"
    return Choice(winner.quant, rule_text(cpu.isa, max_ppl_increase_pct), reason, candidates)


def chosen_elsewhere(chosen_on: CpuFeatures, serving: CpuFeatures) -> str | None:
    """A warning when a folder's variant was chosen on another ISA than the one serving it, else None."""
    if chosen_on.isa == serving.isa:
        return None
    return (
        f"this model folder's variant was chosen on {chosen_on.model} ({chosen_on.isa}); this machine is "
        f"{serving.model} ({serving.isa}), where another variant may be faster: re-run `llm-gateway export` "
        "here to choose again"
    )

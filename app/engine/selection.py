"""Which variant is the default on this machine: a pure function of the CPU and the candidates' figures.

The rule: the fastest single-stream decode among the variants that passed their own validation and stay
within `max_ppl_increase_pct` (1%) of PyTorch fp32's perplexity. Decode at batch 1 streams every weight
once per token, so on every ISA it is bytes per weight that decide it, and only a measurement says by how
much. Figures within TIE of the fastest cannot be told apart on a shared machine; the ISA breaks such a
tie by what still differs between the recipes there:
- with one-instruction int8 dot products (VNNI, AMX) prompts run fast on every int8-activation recipe,
  so the smaller variant wins (fewer bytes per token under load, less memory);
- without them (AVX2) int8-activation kernels emulate the dot product and prompts are where recipes
  differ most, so the faster prefill wins.
Then the lower perplexity.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from app.engine.cpu import CpuFeatures, Isa
from app.engine.manifest import CandidateFigures, Quant

AUTO = "auto"  # `llm-gateway export --quant auto`: build every level, keep the one this rule chooses
MAX_PPL_INCREASE_PCT = 1.0
TIE = 0.03  # decode figures within 3% of the fastest are a tie


class NoEligibleVariant(ValueError):
    """No candidate passed its validation within the perplexity limit; the message lists them all."""


@dataclass(frozen=True, slots=True)
class Choice:
    chosen: Quant
    rule: str
    reason: str


def rule_text(isa: Isa, max_ppl_increase_pct: float) -> str:
    tiebreak = "the smaller variant" if isa.int8_dot else "the faster prefill"
    return (
        f"fastest single-stream decode among the variants that passed validation within "
        f"{max_ppl_increase_pct:g}% perplexity of PyTorch fp32; decode figures within {TIE:.0%} of the fastest "
        f"are a tie, broken on {isa} by {tiebreak}, then by the lower perplexity"
    )


def _tiebreak(isa: Isa) -> Callable[[CandidateFigures], tuple[float, float]]:
    def key(c: CandidateFigures) -> tuple[float, float]:
        first = float(c.size_bytes) if isa.int8_dot else (c.prefill_ms or float("inf"))
        return first, c.perplexity_increase_pct or 0.0

    return key


def describe(c: CandidateFigures) -> str:
    ppl = f"{c.perplexity_increase_pct:+.2f}% perplexity" if c.perplexity_increase_pct is not None else "not validated"
    speed = f"{c.decode_tokens_per_s:.1f} tok/s" if c.decode_tokens_per_s is not None else "not timed"
    prefill = f", prefill {c.prefill_ms:.0f} ms" if c.prefill_ms is not None else ""
    return f"{c.quant} ({ppl}, {speed}{prefill})"


def eligible(c: CandidateFigures, max_ppl_increase_pct: float) -> bool:
    ppl = c.perplexity_increase_pct
    return c.passed and ppl is not None and ppl <= max_ppl_increase_pct and c.decode_tokens_per_s is not None


def outpaced(decode_tokens_per_s: float, eligible_fastest: float | None) -> bool:
    """Whether a candidate this fast can no longer win (more than TIE slower than one already within the
    limit), so that validating it would change nothing: `--quant auto` validates in decode order and stops."""
    return eligible_fastest is not None and decode_tokens_per_s < eligible_fastest * (1 - TIE)


def choose_variant(
    cpu: CpuFeatures, candidates: Sequence[CandidateFigures], max_ppl_increase_pct: float = MAX_PPL_INCREASE_PCT
) -> Choice:
    """The default variant among `candidates`, and why; raises NoEligibleVariant when none qualifies."""
    within = [c for c in candidates if eligible(c, max_ppl_increase_pct)]
    if not within:
        listed = "; ".join(describe(c) + ("" if c.passed else " failed validation") for c in candidates)
        raise NoEligibleVariant(
            f"no variant passed validation within {max_ppl_increase_pct:g}% perplexity of PyTorch: {listed}"
        )
    fastest = max(c.decode_tokens_per_s or 0.0 for c in within)
    tied = [c for c in within if not outpaced(c.decode_tokens_per_s or 0.0, fastest)]
    winner = min(tied, key=_tiebreak(cpu.isa))
    others = [c for c in candidates if c is not winner]
    reason = f"{describe(winner)} on {cpu.model} ({cpu.isa})"
    if len(tied) > 1:
        basis = "smaller" if cpu.isa.int8_dot else "faster prefill"
        reason += f"; tied on decode with {', '.join(str(c.quant) for c in tied if c is not winner)}, {basis}"
    slower = [describe(c) for c in within if c not in tied]
    if slower:
        reason += f"; slower within the limit: {', '.join(slower)}"
    excluded = [describe(c) for c in others if c not in within and c.perplexity_increase_pct is not None]
    if excluded:
        reason += f"; over the limit or failed: {', '.join(excluded)}"
    unvalidated = [describe(c) for c in others if c.perplexity_increase_pct is None]
    if unvalidated:
        reason += f"; not validated (slower than {winner.quant}): {', '.join(unvalidated)}"
    return Choice(winner.quant, rule_text(cpu.isa, max_ppl_increase_pct), reason)


def chosen_elsewhere(chosen_on: CpuFeatures, serving: CpuFeatures) -> str | None:
    """A warning when a folder's variant was chosen on another ISA than the one serving it, else None."""
    if chosen_on.isa == serving.isa:
        return None
    return (
        f"this model folder's variant was chosen on {chosen_on.model} ({chosen_on.isa}); this machine is "
        f"{serving.model} ({serving.isa}), where another variant may be faster: re-run `llm-gateway export` "
        "here to choose again"
    )

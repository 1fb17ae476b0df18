"""The default-variant rule on fake CPUs and fake figures; the ISA classes; the interleaved timing loop."""

from __future__ import annotations

import numpy as np
import pytest

from app.engine.cpu import Isa, cpu_features, isa_class
from app.engine.manifest import CandidateFigures, GreedyCheck, Quant, Thresholds, Validation
from app.engine.selection import NoEligibleVariant, choose_variant, chosen_elsewhere
from export.autoselect import select, time_candidates, validate_in_score_order
from tests.unit.fakes import FakeRunner


def cpuinfo(model: str, flags: str) -> str:
    return f"processor\t: 0\nmodel name\t: {model}\nflags\t\t: fpu sse2 {flags}\n\nprocessor\t: 1\nflags\t\t: fpu\n"


ZEN3 = cpu_features(cpuinfo("AMD EPYC 7763 64-Core Processor", "avx avx2 fma f16c"))
ZEN4 = cpu_features(
    cpuinfo("AMD EPYC 9654 96-Core Processor", "avx2 fma f16c avx512f avx512bw avx512vl avx512_vnni avx512_bf16")
)
SAPPHIRE_RAPIDS = cpu_features(
    cpuinfo(
        "Intel(R) Xeon(R) Platinum 8480+",
        "avx2 fma f16c avx512f avx512bw avx512vl avx512_vnni avx512_bf16 avx_vnni amx_bf16 amx_tile amx_int8",
    )
)


def cand(
    quant: Quant,
    ppl: float,
    tps: float | None,
    prefill: float = 500.0,
    size: int = 100,
    passed: bool = True,
    batch: float | None = None,
):
    return CandidateFigures(
        quant=quant, passed=passed, perplexity_increase_pct=ppl, top1_agreement=0.9, size_bytes=size,
        decode_tokens_per_s=tps, prefill_ms=prefill if tps is not None else None,
        batch_tokens_per_s=batch if tps is not None else None,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("cpu", "isa", "flags"),
    [
        (ZEN3, Isa.AVX2, ["avx2", "fma", "f16c"]),
        (ZEN4, Isa.AVX512_VNNI, ["avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
                                 "avx512_bf16"]),
        (SAPPHIRE_RAPIDS, Isa.AMX, ["avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
                                    "avx512_bf16", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16"]),
    ],
)  # fmt: skip
def test_cpu_features_from_proc_cpuinfo(cpu, isa, flags):
    assert cpu.isa is isa and cpu.flags == flags
    assert cpu.model.startswith(("AMD EPYC", "Intel(R) Xeon(R)"))


def test_isa_classes_and_which_have_int8_dot_products():
    assert isa_class([]) is Isa.BASELINE and isa_class(["avx2"]) is Isa.BASELINE  # AVX2 kernels need FMA too
    assert isa_class(["avx2", "fma", "avx_vnni"]) is Isa.AVX_VNNI  # Alder Lake: VNNI without AVX-512
    assert isa_class(["avx2", "fma", "avx512f", "avx512bw", "avx512vl"]) is Isa.AVX512  # Skylake-SP
    assert isa_class(["avx512f", "avx512_vnni"]) is Isa.BASELINE  # no BW/VL (Knights Landing-like), no AVX2
    assert [i for i in Isa if i.int8_dot] == [Isa.AVX_VNNI, Isa.AVX512_VNNI, Isa.AMX]
    assert cpu_features("").isa is Isa.BASELINE and cpu_features("").model  # off Linux: platform's name


def test_zen4_figures_keep_int8_over_the_faster_lossy_int4():
    # docs/export.md, Zen 4: int8 +0.59% 148 tok/s, int4 +21.8% 178 tok/s, fp32 52 tok/s
    figures = [cand(Quant.FP32, 0.0, 52.0), cand(Quant.INT8, 0.59, 148.0), cand(Quant.INT4, 21.8, 178.0)]
    choice = choose_variant(ZEN4, figures)
    assert choice.chosen is Quant.INT8
    assert "148.0 tok/s" in choice.reason and "AMD EPYC 9654" in choice.reason and "avx512_vnni" in choice.reason
    assert "over the limit or failed: int4 (+21.80% perplexity, 178.0 tok/s" in choice.reason
    assert "lower scores within the limit: fp32" in choice.reason
    assert "1% perplexity" in choice.rule and "smaller variant" in choice.rule
    assert {c.quant: c.score for c in choice.candidates} == {Quant.FP32: 0.54, Quant.INT8: 0.912, Quant.INT4: 1.0}


def test_the_score_weighs_a_lone_stream_a_batch_and_a_prompt_alike():
    # this project's AVX2 EPYC (Zen 3), the engine's runner, 2026-12-08: w8a8 (QGEMM) gives back 8% of a lone
    # stream to prefill 1.9x faster and decode 16 streams 1.32x faster than int8 (MatMulNBits)
    zen3 = [
        cand(Quant.FP32, 0.0, 46.5, prefill=978.0, batch=305.0, size=540),
        cand(Quant.INT8, 0.13, 101.0, prefill=1492.0, batch=290.0, size=186),
        cand(Quant.W8A8, 0.81, 93.0, prefill=793.0, batch=383.0, size=178),
    ]
    choice = choose_variant(ZEN3, zen3)
    assert choice.chosen is Quant.W8A8
    scores = {c.quant: c.score for c in choice.candidates}
    assert scores[Quant.W8A8] == 0.973 and scores[Quant.INT8] == 0.738 and scores[Quant.FP32] == 0.667
    assert "batch 383.0 tok/s, prefill 793 ms, score 0.973" in choice.reason
    assert "lower scores within the limit: int8" in choice.reason
    # equal weights: with a lone stream at 0.3x int8's the same prompts and batches no longer pay
    slow = [cand(Quant.INT8, 0.13, 101.0, 1492.0, batch=290.0), cand(Quant.W8A8, 0.81, 30.0, 793.0, batch=383.0)]
    assert choose_variant(ZEN3, slow).chosen is Quant.INT8
    # over the limit it never wins, whatever its speed
    assert choose_variant(ZEN3, zen3, max_ppl_increase_pct=0.5).chosen is Quant.INT8
    # folders from before the batch figure: every candidate lacks it, so the score leaves it out
    old = [cand(Quant.INT8, 0.13, 101.0, 1492.0), cand(Quant.W8A8, 0.81, 93.0, 793.0)]
    assert choose_variant(ZEN3, old).chosen is Quant.W8A8
    assert {c.quant: c.score for c in choose_variant(ZEN3, old).candidates}[Quant.INT8] == round(
        (1492.0 / 793.0) ** -0.5, 3
    )


def test_zen3_figures_and_a_stricter_limit():
    figures = [cand(Quant.FP32, 0.0, 25.0), cand(Quant.INT8, 0.05, 64.0), cand(Quant.INT4, 21.8, 75.0)]
    assert choose_variant(ZEN3, figures).chosen is Quant.INT8
    assert "faster prefill" in choose_variant(ZEN3, figures).rule
    assert choose_variant(ZEN3, figures, max_ppl_increase_pct=0.01).chosen is Quant.FP32
    assert choose_variant(ZEN3, figures, max_ppl_increase_pct=25).chosen is Quant.INT4


def test_a_fast_level_within_the_limit_wins_with_no_special_case():
    # an exact 4-bit encoding of the source's blocks would look like this: ~0% loss, fewest bytes, fastest
    figures = [cand(Quant.FP32, 0.0, 40.0), cand(Quant.INT8, 0.6, 120.0), cand(Quant.INT4, -0.1, 160.0)]
    for cpu in (ZEN3, ZEN4, SAPPHIRE_RAPIDS):
        assert choose_variant(cpu, figures).chosen is Quant.INT4


def test_a_failed_validation_or_an_untimed_candidate_never_wins():
    figures = [cand(Quant.INT8, 0.5, 60.0), cand(Quant.INT4, 0.2, 90.0, passed=False), cand(Quant.FP32, 0.0, None)]
    choice = choose_variant(SAPPHIRE_RAPIDS, figures)
    assert choice.chosen is Quant.INT8 and "int4 (+0.20% perplexity, 90.0 tok/s" in choice.reason


def test_a_score_tie_is_broken_by_what_the_isa_makes_differ():
    # equal scores (the geometric mean of decode, batch and prefill speed ratios), different trades
    figures = [
        cand(Quant.INT8, 0.6, 100.0, prefill=1000.0, batch=400.0, size=190),
        cand(Quant.INT4, 0.4, 100.0, prefill=800.0, batch=320.0, size=140),
        cand(Quant.FP32, 0.0, 99.0, prefill=790.0, batch=320.0, size=540),
    ]
    avx2 = choose_variant(ZEN3, figures)  # int8 activations emulate the dot product: the faster prompt wins
    assert avx2.chosen is Quant.FP32 and "tied on score with int8, int4, faster prefill" in avx2.reason
    amx = choose_variant(SAPPHIRE_RAPIDS, figures)  # every int8 kernel is fast here: the fewer bytes win
    assert amx.chosen is Quant.INT4 and "smaller" in amx.reason
    apart = [cand(Quant.INT8, 0.6, 100.0, prefill=1000.0), cand(Quant.FP32, 0.0, 80.0, prefill=950.0)]
    assert choose_variant(ZEN3, apart).chosen is Quant.INT8  # 8% apart: the score decides


def test_nothing_within_the_limit_is_an_error_that_lists_every_candidate():
    figures = [cand(Quant.INT8, 3.0, 60.0), cand(Quant.FP32, 0.0, None, passed=False)]
    with pytest.raises(NoEligibleVariant) as caught:
        choose_variant(ZEN3, figures)
    message = str(caught.value)
    assert "within 1% perplexity" in message and "int8 (+3.00%" in message and "fp32" in message
    assert "failed validation" in message


def test_a_folder_chosen_on_another_isa_is_flagged():
    assert chosen_elsewhere(ZEN3, ZEN3) is None
    warning = chosen_elsewhere(ZEN4, ZEN3)
    assert warning and "AMD EPYC 9654" in warning and "(avx512_vnni)" in warning and "(avx2)" in warning
    assert "llm-gateway export" in warning


class LoggedRunner(FakeRunner):
    def __init__(self, name: str, log: list[str]) -> None:
        super().__init__(max_slots=1)
        self.name, self.log = name, log

    def prefill(self, slot, token_ids, start):
        self.log.append(self.name)
        return super().prefill(slot, token_ids, start)


def test_timing_interleaves_the_candidates_and_leaves_their_slots_empty():
    order: list[str] = []
    runners = {q: LoggedRunner(str(q), order) for q in (Quant.FP32, Quant.INT8, Quant.INT4)}
    prompt = np.arange(1, 9, dtype=np.int64)  # [8]
    timed = time_candidates(runners, prompt, rounds=3, steps=4)
    assert order[:3] == ["fp32", "int8", "int4"]  # one untimed warm-up each
    assert order[3:] == ["fp32", "int8", "int4", "int8", "int4", "fp32", "int4", "fp32", "int8"]  # rotated
    assert set(timed) == set(runners)
    for runner in runners.values():
        assert [c[0] for c in runner.calls].count("prefill") == 4 and runner.slots[0] == []
        assert ("decode", 1) in runner.calls
    for prefill_ms, decode_tps, batch_tps in timed.values():
        assert prefill_ms >= 0 and decode_tps > 0 and batch_tps is None  # one slot: no batch to time
    assert time_candidates({}, prompt) == {}


def test_timing_decodes_a_batch_where_the_runner_has_the_slots():
    runner = FakeRunner(max_slots=4)
    prompt = np.arange(1, 41, dtype=np.int64)  # [40]
    ((prefill_ms, decode_tps, batch_tps),) = time_candidates({Quant.INT8: runner}, prompt, rounds=2, steps=3).values()
    assert prefill_ms >= 0 and decode_tps > 0 and batch_tps > 0
    prefills = [c for c in runner.calls if c[0] == "prefill"]
    # per round: the prompt in slot 0, then slots 1-3 on its first 16 tokens (the warm-up: on its first 8)
    assert [(c[1], c[3]) for c in prefills[4:8]] == [(0, 40), (1, 16), (2, 16), (3, 16)]
    assert runner.calls.count(("decode", 4)) == 2 + 2 * 3 and runner.calls.count(("decode", 1)) == 2 + 2 * 3
    assert all(slot == [] for slot in runner.slots)


def validation(ppl: float, passed: bool = True) -> Validation:
    return Validation(
        passed=passed,
        thresholds=Thresholds(max_ppl_increase_pct=35, min_top1_agreement=0.6, require_greedy_match=False),
        heldout_tokens=807, perplexity_torch=21.8, perplexity_onnx=21.8 * (1 + ppl / 100), perplexity_increase_pct=ppl,
        top1_agreement=0.9, greedy=GreedyCheck(prompts=4, new_tokens=32, exact_prompts=0, tie_divergences=0,
                                               matched_tokens=0, total_tokens=128),
        failures=[] if passed else ["top-1 agreement with PyTorch 0.3 is below 0.6"],
    )  # fmt: skip


@pytest.mark.parametrize(
    ("timed", "validated"),
    [
        # Zen 4-like figures: int8 scores best (0.940), int4 within 3% of it (0.939) but over the limit,
        # fp32 far lower (0.510): never validated
        (
            {Quant.FP32: (600.0, 52.0, 300.0), Quant.INT8: (620.0, 148.0, 660.0), Quant.INT4: (680.0, 178.0, 600.0)},
            ["int8", "int4"],
        ),
        # fp32 within 3% of int8's score (0.924) could still win the tie: it is validated too (and loses it
        # on every ISA: slower prefill, more bytes)
        (
            {Quant.FP32: (640.0, 145.0, 660.0), Quant.INT8: (620.0, 148.0, 660.0), Quant.INT4: (680.0, 178.0, 600.0)},
            ["int8", "int4", "fp32"],
        ),
    ],
)
def test_validation_runs_best_score_first_and_stops_where_the_rest_cannot_win(timed, validated):
    ppl = {Quant.FP32: 0.0, Quant.INT8: 0.59, Quant.INT4: 21.8}
    seen: list[str] = []

    def check(quant, runner):
        seen.append(str(quant))
        return validation(ppl[quant])

    runners = {q: FakeRunner(max_slots=1) for q in timed}
    validations = validate_in_score_order(runners, timed, check, 1.0)
    assert seen == validated and list(validations) == validated
    sizes = {Quant.FP32: 544, Quant.INT8: 194, Quant.INT4: 140}
    sel = select(validations, timed, sizes, prompt_tokens=128, threads=2, max_ppl_increase_pct=1.0)
    assert sel.chosen is Quant.INT8 and sel.max_ppl_increase_pct == 1.0 and sel.prompt_tokens == 128
    by_quant = {c.quant: c for c in sel.candidates}
    assert by_quant[Quant.INT4].perplexity_increase_pct == 21.8 and by_quant[Quant.INT4].decode_tokens_per_s == 178.0
    assert by_quant[Quant.INT8].batch_tokens_per_s == 660.0 and sel.batch_rows == 16
    if "fp32" not in validated:
        assert by_quant[Quant.FP32].perplexity_increase_pct is None and by_quant[Quant.FP32].note
        assert "not validated (lower score than int8): fp32 (not validated, 52.0 tok/s, batch 300.0 tok/s" in sel.reason
    # validating every candidate would have chosen the same
    every = {q: validation(ppl[q]) for q in timed}
    assert select(every, timed, sizes, 128, 2, 1.0).chosen is sel.chosen

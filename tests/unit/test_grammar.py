"""Masking, logit bias and the llguidance matcher on fixed arrays and the real tokenizer."""

from __future__ import annotations

import json

import numpy as np
import pytest

from app.engine import sampler
from app.engine.errors import InvalidParams
from app.engine.grammar import GrammarCompiler, MaskFiller, advance
from app.engine.params import Grammar, GrammarKind, SamplingParams
from tests.unit.fakes import VOCAB, fake_grammars


def bitmask(allowed: list[int], vocab: int) -> np.ndarray:
    words = np.zeros((vocab + 31) // 32, np.uint32)
    for t in allowed:
        words[t // 32] |= np.uint32(1 << (t % 32))
    return words.view(np.int32)


def test_allowed_tokens_reads_little_endian_bits():
    mask = bitmask([0, 5, 31, 32, 69], 70)
    assert np.nonzero(sampler.allowed_tokens(mask, 70))[0].tolist() == [0, 5, 31, 32, 69]


def test_apply_mask_leaves_only_allowed_tokens_finite():
    logits = np.arange(40, dtype=np.float32)  # [V]
    sampler.apply_mask(logits, bitmask([3, 33], 40))
    assert np.isfinite(logits).nonzero()[0].tolist() == [3, 33]
    assert logits[3] == 3.0 and logits[33] == 33.0
    assert int(logits.argmax()) == 33


@pytest.mark.parametrize("rows", [[0, 1, 2], [1, 2], [0, 2], [3]])
def test_apply_masks_on_a_batch_equals_one_row_at_a_time_and_leaves_other_rows_alone(rows):
    vocab = 70
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((4, vocab)).astype(np.float32)  # [n, V]
    masks = np.stack([bitmask(sorted(rng.choice(vocab, 9, replace=False).tolist()), vocab) for _ in rows])  # [k, W]
    expected = logits.copy()
    for row, mask in zip(rows, masks, strict=True):
        sampler.apply_mask(expected[row], mask)
    batched = logits.copy()
    sampler.apply_masks(batched, np.asarray(rows), masks)
    np.testing.assert_array_equal(batched, expected)
    untouched = [r for r in range(4) if r not in rows]
    np.testing.assert_array_equal(batched[untouched], logits[untouched])
    assert all(np.isfinite(batched[r]).sum() == 9 for r in rows)


def test_logit_bias_bans_and_forces():
    logits = np.array([1.0, 5.0, 2.0, 0.5], np.float32)
    sampler.apply_logit_bias(logits, ((1, -100.0), (3, 100.0)))
    assert logits.tolist() == pytest.approx([1.0, -95.0, 2.0, 100.5])
    assert int(logits.argmax()) == 3


def test_sampling_params_check_bias_range_and_ids():
    with pytest.raises(InvalidParams, match="between -100 and 100") as err:
        SamplingParams(logit_bias=((1, 101.0),)).validate(10)
    assert err.value.field == "logit_bias"
    with pytest.raises(InvalidParams, match=r"\[0, 10\)"):
        SamplingParams(logit_bias=((10, 1.0),)).validate(10)
    assert not SamplingParams().shaped and SamplingParams(logit_bias=((1, 1.0),)).shaped


@pytest.fixture(scope="module")
def compiler(real_models) -> GrammarCompiler:
    return GrammarCompiler.from_tokenizer_json(real_models.default / "tokenizer.json", 49152, (2,))


def walk(compiler: GrammarCompiler, grammar: Grammar, steps: int = 40) -> str:
    """Greedy over a fake model that prefers the lowest token id: whatever the mask lets through."""
    matcher = compiler.matcher(grammar)
    filler = MaskFiller(compiler.vocab_size, threads=1)
    ids = []
    for _ in range(steps):
        logits = -np.arange(compiler.vocab_size, dtype=np.float32)  # [V]
        sampler.apply_mask(logits, filler.fill([matcher])[0])
        token = int(logits.argmax())
        if token == 2:
            assert matcher.is_accepting()
            break
        assert advance(matcher, token) is None
        ids.append(token)
    return compiler.tokenizer.decode_str(ids)


def test_json_schema_mask_gives_valid_json(compiler):
    schema = {
        "type": "object",
        "properties": {"n": {"type": "integer"}},
        "required": ["n"],
        "additionalProperties": False,
    }
    text = walk(compiler, Grammar(GrammarKind.JSON_SCHEMA, json.dumps(schema)))
    assert isinstance(json.loads(text)["n"], int)


def test_regex_mask_and_eos_only_when_accepting(compiler):
    assert walk(compiler, Grammar(GrammarKind.REGEX, "ab{3}c")) == "abbbc"


def test_refused_token_is_an_error_not_an_exception(compiler):
    matcher = compiler.matcher(Grammar(GrammarKind.REGEX, "a+"))
    error = advance(matcher, compiler.tokenizer.tokenize_str("zzz")[0])
    assert error is not None and "grammar" in error


def test_compile_errors_name_the_field(compiler):
    with pytest.raises(InvalidParams, match="foo") as err:
        compiler.compile(Grammar(GrammarKind.JSON_SCHEMA, '{"type": "foo"}', "response_format.json_schema.schema"))
    assert err.value.field == "response_format.json_schema.schema"
    with pytest.raises(InvalidParams, match="unclosed group"):
        compiler.compile(Grammar(GrammarKind.REGEX, "a(b", "regex"))


def test_masks_for_several_matchers_in_one_call(compiler):
    a = compiler.matcher(Grammar(GrammarKind.REGEX, "x"))
    b = compiler.matcher(Grammar(GrammarKind.REGEX, "[0-9]"))
    masks = MaskFiller(compiler.vocab_size).fill([a, b])  # [2, W]
    decode = compiler.tokenizer.decode_str
    row_a = {decode([int(t)]) for t in np.nonzero(sampler.allowed_tokens(masks[0], compiler.vocab_size))[0]}
    row_b = {decode([int(t)]) for t in np.nonzero(sampler.allowed_tokens(masks[1], compiler.vocab_size))[0]}
    assert row_a == {"x"} and row_b == {str(d) for d in range(10)}


def test_masks_filled_in_the_background_equal_the_direct_fill(compiler):
    grammars = [Grammar(GrammarKind.REGEX, "x"), Grammar(GrammarKind.REGEX, "[0-9]+")]
    direct = MaskFiller(compiler.vocab_size).fill([compiler.matcher(g) for g in grammars]).copy()
    step = MaskFiller(compiler.vocab_size).start([1, 3], [compiler.matcher(g) for g in grammars]).result()
    assert step.rows.tolist() == [1, 3] and step.seconds >= 0
    np.testing.assert_array_equal(step.masks, direct)


def test_the_llguidance_tokenizer_is_built_on_the_first_grammar_only():
    built = []

    def make():
        built.append(1)
        return fake_grammars().tokenizer

    compiler = GrammarCompiler(make, VOCAB)
    assert built == [] and compiler.vocab_size == VOCAB  # loading a model costs no grammar memory
    compiler.compile(Grammar(GrammarKind.REGEX, "[dg]{5}"))
    compiler.compile(Grammar(GrammarKind.REGEX, "d+"))
    assert built == [1]

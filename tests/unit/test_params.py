"""The wire schema and SamplingParams read one table of limits: at every bound they accept the same values."""

from __future__ import annotations

import msgspec
import pytest

from app.engine.errors import InvalidParams
from app.engine.params import LIMITS, MAX_SEED, SamplingParams
from app.schemas import GenerateRequest

WIRE_FIELDS = {f.name for f in msgspec.structs.fields(GenerateRequest)}


def _edges(name: str) -> list[float]:
    limit = LIMITS[name]
    integer = name in {"max_new_tokens", "min_new_tokens", "top_k", "seed", "top_logprobs"}
    step = 1 if integer else 1e-6
    values = []
    for bound in (limit.ge, limit.gt, limit.le):
        if bound is not None:
            values += [bound - step, bound, bound + step]
    return [int(v) if integer else v for v in values]


def _wire_accepts(name: str, value: float) -> bool:
    try:
        msgspec.convert({"prompt": "x", name: value}, GenerateRequest)
    except msgspec.ValidationError:
        return False
    return True


def _engine_accepts(name: str, value: float) -> bool:
    try:
        SamplingParams(**{"max_new_tokens": 100, name: value}).validate(vocab_size=100)  # type: ignore[arg-type]
    except InvalidParams as exc:
        assert exc.field == name
        return False
    return True


@pytest.mark.parametrize("name", sorted(set(LIMITS) & WIRE_FIELDS))
def test_wire_and_engine_agree_at_every_bound(name):
    for value in _edges(name):
        assert _wire_accepts(name, value) == _engine_accepts(name, value), (name, value)


def test_seed_is_a_signed_64_bit_integer_on_both_sides():
    assert _wire_accepts("seed", MAX_SEED) and _engine_accepts("seed", MAX_SEED)
    assert not _wire_accepts("seed", MAX_SEED + 1) and not _engine_accepts("seed", MAX_SEED + 1)

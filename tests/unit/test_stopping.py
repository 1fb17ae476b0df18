"""Stopping: token-level criteria and stop strings, on fixed inputs (TGI-style tables)."""

import pytest

from app.engine.params import SamplingParams
from app.engine.stopping import FinishReason, StoppingCriteria, find_stop, holdback


def test_eos_stop_ids_and_length():
    criteria = StoppingCriteria(SamplingParams(max_new_tokens=3, stop_token_ids=(7,)), eos_token_ids=[2])
    assert criteria(5, 1) is None
    assert criteria(2, 1) is FinishReason.STOP
    assert criteria(7, 2) is FinishReason.STOP
    assert criteria(5, 3) is FinishReason.LENGTH


def test_ignore_eos_and_min_new_tokens():
    assert StoppingCriteria(SamplingParams(ignore_eos=True), [2])(2, 1) is None
    criteria = StoppingCriteria(SamplingParams(min_new_tokens=2), [2])
    assert criteria.suppressed(0) == {2}
    assert criteria.suppressed(1) == {2}
    assert criteria.suppressed(2) == frozenset()
    assert criteria(2, 2) is FinishReason.STOP


@pytest.mark.parametrize(
    ("text", "stops", "since", "expected"),
    [
        ("hello world", ["wor"], 0, 6),
        ("hello world", ["xyz"], 0, None),
        ("abc STOP def", ["STOP", "abc"], 5, 4),  # "abc" ended before `since`: already checked
        ("ab", ["b"], 1, 1),
        ("aXYb", ["XY", "Yb"], 3, 2),  # "XY" ended before the new text
        ("aXYZ", ["YZ", "XYZ"], 3, 1),  # earliest start wins
    ],
)
def test_find_stop(text, stops, since, expected):
    assert find_stop(text, stops, since) == expected


@pytest.mark.parametrize(
    ("text", "stops", "expected"),
    [
        ("hello wo", ["world"], 2),
        ("hello", ["world"], 0),
        ("the end.", [".\n\n"], 1),
        ("xx<|", ["<|im_end|>", "<|x"], 2),
        ("abc", ["c"], 0),  # a full single-char stop is found by find_stop, never held
    ],
)
def test_holdback(text, stops, expected):
    assert holdback(text, stops) == expected

"""pytest-benchmark micro-benchmarks of the decode hot paths, each with a correctness check.

Run alone with `pytest tests/bench/test_hot_paths.py` (add `--benchmark-autosave` to keep the figures).
Rounds are capped so that the whole file costs well under a minute in the normal suite; the speed is
reported, never asserted (the targets live in `llm-gateway bench`).
"""

import numpy as np
import pytest

from app.engine import sampler
from app.engine.detokenizer import IncrementalDetokenizer
from app.engine.manifest import read_manifest
from app.engine.params import SamplingParams
from app.engine.runner import make_runner
from app.engine.session import SessionConfig, open_session
from app.engine.tokenizer import TextTokenizer

VOCAB = 49_152
FAST = {"rounds": 200, "iterations": 1, "warmup_rounds": 5}
SLOW = {"rounds": 15, "iterations": 1, "warmup_rounds": 2}


@pytest.fixture(scope="module")
def logits_row() -> np.ndarray:
    rng = np.random.default_rng(0)
    return (rng.standard_normal(VOCAB) * 4).astype(np.float32)  # [V]


def test_sample_greedy(benchmark, logits_row):
    token = benchmark.pedantic(sampler.sample, (logits_row, SamplingParams(), np.random.default_rng(0)), **FAST)
    assert token == int(logits_row.argmax())


def test_sample_top_p(benchmark, logits_row):
    params = SamplingParams(temperature=0.8, top_p=0.9)
    token = benchmark.pedantic(sampler.sample, (logits_row, params, np.random.default_rng(1)), **FAST)
    ids, _ = sampler.candidate_probs(logits_row, params)
    assert token in set(ids.tolist())


def test_sample_top_k(benchmark, logits_row):
    params = SamplingParams(temperature=1.0, top_k=50)
    token = benchmark.pedantic(sampler.sample, (logits_row, params, np.random.default_rng(2)), **FAST)
    assert token in set(np.argsort(-logits_row)[:50].tolist())


@pytest.mark.real
def test_detokenizer_step(benchmark, real_models):
    folder = real_models.default
    tokenizer = TextTokenizer(folder, read_manifest(folder).model)
    ids = tokenizer.encode("The old harbour town woke slowly on winter mornings, and the bakers lit their ovens.")
    detok = IncrementalDetokenizer(tokenizer.decode, ids[:4])
    pieces = [detok.add(t) for t in ids[4:-1]]
    last = ids[-1]

    def step():
        return detok.add(last)  # the same token again: one more step over a window of fixed size

    benchmark.pedantic(step, **FAST)
    assert "".join(pieces) == tokenizer.decode(ids[:-1])[len(tokenizer.decode(ids[:4])) :]


@pytest.fixture(scope="module")
def runner(real_models):
    folder = real_models.default
    manifest = read_manifest(folder)
    session = open_session(folder / manifest.io.onnx_file, SessionConfig(intra_op_threads=2))
    runner = make_runner(session, manifest, max_slots=16, max_len=256)
    prompt = np.array([1, 504, 3458, 282, 4649, 314, 253, 1345, 28, 1030, 30, 4649], np.int64)  # [12]
    first = [int(runner.prefill(slot, prompt, 0).argmax()) for slot in range(16)]
    return runner, len(prompt), first


@pytest.mark.real
@pytest.mark.parametrize("batch", [1, 16])
def test_engine_decode_step(benchmark, runner, batch):
    model, length, first = runner
    tokens = np.array(first[:batch], np.int64)  # [batch]
    lengths = np.full(batch, length, np.int64)  # [batch]: rewrite the same position each round
    logits = benchmark.pedantic(model.decode, (tokens, lengths), **SLOW)
    assert logits.shape == (batch, VOCAB)
    assert np.isfinite(logits).all()
    # every slot holds the same prompt, so every row predicts the same next token
    assert len(set(logits.argmax(-1).tolist())) == 1

"""A long prompt's activations go back to the OS when its call ends (runner.SHRINK_AFTER_TOKENS), so that
ONNX Runtime's arena does not keep the largest calls it served under the later peaks of live KV."""

from __future__ import annotations

import numpy as np
import pytest

from app.engine.manifest import read_manifest
from app.engine.runner import SHRINK_AFTER_TOKENS, make_runner
from app.engine.session import SessionConfig, open_session
from tests.engine.test_prefix_cache import rss_bytes


@pytest.mark.real
def test_a_long_prompt_call_leaves_no_activations_behind(real_models):
    folder = real_models.default
    manifest = read_manifest(folder)
    session = open_session(folder / manifest.io.onnx_file, SessionConfig(intra_op_threads=2))
    runner = make_runner(session, manifest, max_slots=2, max_len=1024)
    ids = np.random.default_rng(0).integers(100, 20000, 1000).astype(np.int64)
    runner.prefill(0, ids[:16], 0)  # first-call allocations out of the way
    runner.release(0)
    before = rss_bytes()
    for length in (512, 300, 200):  # calls of several shapes, each >= SHRINK_AFTER_TOKENS
        assert length >= SHRINK_AFTER_TOKENS
        logits = runner.prefill(0, ids[:length], 0)
        assert np.isfinite(logits).all()
        runner.release(0)
    # a 512-token call needs ~55 MB of activations on SmolLM2-135M; kept, they would all still be here
    assert rss_bytes() - before < 12 * 2**20

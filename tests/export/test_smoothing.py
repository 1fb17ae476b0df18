"""Activation smoothing (export/smoothing.py): the scales on fixed arrays, and the folded graph on the tiny model."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from app.engine.manifest import read_manifest
from app.engine.runner import make_runner
from export import smoothing


def test_scales_follow_the_smoothquant_formula():
    x_max = np.array([8.0, 0.5, 1.0, 0.0, 2.0])
    w_max = np.array([0.5, 2.0, 1.0, 1.0, 0.0])
    s = smoothing.smoothing_scales(x_max, w_max, 0.5)
    assert s.dtype == np.float32
    np.testing.assert_allclose(s[:3], [4.0, 0.5, 1.0])  # sqrt(8 / 0.5), sqrt(0.5 / 2), 1
    assert s[3] == 1.0 and s[4] == 1.0  # a channel that never fired, a row of zero weights: left alone
    np.testing.assert_allclose(smoothing.smoothing_scales(x_max[:3], w_max[:3], 1.0), x_max[:3])
    assert smoothing.smoothing_scales(np.array([1e-30]), np.array([1.0]), 1.0)[0] == smoothing.MIN_SCALE


def _runner(model: onnx.ModelProto, folder):
    manifest = read_manifest(folder)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return make_runner(session, manifest, 1, 64)


@pytest.fixture(scope="module")
def tiny_gqa(tiny_models):
    folder = tiny_models["gqa"]
    return folder, onnx.load(str(folder / read_manifest(folder).io.onnx_file))


def test_smoothing_keeps_the_function_and_flattens_the_inputs(tiny_gqa):
    folder, original = tiny_gqa
    ids = [int(t) for t in np.random.default_rng(0).integers(3, 300, 40)]
    model = onnx.ModelProto()
    model.CopyFrom(original)
    before = smoothing.calibration_maxima(model, ids)
    report = smoothing.smooth(model, before, alpha=0.5)
    # 2 layers x (qkv, o, gate, up, down) and the lm_head: every input reached by a fold
    assert report.skipped == [] and len(report.folded) == 2 * 5 + 1
    kinds = {where.split(" ", 1)[1] for where in report.folded.values()}
    assert kinds == {"gamma", "columns", "value columns"}  # norms, the up projection, GQA's values
    expected = _runner(original, folder).forward_full(ids)  # [T, V]
    got = _runner(model, folder).forward_full(ids)
    np.testing.assert_allclose(got, expected, atol=1e-4 * np.abs(expected).max())
    after = smoothing.calibration_maxima(model, ids)
    for name, x_max in before.items():  # outlier channels shrink toward the rest: max / median falls
        spread = lambda v: v.max() / np.median(v)  # noqa: E731
        assert spread(after[name]) <= spread(x_max) * 1.0001, name
    # the tied embedding keeps its table: only the lm_head's copy was scaled
    inits = {i.name for i in model.graph.initializer}
    assert {i.name for i in original.graph.initializer} <= inits


def test_a_graph_without_foldable_producers_is_left_as_it_was(tiny_gqa):
    _, original = tiny_gqa
    model = onnx.ModelProto()
    model.CopyFrom(original)
    report = smoothing.smooth(model, {}, alpha=0.5)  # no calibration statistics: nothing to fold
    assert report.folded == {} and len(report.skipped) == 2 * 5 + 1
    assert model.SerializeToString() == original.SerializeToString()

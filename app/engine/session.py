"""Open one ONNX Runtime session with options chosen for CPU decoding."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# ORT 1.32 on Linux otherwise writes a telemetry store under ~/.cache (and creates HOME if missing);
# it reads the variable when the first session is created, so setting it here, after import, works.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

import onnxruntime as ort


@dataclass(frozen=True, slots=True)
class SessionConfig:
    intra_op_threads: int = 2
    allow_spinning: bool = True
    graph_optimization: str = "all"  # "basic" | "extended" | "all"


_OPT_LEVELS = {
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


def open_session(onnx_path: Path, config: SessionConfig) -> ort.InferenceSession:
    return ort.InferenceSession(str(onnx_path), session_options(config), providers=["CPUExecutionProvider"])


def session_options(config: SessionConfig) -> ort.SessionOptions:
    so = ort.SessionOptions()
    so.intra_op_num_threads = config.intra_op_threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = _OPT_LEVELS[config.graph_optimization]
    # Spinning keeps the intra-op threads hot between the many small kernels of one decode step;
    # force_spinning_stop lets them sleep once Run() returns, so the HTTP side gets the cores back.
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if config.allow_spinning else "0")
    so.add_session_config_entry("session.force_spinning_stop", "1")
    so.log_severity_level = 3
    return so

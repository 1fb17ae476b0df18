"""One linear layer through each CPU kernel ONNX Runtime offers for it, at the row counts the engine runs.

`python -m benchmarks.linear_kernels [--k 576] [--n 1536] [--rows 509,16,1] [--rounds 3] [--threads 2]`

The kernels: fp32 `MatMul` (MLAS SGEMM), `MatMulNBits` 8-bit in blocks of 64 at accuracy level 4 (what
the shipped int8 recipe exports; MLAS's SQNBitGemm CompInt8), `MatMulNBits` 4-bit in blocks of 32 at level 4
(the int4 recipe, and the kernel `--quant gguf` runs on Q4 blocks) and com.microsoft `DynamicQuantizeMatMul`
(the input quantized per call, int8 weights with one scale per output column; MLAS's QGEMM, which is
where its AMX kernel lives). Each is a one-node graph over the same random weight; they are timed
interleaved, round by round, so the machine's load hits all alike, and each output is checked against
numpy's product before it is timed. docs/engine.md ("Prefill on AMX") gives the figures.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization.matmul_nbits_quantizer import (
    DefaultWeightOnlyQuantConfig,
    MatMulNBitsQuantizer,
)

from app.engine.cpu import host_cpu

OPSETS = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
MAX_REL_ERROR = 0.2  # int8 or 4-bit weights, int8 activations, against fp32: a wrong kernel is far off this


@dataclass(frozen=True, slots=True)
class Timing:
    kernel: str
    rows: int
    ms: float  # median over the rounds of the mean time of one call
    rel_error: float  # max |y - x @ w| / max |x @ w|


def _graph(nodes: list, inits: list, k: int, n: int) -> onnx.ModelProto:
    g = helper.make_graph(
        nodes,
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["m", k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["m", n])],
        inits,
    )
    return helper.make_model(g, opset_imports=OPSETS)


def fp32_matmul(w: np.ndarray) -> onnx.ModelProto:  # w: [K, N]
    return _graph([helper.make_node("MatMul", ["x", "w"], ["y"])], [numpy_helper.from_array(w, "w")], *w.shape)


def matmul_nbits(w: np.ndarray, bits: int = 8, block_size: int = 64) -> onnx.ModelProto:
    cfg = DefaultWeightOnlyQuantConfig(block_size=block_size, is_symmetric=False, accuracy_level=4, bits=bits)
    quantizer = MatMulNBitsQuantizer(fp32_matmul(w), algo_config=cfg)
    quantizer.process()
    return quantizer.model.model


def dynamic_quantize_matmul(w: np.ndarray) -> onnx.ModelProto:
    scale = (np.abs(w).max(axis=0) / 127.0).astype(np.float32)  # [N]: one scale per output column
    q = np.clip(np.round(w / scale), -127, 127).astype(np.int8)  # [K, N]
    node = helper.make_node("DynamicQuantizeMatMul", ["x", "w", "s"], ["y"], domain="com.microsoft")
    inits = [numpy_helper.from_array(q, "w"), numpy_helper.from_array(scale, "s")]
    return _graph([node], inits, *w.shape)


KERNELS = {
    "fp32 MatMul": fp32_matmul,
    "MatMulNBits 8-bit/64 level 4": matmul_nbits,
    "MatMulNBits 4-bit/32 level 4": lambda w: matmul_nbits(w, bits=4, block_size=32),
    "DynamicQuantizeMatMul": dynamic_quantize_matmul,
}


def measure(k: int, n: int, rows: Sequence[int], rounds: int, threads: int, calls: int = 0) -> list[Timing]:
    rng = np.random.default_rng(0)
    w = (rng.standard_normal((k, n)) * 0.05).astype(np.float32)  # [K, N]
    x_all = rng.standard_normal((max(rows), k)).astype(np.float32)  # [M, K]
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    sessions = {
        name: ort.InferenceSession(build(w).SerializeToString(), options, providers=["CPUExecutionProvider"])
        for name, build in KERNELS.items()
    }
    out = []
    for m in rows:
        x = x_all[:m]
        want = x @ w  # [M, N]
        n_calls = calls or max(5, int(20_000 / max(m, 1) ** 0.8))
        errors, times = {}, {name: [] for name in sessions}
        for name, sess in sessions.items():
            got = sess.run(None, {"x": x})[0]
            errors[name] = float(np.abs(got - want).max() / np.abs(want).max())
        for _ in range(rounds):
            for name, sess in sessions.items():
                for _ in range(3):
                    sess.run(None, {"x": x})
                t0 = time.perf_counter()
                for _ in range(n_calls):
                    sess.run(None, {"x": x})
                times[name].append((time.perf_counter() - t0) / n_calls * 1e3)
        out += [Timing(name, m, statistics.median(times[name]), errors[name]) for name in sessions]
    return out


def table(timings: Sequence[Timing]) -> str:
    names = list(dict.fromkeys(t.kernel for t in timings))
    lines = ["| rows | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for m in dict.fromkeys(t.rows for t in timings):
        cells = {t.kernel: t for t in timings if t.rows == m}
        lines.append(f"| {m} | " + " | ".join(f"{cells[name].ms:.3f} ms" for name in names) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.linear_kernels", description=__doc__.split("\n")[0])
    p.add_argument("--k", type=int, default=576, help="input features (SmolLM2-135M's hidden size)")
    p.add_argument("--n", type=int, default=1536, help="output features (its MLP width)")
    p.add_argument("--rows", default="509,16,1", help="comma-separated row counts (prompt tokens or streams)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--calls", type=int, default=0, help="calls per timed round (0: by row count)")
    a = p.parse_args(argv)
    rows = [int(r) for r in a.rows.split(",")]
    timings = measure(a.k, a.n, rows, a.rounds, a.threads, a.calls)
    bad = [t for t in timings if t.rel_error > MAX_REL_ERROR]
    cpu = host_cpu()
    print(f"CPU: {cpu.model} (ISA class {cpu.isa.value}); onnxruntime {ort.__version__}; K={a.k} N={a.n}")
    print(table(timings))
    for t in bad:
        print(f"WRONG: {t.kernel} at {t.rows} rows is {t.rel_error:.3f} off numpy's product")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())

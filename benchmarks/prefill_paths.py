"""Prefill and decode speed of one exported graph under different compute paths, on the engine's runner.

`python -m benchmarks.prefill_paths MODEL_DIR [MODEL_DIR...] [--levels 4,1] [--lengths 128,512] ...`

Each variant is an exported gqa folder opened with a MatMulNBits `accuracy_level` (the graph proto is
patched in memory; the weights are read from the folder) and a set of session options. Variants are
measured interleaved (A B C A B C ...), so that the machine's load hits every one alike; the figures
are medians. Timings are of `runner.prefill` on a fresh slot and of `runner.decode` over n running
slots, i.e. what the engine's step pays, without HTTP or sampling.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort

from app.engine.manifest import read_manifest
from app.engine.runner import GqaRunner
from app.engine.session import SessionConfig, session_options

DECODE_CONTEXT = 64  # cached positions per row before a decode step is timed
DECODE_STEPS = 8  # timed steps per repetition


@dataclass(frozen=True, slots=True)
class Variant:
    folder: Path
    level: int | None  # MatMulNBits accuracy_level override; None keeps the graph's
    threads: int = 2
    spinning: bool = True
    prepack: bool = True
    keep_head: bool = False  # leave the lm_head MatMulNBits at the graph's level

    @property
    def name(self) -> str:
        quant = read_manifest(self.folder).quant.value
        parts = [quant, f"L{self.level}" if self.level is not None else "Lgraph", f"t{self.threads}"]
        if not self.spinning:
            parts.append("nospin")
        if not self.prepack:
            parts.append("noprepack")
        if self.keep_head:
            parts.append("head-graph")
        return "-".join(parts)


@dataclass(slots=True)
class Figures:
    prefill: dict[int, list[float]] = field(default_factory=dict)  # tokens -> wall seconds per prompt
    decode: dict[int, list[float]] = field(default_factory=dict)  # rows -> wall seconds per step
    # the same in CPU seconds of this process: the work done, which other processes' load barely changes
    # (with spinning on it also counts the threads' spinning)
    prefill_cpu: dict[int, list[float]] = field(default_factory=dict)
    decode_cpu: dict[int, list[float]] = field(default_factory=dict)
    load_s: float = 0.0
    rss_mb: float = 0.0


def open_variant(v: Variant, max_slots: int, max_len: int) -> GqaRunner:
    import onnx

    manifest = read_manifest(v.folder)
    so = session_options(SessionConfig(intra_op_threads=v.threads, allow_spinning=v.spinning))
    if not v.prepack:
        so.add_session_config_entry("session.disable_prepacking", "1")
    path = v.folder / manifest.io.onnx_file
    if v.level is None:
        session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    else:
        proto = onnx.load(str(path), load_external_data=False)
        for node in proto.graph.node:
            if node.op_type != "MatMulNBits" or (v.keep_head and "lm_head" in node.name):
                continue
            for attr in node.attribute:
                if attr.name == "accuracy_level":
                    attr.i = v.level
        so.add_session_config_entry("session.model_external_initializers_file_folder_path", str(v.folder))
        session = ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return GqaRunner(session, manifest.model, manifest.io, max_slots, max_len)


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def time_prefill(runner: GqaRunner, ids: np.ndarray, chunk: int) -> tuple[float, float]:
    """(wall, CPU) seconds to prefill `ids` into a fresh slot, `chunk` tokens per call."""
    slot = runner.max_slots - 1
    start, cpu = time.perf_counter(), time.process_time()
    for at in range(0, len(ids), chunk):
        runner.prefill(slot, ids[at : at + chunk], at)
    elapsed = time.perf_counter() - start, time.process_time() - cpu
    runner.release(slot)
    return elapsed


def time_decode(runner: GqaRunner, ids: np.ndarray, rows: int) -> tuple[float, float]:
    """(wall, CPU) seconds of one decode step over `rows` slots holding DECODE_CONTEXT positions each."""
    for slot in range(rows):
        runner.prefill(slot, ids[:DECODE_CONTEXT], 0)
    lengths = np.full(rows, DECODE_CONTEXT, np.int64)
    tokens = ids[DECODE_CONTEXT : DECODE_CONTEXT + rows].copy()
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(DECODE_STEPS):
        runner.decode(tokens, lengths)
        lengths += 1
    elapsed = (time.perf_counter() - start) / DECODE_STEPS, (time.process_time() - cpu) / DECODE_STEPS
    for slot in range(rows):
        runner.release(slot)
    return elapsed


class TorchTtft:
    """Seconds for transformers `generate` to hand out its first token (prefill + one lm_head row), as the
    bench's PyTorch contestant measures its TTFT."""

    def __init__(self, threads: int) -> None:
        import torch

        from export.loading import load_config, load_reference
        from export.sources import resolve_source

        torch.set_num_threads(threads)
        source = resolve_source(None)
        self.model = load_reference(source, load_config(source)).model

    def __call__(self, ids: np.ndarray) -> tuple[float, float]:
        import torch

        input_ids = torch.tensor(ids[None, :], dtype=torch.long)
        start, cpu = time.perf_counter(), time.process_time()
        with torch.inference_mode():
            self.model.generate(input_ids, attention_mask=torch.ones_like(input_ids), max_new_tokens=1, do_sample=False)
        return time.perf_counter() - start, time.process_time() - cpu


def _record(wall: dict[int, list[float]], cpu: dict[int, list[float]], key: int, times: tuple[float, float]) -> None:
    wall.setdefault(key, []).append(times[0])
    cpu.setdefault(key, []).append(times[1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folders", nargs="+", type=Path)
    p.add_argument("--levels", default="4,1", help="accuracy levels to try, 'graph' keeps the graph's")
    p.add_argument("--lengths", default="128,512", help="prefill lengths (tokens)")
    p.add_argument("--chunk", type=int, default=0, help="prefill chunk size (0: whole prompt in one call)")
    p.add_argument("--rows", default="1,16", help="decode batch sizes")
    p.add_argument("--threads", default="2")
    p.add_argument("--spinning", default="1", help="1, 0 or 1,0")
    p.add_argument("--noprepack", action="store_true", help="also each variant with prepacking disabled")
    p.add_argument("--keep-head", action="store_true", help="overrides leave the lm_head's level alone")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--torch", action="store_true", help="also PyTorch fp32 `generate` of one token (the bench's TTFT)")
    args = p.parse_args()

    variants = [
        Variant(folder, None if level == "graph" else int(level), int(t), s == "1", prepack, args.keep_head)
        for folder in args.folders
        for level in args.levels.split(",")
        for t in args.threads.split(",")
        for s in args.spinning.split(",")
        for prepack in ((True, False) if args.noprepack else (True,))
    ]
    lengths = [int(x) for x in args.lengths.split(",")]
    rows = [int(x) for x in args.rows.split(",")]
    max_len = max(max(lengths), DECODE_CONTEXT + DECODE_STEPS + 1)
    text = (Path(__file__).parent / "prompts" / "long_plain.txt").read_text()
    from app.engine.tokenizer import TextTokenizer

    manifest = read_manifest(args.folders[0])
    ids = np.asarray(TextTokenizer(args.folders[0], manifest.model).encode(text * 8), np.int64)[: max_len + 32]

    runners: dict[str, GqaRunner] = {}
    figures: dict[str, Figures] = {}
    for v in variants:
        before, start = rss_mb(), time.perf_counter()
        runners[v.name] = open_variant(v, max(rows) + 1, max_len)
        figures[v.name] = Figures(load_s=time.perf_counter() - start, rss_mb=rss_mb() - before)
        time_prefill(runners[v.name], ids[: lengths[0]], args.chunk or lengths[0])  # warm-up
        time_decode(runners[v.name], ids, rows[0])
        gc.collect()
    torch_ttft = TorchTtft(int(args.threads.split(",")[0])) if args.torch else None
    if torch_ttft is not None:
        figures["pytorch-fp32-generate"] = Figures()
        torch_ttft(ids[: lengths[0]])
    for rep in range(args.reps):
        for name, runner in runners.items():
            fig = figures[name]
            for n in lengths:
                _record(fig.prefill, fig.prefill_cpu, n, time_prefill(runner, ids[:n], args.chunk or n))
            for r in rows:
                _record(fig.decode, fig.decode_cpu, r, time_decode(runner, ids, r))
        if torch_ttft is not None:
            time.sleep(0.2)  # libgomp's threads spin a while after a parallel region: keep them off ORT's figures
            fig = figures["pytorch-fp32-generate"]
            for n in lengths:
                _record(fig.prefill, fig.prefill_cpu, n, torch_ttft(ids[:n]))
            time.sleep(0.2)
        print(f"rep {rep + 1}/{args.reps} done; load {os.getloadavg()[0]:.2f}", flush=True)
    report(figures, lengths, rows, args.chunk)


def report(figures: dict[str, Figures], lengths: list[int], rows: list[int], chunk: int) -> None:
    from benchmarks.machine import cpu_info

    cpu = cpu_info(Path("/proc/cpuinfo").read_text())
    print(
        f"\n{cpu.model} ({', '.join(cpu.key_flags)}), {os.cpu_count()} cpus, ORT {ort.__version__}, "
        f"load {os.getloadavg()}, chunk {chunk or 'whole'}"
    )
    head = [f"prefill {n} ms" for n in lengths] + [f"decode x{r} ms/step" for r in rows] + ["load s", "RSS +MB"]
    print("wall ms, median (min-max); then CPU ms of the process, median")
    print("| variant | " + " | ".join(head) + " |")
    print("|---" * (len(head) + 1) + "|")
    for name, fig in figures.items():
        cells = [_ms(fig.prefill[n], fig.prefill_cpu[n]) for n in lengths]
        cells += [_ms(fig.decode[r], fig.decode_cpu[r]) if r in fig.decode else "-" for r in rows]
        cells += [f"{fig.load_s:.1f}", f"{fig.rss_mb:.0f}"]
        print(f"| {name} | " + " | ".join(cells) + " |")


def _ms(wall: list[float], cpu: list[float]) -> str:
    med = 1000 * statistics.median(wall)
    return f"{med:.1f} ({1000 * min(wall):.0f}-{1000 * max(wall):.0f}); cpu {1000 * statistics.median(cpu):.0f}"


if __name__ == "__main__":
    main()

"""The Hugging Face contestants, run inside a worker process: PyTorch fp32 `generate` (the baseline) and
Optimum's `ORTModelForCausalLM.generate` (the off-the-shelf ONNX path). Both are timed by a streamer."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from transformers.generation.streamers import BaseStreamer

from app.engine.manifest import read_manifest
from benchmarks.timing import StreamTiming

IO_BINDING_PROBE_TOKENS = 24


class TimingStreamer(BaseStreamer):
    """A transformers streamer that records when each new token is handed out by `generate`."""

    def __init__(self, start: float) -> None:
        self.start = start
        self.times: list[float] = []
        self.tokens = 0
        self._prompt_seen = False

    def put(self, value: Any) -> None:
        now = time.perf_counter()
        if not self._prompt_seen:  # generate() first puts the prompt itself
            self._prompt_seen = True
            return
        self.times.append(now - self.start)
        self.tokens += int(value.numel())

    def end(self) -> None:
        pass


def _greedy_generate(model: Any, ids: list[int], new_tokens: int, pad_token_id: int, prompt_id: str) -> StreamTiming:
    import torch

    input_ids = torch.tensor([ids], dtype=torch.long)
    start = time.perf_counter()
    streamer = TimingStreamer(start)
    with torch.inference_mode():
        model.generate(
            input_ids,
            attention_mask=torch.ones_like(input_ids),
            max_new_tokens=new_tokens,
            do_sample=False,
            eos_token_id=None,  # EOS ignored: every contestant decodes exactly new_tokens
            pad_token_id=pad_token_id,
            streamer=streamer,
        )
    return StreamTiming(prompt_id, tuple(streamer.times), streamer.tokens)


class TorchBaseline:
    """transformers `generate` on the fp32 PyTorch model that the export came from."""

    def __init__(self, source_spec: str | None, threads: int) -> None:
        import torch

        from export.loading import load_config, load_reference
        from export.sources import resolve_source

        torch.set_num_threads(threads)
        source = resolve_source(source_spec)
        ref = load_reference(source, load_config(source))
        self.model = ref.model
        self.pad_token_id = _pad_id(self.model.generation_config, ref.config)
        self.notes = [f"source {source.spec}, torch {torch.__version__}, {torch.get_num_threads()} threads"]

    def warmup(self, prompts: list[tuple[str, list[int]]], new_tokens: int) -> None:
        for prompt_id, ids in prompts:
            self.generate(ids, new_tokens, prompt_id)

    def generate(self, ids: list[int], new_tokens: int, prompt_id: str) -> StreamTiming:
        return _greedy_generate(self.model, ids, new_tokens, self.pad_token_id, prompt_id)


class OrtModelContestant:
    """Optimum's ORTModelForCausalLM on an exported `--graph optimum` folder, IO binding on or off,
    whichever the warm-up measures faster."""

    def __init__(self, model_dir: Path, workdir: Path, threads: int) -> None:
        import onnxruntime as ort
        from optimum.onnxruntime import ORTModelForCausalLM

        from benchmarks.ortmodel_graph import ortmodel_folder

        manifest = read_manifest(model_dir)
        folder, self.notes = ortmodel_folder(model_dir, manifest, workdir)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3
        self.model = ORTModelForCausalLM.from_pretrained(
            folder,
            file_name=manifest.io.onnx_file,
            provider="CPUExecutionProvider",
            session_options=options,
            use_cache=True,
            use_io_binding=False,
        )
        self.pad_token_id = _pad_id(self.model.generation_config, self.model.config)

    def warmup(self, prompts: list[tuple[str, list[int]]], new_tokens: int) -> None:
        """Pick the faster IO-binding mode on the shortest prompt, then warm every prompt in that mode."""
        prompt_id, ids = min(prompts, key=lambda p: len(p[1]))
        rates: dict[bool, float] = {}
        for io_binding in (False, True):
            self.model.use_io_binding = io_binding
            try:
                self.generate(ids, 2, prompt_id)  # the first call in each mode allocates
                timing = self.generate(ids, IO_BINDING_PROBE_TOKENS, prompt_id)
            except Exception as exc:  # a mode ORTModel cannot run this graph in is not a contestant failure
                self.notes.append(f"use_io_binding={io_binding} failed: {type(exc).__name__}: {exc}")
                continue
            rates[io_binding] = (timing.tokens - 1) / timing.decode_span
        if not rates:
            raise RuntimeError("ORTModelForCausalLM.generate failed with and without IO binding")
        best = max(rates, key=lambda mode: rates[mode])
        self.model.use_io_binding = best
        tried = ", ".join(f"{rate:.1f} tok/s with use_io_binding={mode}" for mode, rate in rates.items())
        self.notes.append(f"use_io_binding={best} (warm-up decode of {IO_BINDING_PROBE_TOKENS} tokens: {tried})")
        for prompt_id, ids in prompts:
            self.generate(ids, new_tokens, prompt_id)

    def generate(self, ids: list[int], new_tokens: int, prompt_id: str) -> StreamTiming:
        return _greedy_generate(self.model, ids, new_tokens, self.pad_token_id, prompt_id)


def _pad_id(generation_config: Any, config: Any) -> int:
    for value in (generation_config.pad_token_id, config.pad_token_id, generation_config.eos_token_id):
        if isinstance(value, int):
            return value
        if isinstance(value, list) and value:
            return int(value[0])
    return 0

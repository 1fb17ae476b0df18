"""The Hugging Face contestants, run inside a worker process (benchmarks/worker.py): PyTorch fp32 `generate`
(the baseline) and Optimum's `ORTModelForCausalLM.generate` (the off-the-shelf ONNX path), both timed by
a streamer; and the graph adaptation that lets ORTModel run our `--graph optimum` export.

Give Optimum's ORTModelForCausalLM a graph it can run, from a folder exported with `--graph optimum`.

Our export adds the input `num_logits_to_keep` (int64 [1]: the lm_head runs on the last k positions)
and names the logits' length axis `logits_length`. ORTModel feeds only the inputs it knows and refuses
a graph with another required input; with IO binding it also sizes every output from axis names it can
evaluate from the inputs, which `logits_length` is not. Exports that give `num_logits_to_keep` a
default (an initializer of the same name, value 1) pass the first check but not the second.

So, unless the graph already suits ORTModel, this writes a copy of the graph proto (a few hundred KB)
in which `num_logits_to_keep` defaults to 1 (last-position logits, as our engine asks for; it also
spares ORTModel the lm_head over a whole prompt) and the logits' length axis is 1. The weight file is
hard-linked, not copied: no extra disk, and ORT reads the very same bytes.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

from transformers.generation.streamers import BaseStreamer

from app.engine.manifest import LOGITS_TO_KEEP, GraphKind, Manifest, read_manifest
from benchmarks.stats import StreamTiming

IO_BINDING_PROBE_TOKENS = 24
_SIDE_FILES = ("config.json", "generation_config.json")


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


class NotRunnable(Exception):
    """ORTModelForCausalLM cannot run this folder; the message says why."""


def adaptations(proto: Any) -> list[str]:
    """What ORTModel needs changed in this graph proto (empty: it runs as exported)."""
    needed = []
    if any(i.name == LOGITS_TO_KEEP for i in proto.graph.input) and not any(
        init.name == LOGITS_TO_KEEP for init in proto.graph.initializer
    ):
        needed.append(f"`{LOGITS_TO_KEEP}` is a required input without a default, which ORTModel cannot feed")
    known = {d.dim_param for i in proto.graph.input for d in i.type.tensor_type.shape.dim if d.dim_param}
    for out in proto.graph.output:
        dims = out.type.tensor_type.shape.dim
        if out.name == "logits" and len(dims) == 3 and dims[1].dim_param and dims[1].dim_param not in known:
            needed.append(f"the logits axis `{dims[1].dim_param}` is unknown to ORTModel's IO-binding shape inference")
    return needed


def ortmodel_folder(model_dir: Path, manifest: Manifest, workdir: Path) -> tuple[Path, list[str]]:
    """A folder ORTModelForCausalLM.from_pretrained loads, and notes on any adaptation made."""
    import onnx

    if manifest.graph is not GraphKind.OPTIMUM:
        raise NotRunnable(
            f"{model_dir.name} is a {manifest.graph} graph: ORTModelForCausalLM runs only Optimum-layout graphs "
            "(past and present KV as separate, growing tensors); export one with `--graph optimum`"
        )
    if not (model_dir / "config.json").is_file():
        raise NotRunnable(f"{model_dir} has no config.json, which ORTModelForCausalLM needs")
    proto = onnx.load(str(model_dir / manifest.io.onnx_file), load_external_data=False)
    needed = adaptations(proto)
    if not needed:
        return model_dir, []
    adapt_for_ortmodel(proto)
    dest = workdir / "ortmodel" / model_dir.name
    _write_folder(model_dir, manifest, proto, dest)
    note = (
        f"ran a copy of the exported graph ({'; '.join(needed)}): there `{LOGITS_TO_KEEP}` defaults to 1 "
        "(last-position logits) and the logits length axis is 1; weights shared by hard link"
    )
    return dest, [note]


def adapt_for_ortmodel(proto: Any) -> None:
    import numpy as np
    from onnx import numpy_helper

    if not any(init.name == LOGITS_TO_KEEP for init in proto.graph.initializer):
        proto.graph.initializer.append(numpy_helper.from_array(np.array([1], np.int64), LOGITS_TO_KEEP))
    for out in proto.graph.output:
        if out.name == "logits" and len(out.type.tensor_type.shape.dim) == 3:
            out.type.tensor_type.shape.dim[1].dim_value = 1


def _write_folder(model_dir: Path, manifest: Manifest, proto: Any, dest: Path) -> None:
    import onnx

    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for name in manifest.files:
        if name != manifest.io.onnx_file:
            _link_or_copy(model_dir / name, dest / name)
    for name in _SIDE_FILES:
        if (model_dir / name).is_file() and not (dest / name).exists():
            shutil.copyfile(model_dir / name, dest / name)
    onnx.save(proto, str(dest / manifest.io.onnx_file))


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:  # another file system: ORT refuses symlinks that leave the model folder, so copy
        shutil.copyfile(src, dst)

"""The GGUF file's own weight blocks, found for the rows of the exported graph's weights.

The graph's weights come from transformers' GGUF loader: every tensor dequantized with `gguf.quants`
(bitwise what `dequantize` below returns), q/k rows reverse-permuted for llama's RoPE, and the graph
builder may pack several tensors into one weight (the GQA graph's QKV). Rather than re-deriving each
of those steps, a weight's rows are looked up by value: every row of every GGUF matrix is indexed by
the hash of its dequantized bytes, so the lookup finds the tensor and row behind each output feature,
permutation and packing included, and a match is exact by construction (it is checked again).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType, GGUFReader
from gguf.quants import dequantize

from export.errors import ExportError
from export.gguf_blocks import Blocks, decode, stack, supported_types

_FLOAT_TYPES = (GGMLQuantizationType.F32, GGMLQuantizationType.F16, GGMLQuantizationType.BF16)


@dataclass(frozen=True, slots=True)
class Match:
    """The GGUF rows behind one graph weight, in the weight's output-feature order."""

    tensors: list[str]  # GGUF tensor names, in order of first use
    blocks: Blocks | None  # None: the source rows are float (F32/F16/BF16): nothing to encode
    max_abs_error: float  # of blocks.dequantize() against the GGUF's dequantized rows


class GgufBlockSource:
    def __init__(self, path: Path) -> None:
        reader = GGUFReader(path)
        self._tensors: dict[str, tuple[GGMLQuantizationType, np.ndarray, int, int]] = {}
        unsupported = []
        for t in reader.tensors:
            if len(t.shape) != 2:
                continue  # norms and biases: the graph keeps them in fp32
            qtype = GGMLQuantizationType(t.tensor_type)
            cols, rows = int(t.shape[0]), int(t.shape[1])  # GGUF shapes list the fastest axis first
            if qtype not in _FLOAT_TYPES and qtype.name not in supported_types():
                unsupported.append(f"{t.name} ({qtype.name})")
            self._tensors[t.name] = (qtype, t.data, rows, cols)
        if unsupported:
            raise ExportError(
                f"{path.name} holds tensors in formats without an exact ONNX encoding: {', '.join(unsupported[:5])}",
                hint=f"--quant gguf reads {', '.join(supported_types())}; use --quant int8 or int4 for this file",
            )
        self._decoded: dict[str, Blocks] = {}
        self._index: dict[tuple[int, int], tuple[str, int]] = {}  # (cols, hash of a row's bytes) -> (tensor, row)
        for name in self._tensors:
            reference = self.dequantized(name)
            cols = reference.shape[1]
            for row, values in enumerate(reference):
                self._index.setdefault((cols, hash(values.tobytes())), (name, row))

    def qtype(self, name: str) -> GGMLQuantizationType:
        return self._tensors[name][0]

    def dequantized(self, name: str) -> np.ndarray:
        """[rows, cols] float32, as transformers' GGUF loader computes it."""
        qtype, data, rows, cols = self._tensors[name]
        if qtype in _FLOAT_TYPES:
            return np.asarray(data).astype(np.float32).reshape(rows, cols)
        return dequantize(data, qtype).astype(np.float32).reshape(rows, cols)

    def blocks(self, name: str) -> Blocks:
        if name not in self._decoded:
            qtype, data, rows, cols = self._tensors[name]
            self._decoded[name] = decode(data, qtype, rows, cols)
        return self._decoded[name]

    def match(self, rows: np.ndarray) -> Match | None:
        """The GGUF blocks behind `rows` [N, K] (a MatMul weight transposed), or None if any row has no source."""
        cols = rows.shape[1]
        hits = [self._index.get((cols, hash(r.tobytes()))) for r in rows]
        if any(hit is None for hit in hits):
            return None
        names = np.array([name for name, _ in hits])
        index = np.array([row for _, row in hits])
        tensors = list(dict.fromkeys(names.tolist()))
        where = [np.flatnonzero(names == name) for name in tensors]  # graph rows fed by each tensor
        restore = np.argsort(np.concatenate(where), kind="stable")
        source = np.concatenate([self.dequantized(t)[index[w]] for t, w in zip(tensors, where, strict=True)])[restore]
        if not np.array_equal(source, rows):
            return None  # a hash collision, not the same values
        if any(self.qtype(t) in _FLOAT_TYPES for t in tensors):
            return Match(tensors, None, 0.0)
        parts = [self.blocks(t).take(index[w]) for t, w in zip(tensors, where, strict=True)]
        blocks = stack(parts).take(restore)
        error = float(np.abs(blocks.dequantize() - rows).max())
        return Match(tensors, blocks, error)

"""A GGUF tensor's raw blocks as integer codes, scales and block offsets, for exact ONNX encodings.

Every format decoded here is, per block of `block_size` weights along a row,
    w[r, k] = scales[r, b] * (codes[r, k] - zero_point) + offsets[r, b],   b = k // block_size,
with `zero_point` = 2 ** (bits - 1), MatMulNBits' own default, and `offsets` absent for the symmetric
formats. `bits` is the MatMulNBits storage width (4 or 8): 5- and 6-bit codes are stored in 8 bits.

| GGUF | codes (bits) | block | scales | offsets |
|---|---|---|---|---|
| Q8_0 | int8 + 128 (8) | 32 | d | - |
| Q4_0 | nibble (4) | 32 | d | - |
| Q4_1 | nibble (4) | 32 | d | m + 8d |
| Q5_0 | q5 + 112 (8) | 32 | d | - |
| Q5_1 | q5 + 112 (8) | 32 | d | m + 16d |
| Q4_K | nibble (4) | 32 | d * sc | 8 d sc - dmin * mn |
| Q5_K | q5 + 112 (8) | 32 | d * sc | 16 d sc - dmin * mn |
| Q6_K | q6 + 96 (8) | 16 | d * sc | - |

The bit layouts follow gguf-py's `gguf.quants` dequantizers, which the tests use as the reference.
Scales and offsets are float32: d * sc is exact there (an fp16 times a small integer), offsets round once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from gguf import GGML_QUANT_SIZES, QK_K, GGMLQuantizationType
from gguf.quants import Q4_K

Q = GGMLQuantizationType


@dataclass(frozen=True, slots=True)
class Blocks:
    """One 2-D weight [rows, cols] in integer blocks along its rows (a GGUF tensor's own layout)."""

    codes: np.ndarray  # [rows, cols] uint8
    scales: np.ndarray  # [rows, cols // block_size] float32
    offsets: np.ndarray | None  # [rows, cols // block_size] float32; None: symmetric format
    bits: int  # MatMulNBits storage width: 4 or 8
    block_size: int
    source_type: str  # the GGUF type name, e.g. "Q4_1"

    @property
    def zero_point(self) -> int:
        return 1 << (self.bits - 1)

    @property
    def shape(self) -> tuple[int, int]:
        return self.codes.shape

    def take(self, rows: np.ndarray) -> Blocks:
        """The same blocks with rows reordered or selected (row permutations, packed QKV slices)."""
        offsets = None if self.offsets is None else self.offsets[rows]
        return Blocks(self.codes[rows], self.scales[rows], offsets, self.bits, self.block_size, self.source_type)

    def dequantize(self) -> np.ndarray:
        rows, cols = self.shape
        grouped = self.codes.reshape(rows, -1, self.block_size).astype(np.float32) - self.zero_point
        w = grouped * self.scales[..., None]  # [rows, blocks, block_size]
        if self.offsets is not None:
            w = w + self.offsets[..., None]
        return w.reshape(rows, cols)


def stack(parts: list[Blocks]) -> Blocks:
    """Concatenate rows (the packed QKV of a GQA graph); mixed formats are first widened to a common one."""
    bits = max(p.bits for p in parts)
    block_size = min(p.block_size for p in parts)
    with_offsets = any(p.offsets is not None for p in parts)
    parts = [widen(p, bits, block_size, with_offsets) for p in parts]
    offsets = np.concatenate([p.offsets for p in parts]) if with_offsets else None
    codes = np.concatenate([p.codes for p in parts])
    kinds = "+".join(dict.fromkeys(p.source_type for p in parts))
    return Blocks(codes, np.concatenate([p.scales for p in parts]), offsets, bits, block_size, kinds)


def widen(blocks: Blocks, bits: int, block_size: int, with_offsets: bool) -> Blocks:
    """The same weights in `bits`-bit codes, blocks of `block_size` (a divisor of the current one): exact."""
    if (blocks.bits, blocks.block_size, blocks.offsets is not None) == (bits, block_size, with_offsets):
        return blocks
    repeat = blocks.block_size // block_size
    codes = (blocks.codes.astype(np.int16) - blocks.zero_point + (1 << (bits - 1))).astype(np.uint8)
    scales = np.repeat(blocks.scales, repeat, axis=1)
    offsets = None
    if with_offsets:
        offsets = np.zeros_like(scales) if blocks.offsets is None else np.repeat(blocks.offsets, repeat, axis=1)
    return Blocks(codes, scales, offsets, bits, block_size, blocks.source_type)


def supported_types() -> list[str]:
    return [t.name for t in _DECODERS]


def decode(raw: np.ndarray, qtype: GGMLQuantizationType, rows: int, cols: int) -> Blocks:
    """Raw bytes of a GGUF tensor (any shape, `rows * cols` weights) -> Blocks [rows, cols]."""
    if qtype not in _DECODERS:
        raise ValueError(
            f"GGUF type {qtype.name} has no exact block encoding (supported: {', '.join(supported_types())})"
        )
    type_size = GGML_QUANT_SIZES[qtype][1]
    blocks = np.ascontiguousarray(raw).view(np.uint8).reshape(-1, type_size)  # [n_blocks, type_size]
    codes, scales, offsets, bits, sub = _DECODERS[qtype](blocks)
    per_row = cols // sub
    return Blocks(
        codes.reshape(rows, cols),
        scales.reshape(rows, per_row).astype(np.float32),
        None if offsets is None else offsets.reshape(rows, per_row).astype(np.float32),
        bits,
        sub,
        qtype.name,
    )


_Decoded = tuple[np.ndarray, np.ndarray, np.ndarray | None, int, int]  # codes, scales, offsets, bits, block


def _f16(raw: np.ndarray) -> np.ndarray:
    return raw.view(np.float16).astype(np.float32)  # [n, 1]


def _nibbles(qs: np.ndarray) -> np.ndarray:
    """[n, 16] packed bytes -> [n, 32] codes: the low nibbles are weights 0..15, the high ones 16..31."""
    return np.concatenate([qs & 0x0F, qs >> 4], axis=-1)


def _fifth_bits(qh: np.ndarray) -> np.ndarray:
    """[n, 4] bytes -> [n, 32] bits (weight j's bit 4 is bit j of the little-endian uint32)."""
    return (qh.view(np.uint32) >> np.arange(32, dtype=np.uint32)) & 1


def _q8_0(blocks: np.ndarray) -> _Decoded:
    codes = (blocks[:, 2:].view(np.int8).astype(np.int16) + 128).astype(np.uint8)
    return codes, _f16(blocks[:, :2]), None, 8, 32


def _q4_0(blocks: np.ndarray) -> _Decoded:
    return _nibbles(blocks[:, 2:]), _f16(blocks[:, :2]), None, 4, 32


def _q4_1(blocks: np.ndarray) -> _Decoded:
    d, m = _f16(blocks[:, :2]), _f16(blocks[:, 2:4])
    return _nibbles(blocks[:, 4:]), d, m + 8 * d, 4, 32


def _q5(qh: np.ndarray, qs: np.ndarray) -> np.ndarray:
    return (_nibbles(qs) | (_fifth_bits(qh) << 4).astype(np.uint8)).astype(np.uint8)  # [n, 32] in 0..31


def _q5_0(blocks: np.ndarray) -> _Decoded:
    q = _q5(blocks[:, 2:6], blocks[:, 6:])
    return q + np.uint8(112), _f16(blocks[:, :2]), None, 8, 32  # q - 16 == (q + 112) - 128


def _q5_1(blocks: np.ndarray) -> _Decoded:
    d, m = _f16(blocks[:, :2]), _f16(blocks[:, 2:4])
    q = _q5(blocks[:, 4:8], blocks[:, 8:])
    return q + np.uint8(112), d, m + 16 * d, 8, 32


def _k_scales(blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Q4_K / Q5_K super-blocks: per sub-block (8 of 32) scale d * sc and minimum dmin * mn, [n, 8] each."""
    d, dmin = _f16(blocks[:, :2]), _f16(blocks[:, 2:4])
    sc, mn = Q4_K.get_scale_min(blocks[:, 4 : 4 + Q4_K.K_SCALE_SIZE])
    return d * sc.astype(np.float32), dmin * mn.astype(np.float32)


def _k_nibbles(qs: np.ndarray) -> np.ndarray:
    """[n, 128] bytes -> [n, 8, 32]: each 32-byte group holds two sub-blocks, low nibbles first."""
    groups = qs.reshape(len(qs), -1, 1, 32) >> np.array([0, 4], np.uint8).reshape(1, 1, 2, 1)
    return (groups & 0x0F).reshape(len(qs), -1, 32)


def _q4_k(blocks: np.ndarray) -> _Decoded:
    scale, minimum = _k_scales(blocks)
    codes = _k_nibbles(blocks[:, 4 + Q4_K.K_SCALE_SIZE :]).reshape(len(blocks), QK_K)
    return codes, scale, 8 * scale - minimum, 4, 32


def _q5_k(blocks: np.ndarray) -> _Decoded:
    scale, minimum = _k_scales(blocks)
    rest = blocks[:, 4 + Q4_K.K_SCALE_SIZE :]
    qh, qs = rest[:, : QK_K // 8], rest[:, QK_K // 8 :]
    high = qh.reshape(len(qh), -1, 1, 32) >> np.arange(8, dtype=np.uint8).reshape(1, 1, 8, 1)
    high = (high & 1).reshape(len(qh), -1, 32)
    q = _k_nibbles(qs) | (high << 4)  # [n, 8, 32] in 0..31
    return (q + 112).astype(np.uint8).reshape(len(blocks), QK_K), scale, 16 * scale - minimum, 8, 32


def _q6_k(blocks: np.ndarray) -> _Decoded:
    n = len(blocks)
    ql, qh = blocks[:, : QK_K // 2], blocks[:, QK_K // 2 : QK_K // 2 + QK_K // 4]
    sc = blocks[:, QK_K // 2 + QK_K // 4 : -2].view(np.int8).astype(np.float32)  # [n, 16]
    d = _f16(blocks[:, -2:])
    low = ql.reshape(n, -1, 1, 64) >> np.array([0, 4], np.uint8).reshape(1, 1, 2, 1)
    low = (low & 0x0F).reshape(n, -1, 32)
    high = qh.reshape(n, -1, 1, 32) >> np.array([0, 2, 4, 6], np.uint8).reshape(1, 1, 4, 1)
    high = (high & 0x03).reshape(n, -1, 32)
    q = (low | (high << 4)).reshape(n, QK_K)  # 0..63; the weight is d * sc * (q - 32)
    return (q + 96).astype(np.uint8), d * sc, None, 8, 16


_DECODERS: dict[GGMLQuantizationType, Callable[[np.ndarray], _Decoded]] = {
    Q.Q8_0: _q8_0,
    Q.Q4_0: _q4_0,
    Q.Q4_1: _q4_1,
    Q.Q5_0: _q5_0,
    Q.Q5_1: _q5_1,
    Q.Q4_K: _q4_k,
    Q.Q5_K: _q5_k,
    Q.Q6_K: _q6_k,
}

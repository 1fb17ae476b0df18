"""What the CPU can do: its model name, the x86 flags that decide which kernels ONNX Runtime's MLAS picks,
and one ISA class summing them up. The exporter records it beside the variant it chose; the server compares
it with the CPU it runs on.

Read from /proc/cpuinfo: the kernel lists a flag only when the CPU has it and the OS enables its register
state (AMX and AVX-512 need both), which is what decides whether a kernel can run. Off Linux the model
falls back to `platform.processor()` and the flags are empty (ISA class `baseline`).
"""

from __future__ import annotations

import enum
import functools
import platform
from pathlib import Path

import msgspec

# the flags that decide which kernels ORT and PyTorch pick on x86
KEY_FLAGS = (
    "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "avx_vnni",
    "amx_tile", "amx_int8", "amx_bf16",
)  # fmt: skip


class Isa(enum.StrEnum):
    """The widest vector / matrix unit MLAS can use; ordered from least to most capable."""

    BASELINE = "baseline"  # no AVX2 (or not x86): generic kernels
    AVX2 = "avx2"  # Zen 1-3, Haswell-Skylake client: int8 dot products emulated (vpmaddubsw)
    AVX_VNNI = "avx_vnni"  # AVX2 plus 256-bit VNNI (Alder Lake and later clients, Zen 5 client parts)
    AVX512 = "avx512"  # AVX-512F/BW/VL without VNNI (Skylake-SP)
    AVX512_VNNI = "avx512_vnni"  # Cascade Lake, Ice Lake, Zen 4: one-instruction int8 dot products
    AMX = "amx"  # Sapphire Rapids and later: int8 / bf16 tile matrix multiply

    @property
    def int8_dot(self) -> bool:
        """Whether int8 x int8 dot products are one instruction (int8-activation kernels pay off)."""
        return self in (Isa.AVX_VNNI, Isa.AVX512_VNNI, Isa.AMX)


class CpuFeatures(msgspec.Struct, frozen=True, kw_only=True):
    model: str  # "model name" of the first processor, e.g. "AMD EPYC 7763 64-Core Processor"
    flags: list[str]  # the KEY_FLAGS it has, in KEY_FLAGS order
    isa: Isa


def isa_class(flags: set[str] | list[str]) -> Isa:
    has = set(flags)
    if {"amx_tile", "amx_int8"} <= has:
        return Isa.AMX
    if {"avx512f", "avx512bw", "avx512vl"} <= has:
        return Isa.AVX512_VNNI if "avx512_vnni" in has else Isa.AVX512
    if {"avx2", "fma"} <= has:
        return Isa.AVX_VNNI if "avx_vnni" in has else Isa.AVX2
    return Isa.BASELINE


def parse_cpuinfo(text: str) -> tuple[str, list[str]]:
    """(model name, every flag) of the first processor in the text of /proc/cpuinfo."""
    model: str | None = None
    flags: list[str] = []
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and model is None:
            model = value.strip()
        elif key.strip() == "flags" and not flags:
            flags = value.split()
    return model or platform.processor() or "unknown", flags


def cpu_features(cpuinfo: str) -> CpuFeatures:
    model, flags = parse_cpuinfo(cpuinfo)
    have = set(flags)
    return CpuFeatures(model=model, flags=[f for f in KEY_FLAGS if f in have], isa=isa_class(have))


@functools.cache
def host_cpu() -> CpuFeatures:
    """This machine's CPU, read once per process."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    return cpu_features(text)

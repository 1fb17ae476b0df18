"""Who competes: the PyTorch baseline, ORTModel on every Optimum folder, our engine on every folder,
the HTTP service on the first folder, and llama-server on the GGUF when --llama-server is given. Built from
the model folders' manifests, before anything runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from app.engine.manifest import GraphKind, Manifest

if TYPE_CHECKING:
    from benchmarks.llama_server import LlamaServer

PYTORCH = "pytorch"
ORTMODEL = "ortmodel"
ENGINE = "engine"
HTTP = "http"
LLAMA = "llama-server"
SERVED = (HTTP, LLAMA)  # the contestants driven over HTTP by benchmarks/load.py


class ContestError(Exception):
    """The model folders cannot be compared in one run; the message says why."""


@dataclass(slots=True)
class Contestant:
    id: str
    kind: str  # PYTORCH | ORTMODEL | ENGINE | HTTP | LLAMA
    label: str
    model_dir: Path | None = None
    manifest: Manifest | None = None
    skipped: str | None = None  # why it does not run, when it does not
    size_bytes: int | None = None  # the model on disk
    size_note: str = ""
    notes: list[str] = field(default_factory=list)
    llama: LlamaServer | None = None  # the binary and GGUF (LLAMA only)

    @property
    def variant(self) -> str | None:
        return self.manifest.graph_quant if self.manifest else None


def baseline_source(manifests: list[Manifest]) -> str | None:
    """The source spec for the PyTorch baseline (None: the embedded default); all folders must share it."""
    first = manifests[0].source
    for manifest in manifests[1:]:
        if manifest.source.sha256 != first.sha256:
            raise ContestError(
                f"{manifest.variant} was exported from {manifest.source.spec}, not {first.spec}: "
                "one run compares variants of one source model against its PyTorch baseline"
            )
    return None if first.kind == "embedded" else first.spec


def build_contestants(
    folders: list[tuple[Path, Manifest]], http: bool, source_size: tuple[int, str], llama: LlamaServer | None = None
) -> list[Contestant]:
    first_dir, first = folders[0]
    label = f"PyTorch fp32 generate ({first.source.name})"
    items = [Contestant(PYTORCH, PYTORCH, label, size_bytes=source_size[0], size_note=source_size[1])]
    for folder, manifest in folders:
        ort_model = _exported(ORTMODEL, "Optimum ORTModel", folder, manifest)
        if manifest.graph is not GraphKind.OPTIMUM:
            ort_model.skipped = (
                "ORTModelForCausalLM cannot run a GroupQueryAttention graph (its past and present KV share one "
                "max-length buffer); export `--graph optimum` for this contestant"
            )
        items.append(ort_model)
    for folder, manifest in folders:
        items.append(_exported(ENGINE, "engine", folder, manifest))
    served = _exported(HTTP, "HTTP", first_dir, first)
    if not http:
        served.skipped = "not run: --no-http was given"
    items.append(served)
    if llama is not None:
        label = f"llama-server {llama.build} ({llama.gguf.name})"
        size = llama.gguf.stat().st_size
        items.append(
            Contestant(LLAMA, LLAMA, label, size_bytes=size, size_note=f"{llama.gguf.name}, as is", llama=llama)
        )
    return items


def _exported(kind: str, label: str, folder: Path, manifest: Manifest) -> Contestant:
    variant = manifest.graph_quant
    return Contestant(
        f"{kind}:{variant}", kind, f"{label} {variant}", folder, manifest,
        size_bytes=manifest.size_bytes, size_note="the exported folder (graph, weights, tokenizer)",
    )  # fmt: skip

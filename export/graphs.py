"""Build the fp32 ONNX decoder graph: Optimum's portable export or the GroupQueryAttention builder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app.engine.manifest import GraphKind
from export.errors import ExportError

# onnxruntime-genai's model builder writes GroupQueryAttention with a shared past/present buffer,
# rotary inside the attention op, packed QKV and fused RMSNorm, with the I/O names our runner binds.
GQA_ARCHITECTURES = (
    "GemmaForCausalLM",
    "Gemma2ForCausalLM",
    "GraniteForCausalLM",
    "LlamaForCausalLM",
    "MistralForCausalLM",
    "NemotronForCausalLM",
    "OlmoForCausalLM",
    "Phi3ForCausalLM",
    "Qwen2ForCausalLM",
    "Qwen3ForCausalLM",
    "SmolLM3ForCausalLM",
)

# Decoder-only model types whose Optimum export keeps the [batch, kv_heads, seq, head_dim] KV layout.
_OPTIMUM_DECODERS = (
    "arcee",
    "codegen",
    "cohere",
    "gemma",
    "gemma2",
    "gemma3_text",
    "glm",
    "gpt2",
    "gpt_neo",
    "gpt_neox",
    "gptj",
    "granite",
    "helium",
    "internlm2",
    "llama",
    "mistral",
    "nemotron",
    "olmo",
    "olmo2",
    "opt",
    "phi",
    "phi3",
    "qwen2",
    "qwen3",
    "smollm3",
    "stablelm",
)


def optimum_model_types() -> list[str]:
    import optimum.exporters.onnx.model_configs  # noqa: F401  (registers the ONNX configs)
    from optimum.exporters.tasks import TasksManager

    known = TasksManager._SUPPORTED_MODEL_TYPE  # the table behind `optimum-cli export onnx`
    return sorted(t for t in _OPTIMUM_DECODERS if "text-generation-with-past" in known.get(t, {}).get("onnx", {}))


def architecture(config: Any) -> str:
    """config.architectures[0], or the causal-LM class of its model_type (GGUF configs carry none)."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    declared = getattr(config, "architectures", None)
    if declared:
        return declared[0]
    return MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.get(getattr(config, "model_type", ""), "unknown")


def pick_graph(requested: str, config: Any) -> GraphKind:
    arch = architecture(config)
    model_type = getattr(config, "model_type", "?")
    gqa_ok = arch in GQA_ARCHITECTURES
    optimum_ok = model_type in optimum_model_types()
    if requested == "auto":
        if gqa_ok:
            return GraphKind.GQA
        if optimum_ok:
            return GraphKind.OPTIMUM
        raise ExportError(
            f"unsupported architecture {arch} (model_type {model_type})",
            hint=f"--graph gqa supports {', '.join(GQA_ARCHITECTURES)}; "
            f"--graph optimum supports model types {', '.join(optimum_model_types())}",
        )
    graph = GraphKind(requested)
    if graph is GraphKind.GQA and not gqa_ok:
        raise ExportError(
            f"--graph gqa does not support architecture {arch}",
            hint=f"supported: {', '.join(GQA_ARCHITECTURES)}; or use --graph optimum",
        )
    if graph is GraphKind.OPTIMUM and not optimum_ok:
        raise ExportError(
            f"--graph optimum does not support model type {model_type}",
            hint=f"supported: {', '.join(optimum_model_types())}",
        )
    return graph


def build_gqa(hf_dir: Path, work: Path) -> Path:
    from onnxruntime_genai.models.builder import create_model

    out = work / "gqa"
    create_model(
        None, str(hf_dir), str(out), "fp32", "cpu", str(work / "builder-cache"), hf_token="false", hf_remote=False
    )
    return out / "model.onnx"


def build_optimum(model: Any, work: Path) -> Path:
    from optimum.exporters.onnx import onnx_export_from_model

    out = work / "optimum"
    onnx_export_from_model(model, out, task="text-generation-with-past", do_validation=False)
    return out / "model.onnx"

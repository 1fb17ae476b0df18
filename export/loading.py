"""Load the PyTorch reference model, its tokenizer and config from a resolved Source."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.engine.manifest import ModelShape
from export.errors import ExportError
from export.sources import Source, SourceKind


@dataclass
class Reference:
    model: Any  # transformers PreTrainedModel, fp32, eval mode
    tokenizer: Any  # transformers PreTrainedTokenizerFast
    config: Any
    add_bos_token: bool


def load_config(source: Source) -> Any:
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(source.location, **_kwargs(source))
    except (OSError, ValueError) as exc:
        if source.kind is SourceKind.HUB:
            raise ExportError(
                f"could not load {source.spec!r} from the Hugging Face Hub: {_first_line(exc)}",
                hint="check the id and your network, or pass a local model folder or GGUF file",
            ) from exc
        raise ExportError(f"could not read the model config of {source.spec}: {_first_line(exc)}") from exc


def load_reference(source: Source, config: Any) -> Reference:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs = _kwargs(source)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source.location, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(source.location, dtype=torch.float32, **kwargs)
    except (OSError, ValueError) as exc:
        raise ExportError(f"could not load the model from {source.spec}: {_first_line(exc)}") from exc
    model.eval()
    return Reference(model, tokenizer, config, _add_bos(source, tokenizer))


def write_hf_folder(ref: Reference, folder: Path) -> Path:
    """Save weights + config where the graph builders can read them (GGUF and hub sources)."""
    folder.mkdir(parents=True, exist_ok=True)
    ref.model.save_pretrained(folder, safe_serialization=True)
    ref.tokenizer.save_pretrained(folder)
    return folder


def model_shape(ref: Reference) -> ModelShape:
    config = ref.config
    heads = config.num_attention_heads
    gen = ref.model.generation_config
    eos: set[int] = set()
    for value in (gen.eos_token_id, config.eos_token_id):
        if isinstance(value, int):
            eos.add(value)
        elif value:
            eos.update(int(v) for v in value)
    return ModelShape(
        architecture=type(ref.model).__name__,
        model_type=config.model_type,
        num_layers=config.num_hidden_layers,
        num_attention_heads=heads,
        num_kv_heads=getattr(config, "num_key_value_heads", None) or heads,
        head_dim=getattr(config, "head_dim", None) or config.hidden_size // heads,
        hidden_size=config.hidden_size,
        vocab_size=config.vocab_size,
        context_length=getattr(config, "max_position_embeddings", 2048),
        bos_token_id=gen.bos_token_id if gen.bos_token_id is not None else config.bos_token_id,
        eos_token_ids=sorted(eos),
        pad_token_id=gen.pad_token_id if gen.pad_token_id is not None else config.pad_token_id,
        add_bos_token=ref.add_bos_token,
    )


def _kwargs(source: Source) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if source.gguf_file:
        kwargs["gguf_file"] = source.gguf_file
    if source.kind is not SourceKind.HUB:
        kwargs["local_files_only"] = True
    return kwargs


def _add_bos(source: Source, tokenizer: Any) -> bool:
    """Whether a plain (non-chat) prompt starts with BOS. GGUF metadata is the authority for GGUF files."""
    if source.gguf_file:
        from gguf import GGUFReader

        field = GGUFReader(os.path.join(source.location, source.gguf_file)).fields.get("tokenizer.ggml.add_bos_token")
        return bool(field.contents()) if field is not None else False
    return bool(getattr(tokenizer, "add_bos_token", False))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__

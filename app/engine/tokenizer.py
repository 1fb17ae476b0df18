"""Tokenizer and chat template from an exported model folder, without transformers.

`tokenizers` reads tokenizer.json; the chat template is rendered with Jinja2 in a sandbox configured
as transformers does (trim_blocks, lstrip_blocks, loop controls, raise_exception, tojson).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import TemplateError
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment
from tokenizers import Tokenizer

from app.engine.errors import InvalidParams
from app.engine.manifest import ModelShape


class ChatTemplateError(InvalidParams):
    def __init__(self, message: str) -> None:
        super().__init__("messages", message)


class TextTokenizer:
    def __init__(self, folder: Path, shape: ModelShape) -> None:
        self._tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.vocab_size = shape.vocab_size
        self.add_bos = shape.add_bos_token
        config = _read_json(folder / "tokenizer_config.json")
        self.bos_token = _token_text(config.get("bos_token"))
        self.eos_token = _token_text(config.get("eos_token"))
        template_file = folder / "chat_template.jinja"
        source = template_file.read_text(encoding="utf-8") if template_file.is_file() else config.get("chat_template")
        self._template = _compile(source) if isinstance(source, str) else None
        # a template that reads `tools` renders tool specs, calls and results itself (else see app/tools.py)
        self.knows_tools = isinstance(source, str) and "tools" in source

    @property
    def has_chat_template(self) -> bool:
        return self._template is not None

    def encode(self, text: str, add_special_tokens: bool | None = None) -> list[int]:
        special = self.add_bos if add_special_tokens is None else add_special_tokens
        return self._tok.encode(text, add_special_tokens=special).ids

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        return self._tok.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def token_text(self, token_id: int) -> str:
        """The text one token stands for, as OpenAI's logprobs report it."""
        return self._tok.decode([token_id], skip_special_tokens=False)

    def render_chat(
        self, messages: list[dict[str, Any]], add_generation_prompt: bool = True, tools: list[Any] | None = None
    ) -> str:
        if self._template is None:
            raise ChatTemplateError("this model has no chat template; use the completions route instead")
        try:
            return self._template.render(
                messages=messages,
                add_generation_prompt=add_generation_prompt,
                bos_token=self.bos_token,
                eos_token=self.eos_token,
                tools=tools,
            )
        except TemplateError as exc:
            raise ChatTemplateError(f"the chat template rejected the messages: {exc}") from exc

    def encode_chat(
        self, messages: list[dict[str, Any]], add_generation_prompt: bool = True, tools: list[Any] | None = None
    ) -> list[int]:
        # the template writes every special token itself; adding BOS again would double it
        return self.encode(self.render_chat(messages, add_generation_prompt, tools), add_special_tokens=False)


def _raise_exception(message: str) -> None:
    raise TemplateError(message)


def _compile(source: str):
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = lambda value, indent=None: json.dumps(value, ensure_ascii=False, indent=indent)
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env.from_string(source)


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _token_text(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("content", ""))
    return value or ""

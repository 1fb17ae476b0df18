"""response_format, text.format, logit_bias and the native grammar fields: from the wire to engine parameters.

Grammars compile off the event loop and the engine thread (a worker thread); a grammar that does not
compile is a 400 naming the field, before the request takes a slot.
"""

from __future__ import annotations

import asyncio
import json

from app.engine.engine import Engine
from app.engine.errors import InvalidParams
from app.engine.params import Grammar, GrammarKind
from app.errors import ApiError, from_engine
from app.metrics import Metrics
from app.schemas import GenerateRequest, ResponseFormat
from app.schemas_responses import TextFormat

ANY_JSON_OBJECT = '{"type": "object"}'


def response_format_grammar(fmt: ResponseFormat | None) -> Grammar | None:
    """None for text; a JSON-schema grammar for json_object and json_schema."""
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return Grammar(GrammarKind.JSON_SCHEMA, ANY_JSON_OBJECT, "response_format")
    if fmt.json_schema is None or fmt.json_schema.schema is None:
        raise ApiError(
            400,
            'response_format: type json_schema needs json_schema.schema, e.g. {"type": "json_schema", '
            '"json_schema": {"name": "answer", "schema": {"type": "object", ...}}}',
            param="response_format.json_schema.schema",
        )
    return Grammar(GrammarKind.JSON_SCHEMA, _json(fmt.json_schema.schema), "response_format.json_schema.schema")


def text_format_grammar(fmt: TextFormat | None) -> Grammar | None:
    """The Responses API's text.format (flat: name, schema, strict): the same grammars as response_format."""
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return Grammar(GrammarKind.JSON_SCHEMA, ANY_JSON_OBJECT, "text.format")
    if fmt.schema is None:
        raise ApiError(
            400,
            'text.format: type json_schema needs schema, e.g. {"type": "json_schema", "name": "answer", '
            '"schema": {"type": "object", ...}}',
            param="text.format.schema",
        )
    return Grammar(GrammarKind.JSON_SCHEMA, _json(fmt.schema), "text.format.schema")


def format_label(fmt: ResponseFormat | TextFormat | None) -> str:
    return fmt.type if fmt is not None else ""


def native_grammar(data: GenerateRequest) -> Grammar | None:
    """/v1/generate's json_schema, regex or grammar field (at most one)."""
    given = [
        (name, kind, value)
        for name, kind, value in (
            ("json_schema", GrammarKind.JSON_SCHEMA, data.json_schema),
            ("regex", GrammarKind.REGEX, data.regex),
            ("grammar", GrammarKind.LARK, data.grammar),
        )
        if value is not None
    ]
    if len(given) > 1:
        names = ", ".join(name for name, _, _ in given)
        raise ApiError(400, f"give at most one of json_schema, regex and grammar (got {names})", param=given[1][0])
    if not given:
        return None
    name, kind, value = given[0]
    return Grammar(kind, _json(value) if isinstance(value, dict) else value, name)


def logit_bias(raw: dict[str, float] | None, vocab_size: int) -> tuple[tuple[int, float], ...]:
    """OpenAI's {"token id": bias} -> ((id, bias), ...), checked: ids in the vocabulary, biases in [-100, 100]."""
    if not raw:
        return ()
    out = []
    for key, bias in raw.items():
        try:
            token = int(key)
        except ValueError:
            raise ApiError(400, f"logit_bias: keys are token ids, got {key!r}", param="logit_bias") from None
        if not 0 <= token < vocab_size:
            raise ApiError(
                400, f"logit_bias: token id {token} is outside the vocabulary [0, {vocab_size})", param="logit_bias"
            )
        if not -100.0 <= bias <= 100.0:
            raise ApiError(400, f"logit_bias: bias {bias} for token {token} is outside [-100, 100]", param="logit_bias")
        out.append((token, float(bias)))
    return tuple(out)


async def compile_grammar(engine: Engine, metrics: Metrics | None, grammar: Grammar | None, label: str = "") -> None:
    """Compile (or find in the cache) on a worker thread; 400 naming the field with the compiler's message.
    `label` is the metrics kind (json_object, json_schema, regex, grammar, tools); the grammar's kind by default."""
    if grammar is None:
        return
    try:
        await asyncio.to_thread(engine.grammars.compile, grammar)
    except InvalidParams as exc:
        raise from_engine(exc) from exc
    if metrics is not None:  # None: a check only (a tool's parameters), not a constrained request
        metrics.constrained.labels(kind=label or str(grammar.kind)).inc()


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)

"""Tool calling: tools into the prompt, a grammar for the calls, and calls parsed out of the text
(whole or streamed).

The call syntax is `<tool_call>{"name": ..., "arguments": {...}}</tool_call>`, one per call, separated by a
newline (the Hermes / SmolLM2 convention). A chat template that knows about tools gets `tools` and the
structured history; otherwise (SmolLM2's template) the generic prompt below lists the tools in the system
message, assistant calls are written back in the call syntax and tool results keep the `tool` role.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

import msgspec

from app import structured
from app.engine.engine import Engine
from app.engine.grammar import JSON_LAYOUT
from app.engine.params import Grammar, GrammarKind
from app.engine.stopping import FinishReason
from app.engine.tokenizer import TextTokenizer
from app.errors import ApiError
from app.metrics import Metrics
from app.routes.messages import CLOSE, OPEN, to_template_messages
from app.schemas import (
    ChatMessage,
    FunctionCall,
    FunctionCallDelta,
    NamedToolChoice,
    Tool,
    ToolCall,
    ToolCallDelta,
)

_HEADER = re.compile(r'\{"name": "([^"]*)", "arguments": ')
_ANY_OBJECT = {"type": "object"}

GENERIC_PROMPT = """You can call these tools (JSON schemas of their arguments):
{tools}
{rule}
To call a tool, answer with exactly <tool_call>{{"name": "<tool name>", "arguments": {{...}}}}</tool_call>{several}
Results come back in messages from the tool role."""


@dataclass(frozen=True, slots=True)
class ToolPlan:
    """What a chat request's tools and tool_choice mean for this generation."""

    tools: tuple[Tool, ...]
    choice: str  # none, auto, required or the one function's name
    parallel: bool

    @property
    def active(self) -> bool:
        return bool(self.tools) and self.choice != "none"


def plan(tools: list[Tool] | None, choice: str | NamedToolChoice | None, parallel: bool) -> ToolPlan:
    """Check tools against tool_choice (400 naming the field)."""
    if not tools:
        if choice not in (None, "none"):
            raise ApiError(400, "tool_choice needs tools: list the functions the model may call", param="tool_choice")
        return ToolPlan((), "none", parallel)
    names = [t.function.name for t in tools]
    if len(set(names)) != len(names):
        raise ApiError(400, "tools: function names must be unique", param="tools")
    if isinstance(choice, NamedToolChoice):
        if choice.function.name not in names:
            raise ApiError(
                400,
                f"tool_choice names {choice.function.name!r}, which is not in tools ({', '.join(names)})",
                param="tool_choice",
            )
        return ToolPlan(tuple(tools), choice.function.name, parallel)
    return ToolPlan(tuple(tools), choice or "auto", parallel)


def parameter_grammars(tools: tuple[Tool, ...]) -> list[Grammar]:
    """Each function's parameters as its own grammar, so a bad schema is blamed on its own field."""
    return [
        Grammar(GrammarKind.JSON_SCHEMA, json.dumps(t.function.parameters), f"tools[{i}].function.parameters")
        for i, t in enumerate(tools)
        if t.function.parameters is not None
    ]


def call_grammar(p: ToolPlan) -> Grammar | None:
    """Lark grammar for the answer: calls only (required, named), or text not starting with `<` or calls (auto)."""
    if not p.active:
        return None
    tools = [t for t in p.tools if p.choice in ("auto", "required") or t.function.name == p.choice]
    call_schema = {
        "anyOf": [
            {
                "type": "object",
                "properties": {"name": {"const": t.function.name}, "arguments": t.function.parameters or _ANY_OBJECT},
                "required": ["name", "arguments"],
                "additionalProperties": False,
            }
            for t in tools
        ],
        "x-guidance": JSON_LAYOUT,
    }
    # parallel: up to one call per offered function (a small model otherwise repeats a call until max_tokens)
    most = len(tools) if p.parallel else 1
    calls = " | ".join(' "\\n" '.join(["call"] * n) for n in range(1, most + 1))
    lines = [
        "start: TEXT | calls" if p.choice == "auto" else "start: calls",
        f"calls: {calls}",
        f'call: "{OPEN}" %json {json.dumps(call_schema, ensure_ascii=False)} "{CLOSE}"',
    ]
    if p.choice == "auto":
        lines.append("TEXT: /[^<](.|\\n)*/")
    return Grammar(GrammarKind.LARK, "\n".join(lines) + "\n", "tools")


def prompt_messages(messages: list[dict[str, Any]], p: ToolPlan, template_knows_tools: bool) -> list[dict[str, Any]]:
    """The template's messages, with the generic tool prompt in the system message when the template
    has no tool support of its own (and tools are on)."""
    if template_knows_tools or not p.active:
        return messages
    specs = "\n".join(
        json.dumps(
            {"name": t.function.name, "description": t.function.description or "", "parameters": t.function.parameters},
            ensure_ascii=False,
        )
        for t in p.tools
    )
    rule = {
        "auto": "Answer in plain text, or call a tool when one helps.",
        "required": "You must call a tool.",
    }.get(p.choice, f"You must call the tool {p.choice}.")
    several = " (one per call, one call per line)." if p.parallel else " (one call)."
    text = GENERIC_PROMPT.format(tools=specs, rule=rule, several=several)
    if messages and messages[0]["role"] == "system":
        return [{**messages[0], "content": f"{messages[0]['content']}\n\n{text}"}, *messages[1:]]
    return [{"role": "system", "content": text}, *messages]


def chat_prompt_ids(tokenizer: TextTokenizer, messages: list[ChatMessage], p: ToolPlan) -> list[int]:
    """The chat request's prompt: its messages (tool history included) and, when tools are on, the tools."""
    native = tokenizer.knows_tools
    rendered = prompt_messages(to_template_messages(messages, native), p, native)
    specs = [msgspec.to_builtins(t) for t in p.tools] if native and p.active else None
    return tokenizer.encode_chat(rendered, tools=specs)


async def check(engine: Engine, p: ToolPlan) -> Grammar | None:
    """Compile every function's parameters, then the call grammar; 400 naming the field that fails."""
    for grammar in parameter_grammars(p.tools):
        await structured.compile_grammar(engine, None, grammar)
    return call_grammar(p)


async def output_grammar(
    engine: Engine, metrics: Metrics, p: ToolPlan, fmt: Grammar | None, label: str, fmt_param: str
) -> Grammar | None:
    """The one grammar of a chat-path request, compiled: the call grammar when tools are on, else the output
    format's (`fmt`, from response_format or text.format); both at once is a 400 naming `fmt_param`."""
    grammar = fmt
    if p.active:
        if fmt is not None:
            raise ApiError(400, f"{fmt_param} cannot be combined with tools (use tool_choice none)", param=fmt_param)
        grammar, label = await check(engine, p), "tools"
    await structured.compile_grammar(engine, metrics, grammar, label)
    return grammar


def answer(
    text: str, finish_reason: FinishReason | None, p: ToolPlan
) -> tuple[str | None, list[ToolCall] | None, FinishReason | None]:
    """(content, tool_calls, finish_reason) of a finished choice."""
    if not p.active:
        return text, None, finish_reason
    content, calls = parse_whole(text)
    return content, calls or None, finish_with(calls, finish_reason)


def finish_with(calls: list[ToolCall], finish_reason: FinishReason | None) -> FinishReason | None:
    return FinishReason.TOOL_CALLS if calls and finish_reason is FinishReason.STOP else finish_reason


@dataclass
class ToolCallParser:
    """Splits generated text into content and calls, incrementally: `feed` each new piece, `flush` at the end.
    Each returns (content piece, tool-call deltas) in OpenAI's streaming shape; `calls` holds whole calls."""

    buffer: str = ""
    done: int = 0  # buffer[:done] is consumed
    in_call: bool = False
    header: re.Match[str] | None = None
    args_sent: int = 0  # characters of the current call's arguments already emitted
    calls: list[ToolCall] = field(default_factory=list)

    def feed(self, text: str) -> tuple[str, list[ToolCallDelta]]:
        self.buffer += text
        content, deltas = "", []
        while True:
            if not self.in_call:
                at = self.buffer.find(OPEN, self.done)
                if at < 0:
                    safe = len(self.buffer) - _partial_suffix(self.buffer, OPEN, self.done)
                    if self.calls and not self.buffer[self.done : safe].strip():
                        return content, deltas  # the newline between two calls is not content
                    content += self.buffer[self.done : safe]
                    self.done = safe
                    return content, deltas
                if not (self.calls and not self.buffer[self.done : at].strip()):
                    content += self.buffer[self.done : at]
                self.done, self.in_call, self.header, self.args_sent = at + len(OPEN), True, None, 0
            if not self._advance_call(deltas):
                return content, deltas

    def flush(self) -> tuple[str, list[ToolCallDelta]]:
        """The rest: a half-written call (length limit) keeps what it has."""
        if self.in_call:
            deltas: list[ToolCallDelta] = []
            if self.header is not None:
                rest = self.buffer[self.header.end() + self.done + self.args_sent :]
                if rest:
                    deltas.append(ToolCallDelta(index=len(self.calls) - 1, function=FunctionCallDelta(arguments=rest)))
                    self._extend_last(rest)
            self.done = len(self.buffer)
            return "", deltas
        rest = self.buffer[self.done :]
        self.done = len(self.buffer)
        return ("" if self.calls and not rest.strip() else rest), []

    def _advance_call(self, deltas: list[ToolCallDelta]) -> bool:
        """Emit what is safe of the current call; True when the call closed (look for more)."""
        body = self.buffer[self.done :]
        if self.header is None:
            self.header = _HEADER.match(body)
            if self.header is None:
                return False
            call = ToolCall(
                id=f"call_{uuid.uuid4().hex[:24]}", function=FunctionCall(name=self.header[1], arguments="")
            )
            self.calls.append(call)
            deltas.append(
                ToolCallDelta(
                    index=len(self.calls) - 1,
                    id=call.id,
                    type="function",
                    function=FunctionCallDelta(name=call.function.name, arguments=""),
                )
            )
        args = body[self.header.end() :]
        end = args.find("}" + CLOSE)
        closed = end >= 0
        safe = end if closed else len(args) - _partial_suffix(args, "}" + CLOSE, 0)
        piece = args[self.args_sent : safe]
        if piece:
            deltas.append(ToolCallDelta(index=len(self.calls) - 1, function=FunctionCallDelta(arguments=piece)))
            self._extend_last(piece)
            self.args_sent = safe
        if not closed:
            return False
        self.done += self.header.end() + end + len("}" + CLOSE)
        self.in_call = False
        return True

    def _extend_last(self, piece: str) -> None:
        self.calls[-1].function.arguments += piece


def stream_pieces(parser: ToolCallParser, text: str, finished: bool) -> tuple[str, list[ToolCallDelta]]:
    content, deltas = parser.feed(text)
    if finished:
        rest, more = parser.flush()
        content, deltas = content + rest, deltas + more
    return content, deltas


def parse_whole(text: str) -> tuple[str | None, list[ToolCall]]:
    """A finished answer -> (content or None, calls)."""
    parser = ToolCallParser()
    content, _ = parser.feed(text)
    rest, _ = parser.flush()
    content += rest
    return (content or None) if parser.calls else content, parser.calls


def _partial_suffix(text: str, marker: str, start: int) -> int:
    """Length of the longest end of text[start:] that could begin `marker`."""
    for n in range(min(len(marker) - 1, len(text) - start), 0, -1):
        if marker.startswith(text[len(text) - n :]):
            return n
    return 0

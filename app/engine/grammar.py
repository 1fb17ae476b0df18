"""Constrained decoding with llguidance: grammars compiled once per request against the model's tokenizer,
one matcher per sequence, and the bitmasks of a whole batch filled in one call that releases the GIL.

`GrammarCompiler.compile` is slow-ish (milliseconds, more for big schemas) and runs off the engine thread;
everything the engine thread calls (`matcher`, `allows`, `advance`, the mask fills) is cheap.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import llguidance
import llguidance.numpy as llg_numpy
import numpy as np

from app.engine.errors import InvalidParams
from app.engine.params import Grammar, GrammarKind

# compact JSON with the spaces OpenAI's own answers use: `{"a": 1, "b": [2, 3]}`; a fixed layout keeps small
# models from wandering into endless whitespace
JSON_LAYOUT = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}
_CACHE_SIZE = 256


def to_llguidance(grammar: Grammar) -> str:
    """The llguidance grammar text for `grammar` (not yet checked)."""
    if grammar.kind is GrammarKind.JSON_SCHEMA:
        try:
            return llguidance.LLMatcher.grammar_from_json_schema(grammar.source, defaults=JSON_LAYOUT)
        except ValueError as exc:
            raise InvalidParams(grammar.field, f"not a JSON schema: {exc}") from exc
    if grammar.kind is GrammarKind.REGEX:
        return llguidance.LLMatcher.grammar_from_regex(grammar.source)
    return llguidance.LLMatcher.grammar_from_lark(grammar.source)


class GrammarCompiler:
    """One per model: the llguidance tokenizer and an LRU of checked grammars (same schema, no recompile).

    `tokenizer` may be a function that builds it: it is then built on the first grammar, not at load
    (SmolLM2's holds ~40 MB that a server without constrained requests never needs)."""

    def __init__(
        self, tokenizer: llguidance.LLTokenizer | Callable[[], llguidance.LLTokenizer], vocab_size: int = 0
    ) -> None:
        self._tokenizer = tokenizer if isinstance(tokenizer, llguidance.LLTokenizer) else None
        self._make_tokenizer = tokenizer if self._tokenizer is None else None
        self.vocab_size = vocab_size or self.tokenizer.vocab_size
        self._compiled: OrderedDict[Grammar, llguidance.LLMatcher] = OrderedDict()  # never advanced: copied
        self._lock = threading.Lock()
        self.on_compiled = None  # optional callable (kind, seconds), set by the metrics layer

    @classmethod
    def from_tokenizer_json(cls, path: Path, vocab_size: int, eos_token_ids: tuple[int, ...]) -> GrammarCompiler:
        """The compiler for a model directory's `tokenizer.json`; its tokenizer is read on the first grammar."""
        eos = list(eos_token_ids)
        return cls(
            lambda: llguidance.LLTokenizer(_byte_level_json(path), n_vocab=vocab_size, eos_token=eos), vocab_size
        )

    @property
    def tokenizer(self) -> llguidance.LLTokenizer:
        if self._tokenizer is None:
            with self._lock:
                if self._tokenizer is None and self._make_tokenizer is not None:
                    self._tokenizer = self._make_tokenizer()
        assert self._tokenizer is not None
        return self._tokenizer

    def compile(self, grammar: Grammar) -> llguidance.LLMatcher:
        """Build `grammar`'s matcher and remember it; raises InvalidParams with the compiler's message.
        Thread-safe; llguidance releases the GIL while it builds."""
        with self._lock:
            if grammar in self._compiled:
                self._compiled.move_to_end(grammar)
                return self._compiled[grammar]
        start = time.perf_counter()
        template = llguidance.LLMatcher(self.tokenizer, to_llguidance(grammar), log_level=0)
        if template.is_error():
            raise InvalidParams(grammar.field, _one_line(template.get_error()))
        if self.on_compiled is not None:
            self.on_compiled(str(grammar.kind), time.perf_counter() - start)
        with self._lock:
            self._compiled[grammar] = template
            while len(self._compiled) > _CACHE_SIZE:
                self._compiled.popitem(last=False)
        return template

    def matcher(self, grammar: Grammar) -> llguidance.LLMatcher:
        """A fresh matcher for one sequence: a copy of the compiled one (compiles first if nobody did)."""
        return self.compile(grammar).deep_copy()


@dataclass(frozen=True, slots=True)
class StepMasks:
    """The bitmasks of one step's constrained rows."""

    rows: np.ndarray  # [k] batch index of each constrained row, ascending
    masks: np.ndarray  # [k, ceil(V/32)] int32, row j belongs to rows[j]
    seconds: float  # time the fill took (on the mask thread)


class MaskFiller:
    """Bitmasks for the constrained rows of one step: int32 [rows, ceil(V/32)], bit t set = token t allowed.

    `start` fills them on a thread of its own while the engine thread is inside the ORT call of the same step
    (both release the GIL): the tokens the matchers advanced on are known before that call. `fill_rows`
    fills them at once, for the greedy rows whose favourite token the grammar refused."""

    def __init__(self, vocab_size: int, threads: int = 1) -> None:
        self.vocab_size = vocab_size
        self._executor = llguidance.LLExecutor(threads)
        self._buffer = llg_numpy.allocate_token_bitmask(1, vocab_size)
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="llm-grammar-masks")

    def fill(self, matchers: list[llguidance.LLMatcher]) -> np.ndarray:
        """One GIL-free call for every matcher; row i of the result belongs to matchers[i]. The result is a view
        of a reused buffer, valid until the next fill."""
        if self._buffer.shape[0] < len(matchers):
            self._buffer = llg_numpy.allocate_token_bitmask(len(matchers), self.vocab_size)
        masks = self._buffer[: len(matchers)]  # [n, W]
        llg_numpy.fill_next_token_bitmask_par(self._executor, [(m, i) for i, m in enumerate(matchers)], masks)
        return masks

    def start(self, rows: list[int], matchers: list[llguidance.LLMatcher]) -> Future[StepMasks]:
        """Fill in the background; nobody may advance `matchers` until the result is taken."""
        return self._thread.submit(self.fill_rows, rows, matchers)

    def fill_rows(self, rows: list[int], matchers: list[llguidance.LLMatcher]) -> StepMasks:
        """The masks of `matchers`, which belong to batch rows `rows`, now."""
        start = time.perf_counter()
        masks = self.fill(matchers)
        return StepMasks(np.asarray(rows, np.intp), masks, time.perf_counter() - start)


def allows(matcher: llguidance.LLMatcher, token: int) -> bool:
    """Whether the grammar takes `token` next: one walk of its bytes, no mask (the matcher does not move). A
    complete grammar answers False even for EOS, which its mask allows: the caller then masks."""
    return matcher.validate_tokens([token]) == 1


def advance(matcher: llguidance.LLMatcher, token: int) -> str | None:
    """Feed the sampled token; the matcher's error message if it refused it (None when all is well)."""
    if matcher.consume_token(token):  # a complete grammar still takes EOS, and nothing else
        return None
    return f"the grammar matcher failed: {_first_line(matcher.get_error()) or 'token refused'}"


def _byte_level_json(path: Path) -> str:
    """tokenizer.json text as llguidance should read it. GGUF-converted byte-level BPE tokenizers carry a
    Sequence decoder (ByteFallback, Fuse, Replace, ByteLevel); llguidance then misreads `Ġ` as a literal
    character, so a byte-level pre-tokenizer gets the plain ByteLevel decoder its token bytes really use."""
    spec = json.loads(path.read_text(encoding="utf-8"))
    pre = spec.get("pre_tokenizer") or {}
    byte_level = pre.get("type") == "ByteLevel" or any(
        p.get("type") == "ByteLevel" for p in pre.get("pretokenizers", []) if isinstance(p, dict)
    )
    if byte_level and (spec.get("decoder") or {}).get("type") != "ByteLevel":
        spec["decoder"] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}
    return json.dumps(spec)


def _one_line(message: str, limit: int = 400) -> str:
    """The compiler's (multi-line) message on one line, for an error body."""
    text = " ".join(line.strip() for line in message.splitlines() if line.strip())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _first_line(message: str) -> str:
    return message.strip().splitlines()[0] if message.strip() else ""

"""A fake model runner and tokenizer with deterministic greedy output, and builders (vLLM's `create_requests`).

The fake keeps each slot's cached tokens like a KV cache would, and checks every call against them: a prefill
must start where the slot's cache ends, a decode row i must find `lengths[i]` positions in slot i, a prefix copy
or restore must land in a free slot from a source that holds that many positions. A wrong slot move, copy or
length therefore raises (the engine ends the request with an error) or changes the next token, which depends on
the whole cached context. `reference()` is the same model run on one sequence alone.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence as Ids

import llguidance
import numpy as np

from app.engine.detokenizer import IncrementalDetokenizer
from app.engine.grammar import GrammarCompiler
from app.engine.manifest import (
    GraphIO,
    GraphKind,
    GreedyCheck,
    Manifest,
    ModelShape,
    Quant,
    Recipe,
    SourceInfo,
    Thresholds,
    Validation,
)
from app.engine.params import SamplingParams
from app.engine.request import Sequence
from app.engine.stopping import StoppingCriteria

VOCAB = 32
EOS = 0
LETTERS = "abcdefghijklmnopqrstuvwxyz"


def next_token(context: Ids[int], eos_at: int | None = None) -> int:
    """The greedy token after `context`: never EOS, unless the context has reached `eos_at` tokens."""
    if eos_at is not None and len(context) >= eos_at:
        return EOS
    return 1 + sum((i + 1) * t for i, t in enumerate(context)) % (VOCAB - 1)


def logits_row(context: Ids[int], eos_at: int | None) -> np.ndarray:
    """[V]: 0 at the target, falling by one per id after it (cyclically), so the runner-up is target + 1."""
    target = next_token(context, eos_at)
    return -((np.arange(VOCAB) - target) % VOCAB).astype(np.float32)


def reference(prompt: Ids[int], n: int, eos_at: int | None = None) -> list[int]:
    """The first `n` greedy tokens for `prompt` alone, stopping after EOS."""
    context, out = list(prompt), []
    while len(out) < n and (not out or out[-1] != EOS):
        out.append(next_token(context, eos_at))
        context.append(out[-1])
    return out


def constrained_reference(prompt: list[int], chars: int) -> list[int]:
    """Greedy under the regex `[dg]{chars}`: the best of the tokens that still fit ("d", "g", "ddd"), then EOS."""
    text = FakeTokenizer().token_text
    context, out, left = list(prompt), [], chars
    while not out or out[-1] != EOS:
        allowed = [t for t in (3, 6, 29) if len(text(t)) <= left] or [EOS]
        row = logits_row(context, None)
        out.append(max(allowed, key=lambda t: row[t]))
        context.append(out[-1])
        left -= len(text(out[-1])) if out[-1] != EOS else 0
    return out


class InjectedFailure(RuntimeError):
    pass


class FakeSnapshot:
    """The prefix cache's copy of a slot's first positions (what `KvSnapshot` holds for the real runner)."""

    def __init__(self, tokens: list[int]) -> None:
        self.tokens = tokens
        self.length = len(tokens)
        self.closed = False

    def close(self) -> None:
        if self.closed:
            raise ValueError("snapshot closed twice")
        self.closed = True


class FakeRunner:
    """Implements app.engine.runner.ModelRunner. `fail_next("decode")` makes the next decode raise. Clearing
    `gate` holds every prefill and decode until it is set again; `pause_after(n)` clears it once n prefill and
    decode calls have run; `held` tells when the engine thread waits there (tests that need it mid-request)."""

    def __init__(self, max_slots: int = 5, max_len: int = 256, eos_at: int | None = None, min_rows: int = 1) -> None:
        self.max_slots = max_slots
        self.max_len = max_len
        self.min_rows = min_rows
        self.vocab_size = VOCAB
        self.kv_bytes_per_token = 1024  # 1 MB of prefix cache holds 1024 positions
        self.kv_page_tokens = 1
        self.eos_at = eos_at
        self.slots: list[list[int]] = [[] for _ in range(max_slots)]  # cached tokens per slot
        # ("prefill", slot, start, n) | ("decode", n) | ("move" | "copy", src, dst, length)
        # | ("save", slot, length) | ("restore", slot, length)
        self.calls: list[tuple] = []
        self.snapshots: list[FakeSnapshot] = []  # every one `save` made
        self.gate = threading.Event()
        self.gate.set()
        self.held = threading.Event()  # set while a call waits at the closed gate
        self._failures: set[str] = set()
        self._pause_at: int | None = None

    def fail_next(self, kind: str) -> None:
        self._failures.add(kind)

    def pause_after(self, calls: int) -> None:
        self._pause_at = calls

    def _enter(self, kind: str) -> None:
        if self._pause_at is not None and sum(c[0] in ("prefill", "decode") for c in self.calls) >= self._pause_at:
            self._pause_at = None
            self.gate.clear()
        if not self.gate.is_set():
            self.held.set()
            opened = self.gate.wait(timeout=30)
            self.held.clear()
            if not opened:
                raise TimeoutError("the test never opened the gate")
        if kind in self._failures:
            self._failures.discard(kind)
            raise InjectedFailure(f"injected {kind} failure")

    def prefill(self, slot: int, token_ids: np.ndarray, start: int) -> np.ndarray:
        self._enter("prefill")
        self.calls.append(("prefill", slot, start, len(token_ids)))
        cache = self.slots[slot]
        if len(cache) != start or start + len(token_ids) > self.max_len:
            raise ValueError(f"prefill of {len(token_ids)} at {start} into slot {slot}, which holds {len(cache)}")
        cache.extend(int(t) for t in token_ids)
        return logits_row(cache, self.eos_at)

    def decode(self, token_ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        self._enter("decode")
        self.calls.append(("decode", len(token_ids)))
        rows = []
        for slot, (token, length) in enumerate(zip(token_ids.tolist(), lengths.tolist(), strict=True)):
            cache = self.slots[slot]
            if len(cache) != length or length >= self.max_len:
                raise ValueError(f"decode at {length} in slot {slot}, which holds {len(cache)} positions")
            cache.append(token)
            rows.append(logits_row(cache, self.eos_at))
        return np.stack(rows)  # [n, V]

    def move(self, src: int, dst: int, length: int) -> None:
        self.calls.append(("move", src, dst, length))
        if self.slots[dst]:
            raise ValueError(f"move into slot {dst}, which is not free")
        self.slots[dst] = self.slots[src][:length]
        self.slots[src] = []

    def copy(self, src: int, dst: int, length: int) -> None:
        self.calls.append(("copy", src, dst, length))
        if self.slots[dst] or len(self.slots[src]) < length:
            raise ValueError(f"copy of {length} from slot {src} ({len(self.slots[src])}) into slot {dst}, not free")
        self.slots[dst] = self.slots[src][:length]

    def save(self, slot: int, length: int) -> FakeSnapshot:
        self.calls.append(("save", slot, length))
        if len(self.slots[slot]) < length:
            raise ValueError(f"save of {length} from slot {slot}, which holds {len(self.slots[slot])}")
        self.snapshots.append(FakeSnapshot(self.slots[slot][:length]))
        return self.snapshots[-1]

    def restore(self, slot: int, snapshot: FakeSnapshot, length: int) -> None:
        self.calls.append(("restore", slot, length))
        if self.slots[slot] or snapshot.closed or snapshot.length < length:
            raise ValueError(f"restore of {length} into slot {slot} from a snapshot of {snapshot.length}")
        self.slots[slot] = snapshot.tokens[:length]

    def release(self, slot: int) -> None:
        self.slots[slot] = []

    def forward_full(self, token_ids: Ids[int]) -> np.ndarray:
        ids = list(token_ids)
        return np.stack([logits_row(ids[: i + 1], self.eos_at) for i in range(len(ids))])  # [S, V]

    @property
    def free(self) -> bool:
        """No slot holds anything: every sequence released its cache."""
        return not any(self.slots)

    @property
    def held_snapshots(self) -> list[FakeSnapshot]:
        """The snapshots not closed yet (the prefix cache's entries)."""
        return [s for s in self.snapshots if not s.closed]


class FakeTokenizer:
    """Token t is a letter repeated 1 to 3 times ("b", "cc", "ddd", ...), so words end inside tokens; EOS is ""."""

    def token_text(self, token_id: int) -> str:
        return "</s>" if token_id == EOS else LETTERS[token_id % 26] * (1 + token_id % 3)

    def decode(self, ids: Ids[int], skip_special_tokens: bool = True) -> str:
        return "".join(self.token_text(t) for t in ids if not (skip_special_tokens and t == EOS))


class _FakeVocab:
    """FakeTokenizer's vocabulary as llguidance's TokenizerWrapper reads it: token bytes, EOS, an encoder."""

    eos_token_id = EOS
    bos_token_id = None

    def __init__(self) -> None:
        self.special_token_ids = [EOS]
        texts = [FakeTokenizer().token_text(t) for t in range(VOCAB)]
        self.tokens = [text.encode() for text in texts]
        self._by_text = sorted(((text, t) for t, text in enumerate(texts) if t != EOS), key=lambda p: -len(p[0]))

    def __call__(self, text: str) -> list[int]:
        """Longest match first; characters no token spells are skipped."""
        ids, i = [], 0
        while i < len(text):
            match = next(((piece, t) for piece, t in self._by_text if text.startswith(piece, i)), None)
            if match is None:
                i += 1
                continue
            ids.append(match[1])
            i += len(match[0])
        return ids


def fake_grammars() -> GrammarCompiler:
    """A GrammarCompiler over FakeTokenizer's vocabulary (so grammars mask the fake runner's logits)."""
    return GrammarCompiler(llguidance.LLTokenizer(llguidance.TokenizerWrapper(_FakeVocab()), n_vocab=VOCAB))


def create_sequence(request_id: str, prompt: Ids[int], params: SamplingParams | None = None) -> Sequence:
    params = params or SamplingParams(max_new_tokens=8)
    return Sequence(
        request_id,
        list(prompt),
        params,
        StoppingCriteria(params, [EOS]),
        IncrementalDetokenizer(FakeTokenizer().decode),
        np.random.default_rng(params.seed),
    )


def create_prompts(num: int, length: int = 6) -> list[list[int]]:
    """`num` different prompts of `length` tokens, none of them EOS."""
    return [[1 + (r * 7 + i * 3) % (VOCAB - 1) for i in range(length)] for r in range(num)]


def fake_manifest(context_length: int = 256) -> Manifest:
    shape = ModelShape(
        architecture="FakeForCausalLM",
        model_type="fake",
        num_layers=1,
        num_attention_heads=1,
        num_kv_heads=1,
        head_dim=1,
        hidden_size=1,
        vocab_size=VOCAB,
        context_length=context_length,
        bos_token_id=None,
        eos_token_ids=[EOS],
        pad_token_id=None,
    )
    greedy = GreedyCheck(prompts=0, new_tokens=0, exact_prompts=0, tie_divergences=0, matched_tokens=0, total_tokens=0)
    validation = Validation(
        passed=True,
        thresholds=Thresholds(max_ppl_increase_pct=0, min_top1_agreement=0, require_greedy_match=False),
        heldout_tokens=0,
        perplexity_torch=0,
        perplexity_onnx=0,
        perplexity_increase_pct=0,
        top1_agreement=1,
        greedy=greedy,
    )
    return Manifest(
        name="fake",
        created_at="2026-01-01T00:00:00Z",
        source=SourceInfo(kind="folder", spec="fake", name="fake", sha256=""),
        graph=GraphKind.GQA,
        quant=Quant.FP32,
        recipe=Recipe(method="none"),
        model=shape,
        io=GraphIO(onnx_file="model.onnx", opset=0, inputs=[], outputs=[]),
        versions={},
        files={},
        size_bytes=0,
        timings_s={},
        validation=validation,
    )

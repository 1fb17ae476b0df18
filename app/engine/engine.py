"""The Engine facade: submit from asyncio, decode on one dedicated thread, stream events back.

The engine thread owns the scheduler and the ORT session. The asyncio side talks to it through an
inbox (new requests) and an abort set, both behind one condition variable, and receives events
through `loop.call_soon_threadsafe`, one call per engine step.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.engine.core import EngineCore
from app.engine.detokenizer import IncrementalDetokenizer
from app.engine.errors import EngineStopped, InvalidParams, PromptTooLong, QueueFull
from app.engine.grammar import GrammarCompiler
from app.engine.manifest import GraphKind, Manifest, read_manifest
from app.engine.memory import kv_budget_tokens, trim_heap
from app.engine.params import SamplingParams
from app.engine.prefix_cache import PrefixCache
from app.engine.request import PROMPT_TAIL_FOR_DETOKENIZER, Sequence, TokenEvent
from app.engine.runner import ModelRunner, make_runner
from app.engine.scheduler import Scheduler
from app.engine.session import SessionConfig, open_session
from app.engine.stats import EngineObserver, EngineStats, NullObserver
from app.engine.stopping import FinishReason, StoppingCriteria
from app.engine.tokenizer import TextTokenizer


@dataclass(frozen=True, slots=True)
class EngineConfig:
    model_dir: Path
    threads: int = 2
    allow_spinning: bool = True
    max_running: int = 16
    max_waiting: int = 64
    max_len: int = 2048
    prefill_chunk: int = 128
    prefix_cache_mb: int = 64  # KV of ended sequences kept for reuse; 0 turns the prefix cache off
    kv_budget_mb: int = 0  # KV the running sequences may reserve (prompt + max_new_tokens each); 0: no budget


class RequestStream:
    """Async iterator over one request's TokenEvents; ends after the event with a finish_reason."""

    def __init__(self, engine: Engine, request_id: str, prompt_tokens: int) -> None:
        self.engine = engine
        self.request_id = request_id
        self.prompt_tokens = prompt_tokens
        self.queue: asyncio.Queue[TokenEvent] = asyncio.Queue()
        self.done = False

    def __aiter__(self) -> RequestStream:
        return self

    async def __anext__(self) -> TokenEvent:
        if self.done:
            raise StopAsyncIteration
        event = await self.queue.get()
        if event.finished:
            self.done = True
        return event

    def cancel(self) -> None:
        """Stop generating: the sequence leaves the batch at the next step and frees its slot."""
        if not self.done:
            self.engine.abort(self.request_id)


@dataclass(frozen=True, slots=True)
class ModelParts:
    """What an Engine runs on: loaded from `model_dir` by default; tests hand in a fake runner, tokenizer and
    grammar compiler (tests/unit/fakes.py)."""

    manifest: Manifest
    runner: ModelRunner
    tokenizer: TextTokenizer
    grammars: GrammarCompiler  # compile with `grammars.compile` off the engine thread, before submit

    @classmethod
    def load(cls, config: EngineConfig) -> ModelParts:
        manifest = read_manifest(config.model_dir)
        session = open_session(
            config.model_dir / manifest.io.onnx_file,
            SessionConfig(intra_op_threads=config.threads, allow_spinning=config.allow_spinning),
        )
        # one slot more than max_running: the sequence being prefilled sits beside a full batch
        max_len = min(config.max_len, manifest.model.context_length)
        runner = make_runner(session, manifest, config.max_running + 1, max_len)
        shape = manifest.model
        grammars = GrammarCompiler.from_tokenizer_json(
            config.model_dir / "tokenizer.json", shape.vocab_size, tuple(shape.eos_token_ids)
        )
        tokenizer = TextTokenizer(config.model_dir, shape)
        trim_heap()
        return cls(manifest, runner, tokenizer, grammars)


def _prefix_cache(config: EngineConfig, parts: ModelParts) -> PrefixCache | None:
    # the Optimum graph's KV is not in slots that can be copied cheaply: prefix caching is for gqa graphs only
    if config.prefix_cache_mb <= 0 or parts.manifest.graph is not GraphKind.GQA:
        return None
    return PrefixCache(parts.runner, config.prefix_cache_mb * 2**20 // parts.runner.kv_bytes_per_token)


class Engine:
    def __init__(
        self, config: EngineConfig, observer: EngineObserver | None = None, parts: ModelParts | None = None
    ) -> None:
        parts = parts or ModelParts.load(config)
        self.config = config
        self.manifest: Manifest = parts.manifest
        shape = self.manifest.model
        self.max_len = min(config.max_len, shape.context_length)
        self.tokenizer = parts.tokenizer
        self.eos_token_ids = tuple(shape.eos_token_ids)
        self.grammars = parts.grammars
        self.observer = observer or NullObserver()
        self.kv_budget_tokens = kv_budget_tokens(config.kv_budget_mb, parts.runner.kv_bytes_per_token)
        self._scheduler = Scheduler(
            config.max_running,
            config.prefill_chunk,
            self.kv_budget_tokens,
            parts.runner.kv_page_tokens,
            parts.runner.min_rows,
        )
        self._runner = parts.runner
        self.prefix_cache = _prefix_cache(config, parts)
        self._core = EngineCore(parts.runner, self._scheduler, self.observer, self.prefix_cache)
        self._cond = threading.Condition()
        self._inbox: deque[Sequence] = deque()
        self._aborts: set[str] = set()
        self._inflight = 0  # submitted and not yet finished, guarded by _cond
        self._streams: dict[str, RequestStream] = {}
        self._live: dict[str, Sequence] = {}  # engine thread only
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._accepting = True

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name="llm-engine", daemon=True)
        self._thread.start()

    def stop_accepting(self) -> None:
        self._accepting = False

    async def drain(self, timeout: float) -> bool:
        """Wait until in-flight requests finish (True) or `timeout` passes (False)."""
        deadline = time.monotonic() + timeout
        while self._streams and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return not self._streams

    async def shutdown(self) -> None:
        self._accepting = False
        with self._cond:
            self._stopping = True
            self._aborts.update(self._streams)
            self._cond.notify()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 10.0)

    @property
    def stats(self) -> EngineStats:
        running = len(self._scheduler.running)
        live = [*self._scheduler.running, self._scheduler.prefilling]
        prefilling = int(live[-1] is not None)
        slot_tokens = sum(s.computed for s in live if s is not None)
        return EngineStats(
            running=running,
            waiting=max(0, self._inflight - running - prefilling),
            prefilling=prefilling,
            max_running=self.config.max_running,
            max_waiting=self.config.max_waiting,
            cached_tokens=self.prefix_cache.cached_tokens if self.prefix_cache is not None else 0,
            kv_usage=min(1.0, slot_tokens / (self.kv_budget_tokens or self._runner.max_slots * self.max_len)),
        )

    # -- requests ----------------------------------------------------------------------------------

    def submit(
        self,
        prompt_ids: list[int],
        params: SamplingParams,
        request_id: str | None = None,
        deadline: float | None = None,
        cache_salt: str = "",
    ) -> RequestStream:
        """Queue one request; raises InvalidParams, PromptTooLong, QueueFull or EngineStopped at once."""
        if not self._accepting or self._loop is None:
            raise EngineStopped()
        params.validate(self.manifest.model.vocab_size)
        if not prompt_ids:
            raise InvalidParams("prompt", "must not be empty")
        if len(prompt_ids) + params.max_new_tokens > self.max_len:
            raise PromptTooLong(len(prompt_ids), params.max_new_tokens, self.max_len)
        request_id = request_id or uuid.uuid4().hex
        seq = self._new_sequence(request_id, prompt_ids, params, deadline)
        seq.cache_salt = cache_salt
        stream = RequestStream(self, request_id, len(prompt_ids))
        with self._cond:
            # the batch holds max_running; beyond that, max_waiting may queue; the rest is refused at once
            if self._inflight >= self.config.max_running + self.config.max_waiting:
                raise QueueFull(max(0, self._inflight - self.config.max_running))
            self._inflight += 1
            self._streams[request_id] = stream
            self._inbox.append(seq)
            self._cond.notify()
        return stream

    def abort(self, request_id: str) -> None:
        with self._cond:
            self._aborts.add(request_id)
            self._cond.notify()

    def _new_sequence(
        self, request_id: str, prompt_ids: list[int], params: SamplingParams, deadline: float | None
    ) -> Sequence:
        vocab = self.manifest.model.vocab_size
        seq = Sequence(
            request_id=request_id,
            prompt_ids=list(prompt_ids),
            params=params,
            stopping=StoppingCriteria(params, self.eos_token_ids),
            detok=IncrementalDetokenizer(self.tokenizer.decode, prompt_ids[-PROMPT_TAIL_FOR_DETOKENIZER:]),
            rng=np.random.default_rng(params.seed),
            deadline=deadline,
        )
        if params.presence_penalty or params.frequency_penalty:
            seq.output_counts = np.zeros(vocab, np.int32)
        if params.grammar is not None:
            seq.matcher = self.grammars.matcher(params.grammar)
        if params.repetition_penalty != 1.0:
            seq.seen = np.zeros(vocab, bool)
            seq.seen[np.asarray(prompt_ids)] = True
        return seq

    # -- engine thread -----------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not (self._inbox or self._aborts or self._scheduler.busy or self._stopping):
                    self._cond.wait()
                if self._stopping and not self._scheduler.busy and not self._inbox:
                    return
                arrivals = list(self._inbox)
                self._inbox.clear()
                aborts = self._aborts
                self._aborts = set()
            events: list[TokenEvent] = []
            for seq in arrivals:
                self._live[seq.request_id] = seq
                self._scheduler.add(seq)
            self._reap(aborts, events)
            try:
                events.extend(self._core.step())
            except Exception as exc:  # a bug, not a runner failure: fail what is live, keep serving
                self._fail_all(exc, events)
            self._deliver(events)

    def _fail_all(self, exc: Exception, events: list[TokenEvent]) -> None:
        error = f"internal engine error: {type(exc).__name__}: {exc}"
        for seq in list(self._live.values()):
            self._core.finish(seq, FinishReason.ERROR, events, error=error)

    def _reap(self, aborts: set[str], events: list[TokenEvent]) -> None:
        """Cancelled and timed-out sequences leave before the step that would have run them."""
        now = time.monotonic()
        for request_id, seq in list(self._live.items()):
            if request_id in aborts:
                reason = FinishReason.ABORT
            elif seq.deadline is not None and now >= seq.deadline:
                reason = FinishReason.TIMEOUT
            else:
                continue
            self._core.finish(seq, reason, events)

    def _deliver(self, events: list[TokenEvent]) -> None:
        if not events or self._loop is None:
            return
        finished = 0
        for event in events:
            if event.finished:
                self._live.pop(event.request_id, None)
                finished += 1
        if finished:
            with self._cond:
                self._inflight -= finished
        self._loop.call_soon_threadsafe(self._dispatch, events)

    def _dispatch(self, events: list[TokenEvent]) -> None:
        """On the event loop: hand each event to its stream."""
        for event in events:
            stream = self._streams.get(event.request_id)
            if stream is None:
                continue
            stream.queue.put_nowait(event)
            if event.finished:
                del self._streams[event.request_id]

"""One engine step: schedule -> run -> sample -> postprocess. Runs on the engine thread only."""

from __future__ import annotations

import time
from concurrent.futures import Future

import numpy as np

from app.engine import sampler
from app.engine.errors import EngineFailed
from app.engine.grammar import MaskFiller, StepMasks, advance, allows
from app.engine.prefix_cache import PrefixCache
from app.engine.request import Sequence, TokenEvent, TokenLogprob
from app.engine.runner import ModelRunner
from app.engine.scheduler import PrefillChunk, Scheduler
from app.engine.stats import EngineObserver
from app.engine.stopping import FinishReason, find_stop, holdback


class EngineCore:
    def __init__(
        self,
        runner: ModelRunner,
        scheduler: Scheduler,
        observer: EngineObserver,
        prefix_cache: PrefixCache | None = None,
    ) -> None:
        self.runner = runner
        self.scheduler = scheduler
        self.observer = observer
        self.vocab_size = runner.vocab_size
        self._masks: MaskFiller | None = None  # made on the first constrained step
        self.prefix_cache = prefix_cache
        if prefix_cache is not None:
            scheduler.on_admit = self._reuse_prefix

    def step(self) -> list[TokenEvent]:
        events: list[TokenEvent] = []
        plan = self.scheduler.schedule()
        chunk, spent = plan.prefill, 0
        while chunk is not None:
            self._prefill(chunk, events)
            spent += chunk.end - chunk.start
            chunk = self.scheduler.next_prefill(spent, bool(plan.decode))
        if plan.decode:
            self._decode(plan.decode, events)
        return events

    def finish(self, seq: Sequence, reason: FinishReason, events: list[TokenEvent], error: str | None = None) -> None:
        """End `seq` now (abort, deadline, failure): free its slot and emit its last event."""
        if seq.status.finished:
            return
        seq.finish_reason = reason
        self._release(seq)
        events.append(self._event(seq, "", [], None, error=error))

    # -- running the model -------------------------------------------------------------------------

    def _prefill(self, chunk: PrefillChunk, events: list[TokenEvent]) -> None:
        seq = chunk.seq
        now = time.monotonic()
        if not seq.prefill_start:
            seq.prefill_start = now
            self.observer.on_admitted(now - seq.arrival, len(seq.prompt_ids))
        ids = np.asarray(seq.prompt_ids[chunk.start : chunk.end], np.int64)  # [S]
        masks = self._start_masks([seq] if chunk.completes_prompt else [])
        try:
            logits = self.runner.prefill(seq.slot, ids, chunk.start)  # [V]
        except Exception as exc:  # the runner failed: this request ends, the engine goes on
            self._take_masks(masks)
            self.finish(seq, FinishReason.ERROR, events, error=_describe(exc))
            return
        self.observer.on_step("prefill", time.monotonic() - now, 1, len(ids))
        seq.computed = chunk.end
        if chunk.completes_prompt:
            ((token, logprob),) = self._sample_batch([seq], logits[None], self._take_masks(masks))
            self.scheduler.prefill_done(seq)
            self._accept(seq, token, logprob, events)

    def _decode(self, seqs: list[Sequence], events: list[TokenEvent]) -> None:
        start = time.monotonic()
        tokens = np.fromiter((s.last_token for s in seqs), np.int64, len(seqs))  # [n]
        lengths = np.fromiter((s.computed for s in seqs), np.int64, len(seqs))  # [n]
        masks = self._start_masks(seqs)  # filled while ORT runs: the matchers already took `tokens`
        try:
            logits = self.runner.decode(tokens, lengths)  # [n, V]
        except Exception as exc:
            self._take_masks(masks)
            error = _describe(exc)
            for seq in seqs:
                self.finish(seq, FinishReason.ERROR, events, error=error)
            return
        self.observer.on_step("decode", time.monotonic() - start, len(seqs), len(seqs))
        for seq in seqs:
            seq.computed += 1
        for seq, (token, logprob) in zip(seqs, self._sample_batch(seqs, logits, self._take_masks(masks)), strict=True):
            self._accept(seq, token, logprob, events)

    # -- sampling ----------------------------------------------------------------------------------

    def _start_masks(self, seqs: list[Sequence]) -> Future[StepMasks] | None:
        """Start filling the bitmasks of the grammar rows that always need one (sampled, penalized, biased,
        logprobs). Plain greedy grammar rows wait for the logits: when the grammar allows their argmax, the
        mask could not change it and is never computed. None when no row needs a mask now."""
        rows = [i for i, s in enumerate(seqs) if s.matcher is not None and not _plain_greedy(s)]
        if not rows:
            return None
        return self._filler().start(rows, [seqs[i].matcher for i in rows])

    def _filler(self) -> MaskFiller:
        if self._masks is None:
            self._masks = MaskFiller(self.vocab_size)
        return self._masks

    def _take_masks(self, pending: Future[StepMasks] | None) -> StepMasks | None:
        """Wait for the fill (its errors are raised here, on the engine thread)."""
        return None if pending is None else self._report(pending.result())

    def _report(self, masks: StepMasks) -> StepMasks:
        self.observer.on_mask(masks.seconds, len(masks.rows))
        return masks

    def _sample_batch(
        self, seqs: list[Sequence], logits: np.ndarray, masks: StepMasks | None
    ) -> list[tuple[int, TokenLogprob | None]]:
        """One token per row of logits [n, V] (masked in place: the runner's buffer is rewritten next step)."""
        raw: dict[int, np.ndarray] = {}
        if masks is not None:
            raw = {int(i): logits[i].copy() for i in masks.rows if seqs[i].params.logprobs}  # [V] each
            sampler.apply_masks(logits, masks.rows, masks.masks)
        plain = [i for i, s in enumerate(seqs) if _plain_greedy(s)]
        picked: dict[int, int] = {}
        if plain:
            picked = dict(zip(plain, sampler.greedy(logits[plain]).tolist(), strict=True))
            self._mask_refused(seqs, logits, picked)
        return [
            (picked[i], None) if i in picked else self._sample_row(seq, logits[i], raw.get(i, logits[i]))
            for i, seq in enumerate(seqs)
        ]

    def _mask_refused(self, seqs: list[Sequence], logits: np.ndarray, picked: dict[int, int]) -> None:
        """Greedy grammar rows whose argmax the grammar refuses: mask them (one call) and take the argmax again."""
        refused = [i for i, t in picked.items() if seqs[i].matcher is not None and not allows(seqs[i].matcher, t)]
        if not refused:
            return
        late = self._report(self._filler().fill_rows(refused, [seqs[i].matcher for i in refused]))
        sampler.apply_masks(logits, late.rows, late.masks)
        picked.update(zip(refused, sampler.greedy(logits[refused]).tolist(), strict=True))

    def _sample_row(self, seq: Sequence, row: np.ndarray, raw: np.ndarray) -> tuple[int, TokenLogprob | None]:
        """One token from row [V] (grammar mask already applied); logprobs come from raw [V], the model's own."""
        params = seq.params
        suppressed = seq.stopping.suppressed(len(seq.output_ids))
        if params.penalized or suppressed or params.logit_bias:
            row = row.copy()
            sampler.apply_penalties(row, params, seq.output_counts, seq.seen)
            sampler.apply_logit_bias(row, params.logit_bias)
            if suppressed:
                row[list(suppressed)] = -np.inf
        token = sampler.sample(row, params, seq.rng)
        if not params.logprobs:
            return token, None
        lp, top = sampler.logprobs(raw, token, params.top_logprobs)
        return token, TokenLogprob(token, lp, top)

    # -- postprocessing ----------------------------------------------------------------------------

    def _accept(self, seq: Sequence, token: int, logprob: TokenLogprob | None, events: list[TokenEvent]) -> None:
        """Advance the sequence's grammar (if any) and append the token; a refused token ends the sequence."""
        if seq.matcher is not None:
            error = advance(seq.matcher, token)
            if error is not None:
                self.finish(seq, FinishReason.ERROR, events, error=error)
                return
        self._append(seq, token, logprob, events)

    def _append(self, seq: Sequence, token: int, logprob: TokenLogprob | None, events: list[TokenEvent]) -> None:
        now = time.monotonic()
        if not seq.output_ids:
            seq.first_token_at = now
            self.observer.on_first_token(now - seq.arrival)
        else:
            self.observer.on_inter_token(now - seq.last_token_at)
        seq.last_token_at = now
        seq.output_ids.append(token)
        if seq.output_counts is not None:
            seq.output_counts[token] += 1
        if seq.seen is not None:
            seq.seen[token] = True
        reason = seq.stopping(token, len(seq.output_ids))
        piece = seq.detok.add(token)
        if reason is not None:
            piece += seq.detok.flush()
        searched_from = len(seq.text)
        seq.text += piece
        hold = 0
        stops = seq.params.stop
        if stops:
            index = find_stop(seq.text, stops, searched_from)
            if index is not None:
                seq.text = seq.text[:index]
                reason = FinishReason.STOP
            elif reason is None:
                hold = holdback(seq.text, stops)
        seq.finish_reason = reason
        if reason is not None:
            self._release(seq)
        events.append(
            self._event(
                seq, seq.text[seq.emitted : len(seq.text) - hold], [token], [logprob] if logprob is not None else None
            )
        )

    def _event(
        self,
        seq: Sequence,
        text: str,
        token_ids: list[int],
        logprobs: list[TokenLogprob] | None,
        error: str | None = None,
    ) -> TokenEvent:
        seq.emitted += len(text)
        finished = seq.finish_reason is not None
        return TokenEvent(
            request_id=seq.request_id,
            text=text,
            token_ids=token_ids,
            logprobs=logprobs,
            usage=seq.usage(),
            finish_reason=seq.finish_reason,
            timings=seq.timings(time.monotonic()) if finished else None,
            error=error,
        )

    def _reuse_prefix(self, seq: Sequence) -> None:
        if self.prefix_cache is None:
            return
        hit = self.prefix_cache.reuse(seq, self.scheduler.running)
        self.observer.on_prefix_lookup(len(seq.prompt_ids), hit)

    def _release(self, seq: Sequence) -> None:
        slot = seq.slot
        if slot >= 0 and self.prefix_cache is not None and seq.finish_reason is not FinishReason.ERROR:
            live = [*self.scheduler.running, self.scheduler.prefilling]
            self.prefix_cache.keep(seq, [s for s in live if s is not None])
        moves = self.scheduler.finish(seq)
        if slot >= 0:
            self.runner.release(slot)
        for move in moves:
            self.runner.move(move.src, move.dst, move.length)
        reason = seq.finish_reason if seq.finish_reason is not None else FinishReason.ABORT
        self.observer.on_finished(reason, len(seq.prompt_ids), len(seq.output_ids))


def _plain_greedy(seq: Sequence) -> bool:
    """An argmax of the row as it stands (a grammar's mask is already in it) picks this sequence's token."""
    p = seq.params
    plain = p.greedy and not p.penalized and not p.logit_bias and not p.logprobs
    return plain and len(seq.output_ids) >= p.min_new_tokens


def _describe(exc: Exception) -> str:
    return str(EngineFailed(f"the model runner failed: {type(exc).__name__}: {exc}"))

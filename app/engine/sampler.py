"""Pure numpy sampling: logits and parameters in, token ids out. No engine state, no ORT.

Order, as in vLLM and HF: penalties on raw logits -> temperature -> top_k -> top_p -> min_p -> draw.
Logprobs are reported from the raw model distribution (before penalties and temperature).
"""

from __future__ import annotations

import numpy as np

from app.engine.params import SamplingParams

_FIRST_CANDIDATES = 64  # top_p: tokens examined first; grows x4 until they hold the requested mass


def greedy(logits: np.ndarray) -> np.ndarray:
    """logits [B, V] -> token ids [B]."""
    return logits.argmax(-1)


def apply_penalties(
    logits: np.ndarray, params: SamplingParams, output_counts: np.ndarray | None, seen: np.ndarray | None
) -> None:
    """In place on logits [V]. output_counts [V] int32 counts generated tokens; seen [V] bool marks prompt
    and generated tokens (for the HF-style repetition penalty)."""
    if params.repetition_penalty != 1.0 and seen is not None:
        hit = logits[seen]
        logits[seen] = np.where(hit > 0, hit / params.repetition_penalty, hit * params.repetition_penalty)
    if output_counts is not None and (params.presence_penalty or params.frequency_penalty):
        logits -= params.frequency_penalty * output_counts
        logits -= params.presence_penalty * (output_counts > 0)


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


def candidate_probs(logits: np.ndarray, params: SamplingParams) -> tuple[np.ndarray, np.ndarray]:
    """Temperature, top_k, top_p and min_p applied to logits [V]: (token ids [C], probs [C]) summing to 1,
    sorted by probability, highest first."""
    scaled = logits / np.float32(params.temperature)
    vocab = scaled.shape[-1]
    if 0 < params.top_k < vocab:
        ids = np.argpartition(-scaled, params.top_k - 1)[: params.top_k]
        probs = softmax(scaled[ids])
    else:
        full = softmax(scaled)
        ids, probs = _top_mass(full, params.top_p) if params.top_p < 1.0 else (np.arange(vocab), full)
    order = np.argsort(-probs, kind="stable")
    ids, probs = ids[order], probs[order]
    if params.top_p < 1.0:
        keep = int(np.searchsorted(np.cumsum(probs), params.top_p, side="left")) + 1
        ids, probs = ids[:keep], probs[:keep]
    if params.min_p > 0.0:
        keep_mask = probs >= params.min_p * probs[0]
        ids, probs = ids[keep_mask], probs[keep_mask]
    return ids, probs / probs.sum()


def _top_mass(probs: np.ndarray, mass: float) -> tuple[np.ndarray, np.ndarray]:
    """The smallest top-k set (k = 64, 256, ...) whose probability reaches `mass`; avoids sorting 49k."""
    vocab = probs.shape[-1]
    k = _FIRST_CANDIDATES
    while k < vocab:
        ids = np.argpartition(-probs, k - 1)[:k]
        if probs[ids].sum() >= mass:
            return ids, probs[ids]
        k *= 4
    return np.arange(vocab), probs


def sample(logits: np.ndarray, params: SamplingParams, rng: np.random.Generator) -> int:
    """One token from logits [V] (already penalized)."""
    if params.greedy:
        return int(logits.argmax())
    ids, probs = candidate_probs(logits, params)
    cdf = np.cumsum(probs)
    index = int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"))
    return int(ids[min(index, len(ids) - 1)])


def logprobs(logits: np.ndarray, token: int, top_n: int) -> tuple[float, list[tuple[int, float]]]:
    """Raw-model log-probability of `token` and the `top_n` most likely tokens, from logits [V]."""
    peak = logits.max()
    lse = peak + np.log(np.exp(logits - peak).sum())
    chosen = float(logits[token] - lse)
    if top_n <= 0:
        return chosen, []
    top = np.argpartition(-logits, top_n - 1)[:top_n]
    top = top[np.argsort(-logits[top], kind="stable")]
    return chosen, [(int(t), float(logits[t] - lse)) for t in top]


def allowed_tokens(mask: np.ndarray, vocab: int) -> np.ndarray:
    """Bitmask int32 [..., ceil(V/32)] (bit t of word t//32, little-endian) -> bool [..., V]."""
    return np.unpackbits(mask.view(np.uint8), axis=-1, bitorder="little", count=vocab).view(bool)


def banned_tokens(masks: np.ndarray, vocab: int) -> np.ndarray:
    """Bitmasks int32 [..., ceil(V/32)] -> bool [..., V], True where the bit is clear (unpacks the complement:
    one pass over [..., V] instead of two)."""
    return allowed_tokens(~masks, vocab)


def apply_mask(logits: np.ndarray, mask: np.ndarray) -> None:
    """In place on logits [V]: tokens whose bit is clear in mask [ceil(V/32)] get -inf."""
    apply_masks(logits[None], np.zeros(1, np.intp), mask[None])


def apply_masks(logits: np.ndarray, rows: np.ndarray, masks: np.ndarray) -> None:
    """In place on logits [n, V]: row rows[j] keeps only the tokens whose bit is set in masks[j]
    (masks [k, ceil(V/32)], rows [k] ascending). One batched operation; the other rows are not touched."""
    if not len(rows):
        return
    banned = banned_tokens(masks, logits.shape[-1])  # [k, V]
    first, last = int(rows[0]), int(rows[-1])
    if last - first + 1 == len(rows):  # a run of rows (the usual case): masked through a view, no copy
        np.copyto(logits[first : last + 1], -np.inf, where=banned)
    else:
        logits[rows] = np.where(banned, np.float32(-np.inf), logits[rows])


def apply_logit_bias(logits: np.ndarray, bias: tuple[tuple[int, float], ...]) -> None:
    """In place on logits [V]: add OpenAI-style biases; +-100 effectively forces or bans a token."""
    if bias:
        ids = np.fromiter((t for t, _ in bias), np.int64, len(bias))  # [k]
        values = np.fromiter((b for _, b in bias), np.float32, len(bias))  # [k]
        np.add.at(logits, ids, values)

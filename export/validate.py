"""Check an exported graph against the PyTorch model it came from.

Three measures, all on data the project ships (`export/data/`):
- greedy tokens on fixed chat prompts (fp32 must equal PyTorch token for token; a divergence is
  excused only where PyTorch's top two logits are within TIE_TOLERANCE, i.e. a float-noise tie);
- next-token top-1 agreement with PyTorch over a held-out English text (807 tokens for SmolLM2);
- perplexity of both models on that text, and the relative increase.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np

from app.engine.manifest import GreedyCheck, Quant, Thresholds, Validation
from app.engine.runner import ModelRunner

TIE_TOLERANCE = 1e-3

DEFAULT_THRESHOLDS: dict[Quant, Thresholds] = {
    Quant.FP32: Thresholds(max_ppl_increase_pct=0.1, min_top1_agreement=0.99, require_greedy_match=True),
    Quant.INT8: Thresholds(max_ppl_increase_pct=2.0, min_top1_agreement=0.90, require_greedy_match=False),
    Quant.INT4: Thresholds(max_ppl_increase_pct=35.0, min_top1_agreement=0.60, require_greedy_match=False),
    # the reference is the dequantized GGUF itself: only int8 activations (accuracy level 4) differ
    Quant.GGUF: Thresholds(max_ppl_increase_pct=1.0, min_top1_agreement=0.90, require_greedy_match=False),
    Quant.W8A8: Thresholds(max_ppl_increase_pct=2.0, min_top1_agreement=0.90, require_greedy_match=False),
}


def heldout_text() -> str:
    return resources.files("export").joinpath("data/heldout.txt").read_text(encoding="utf-8")


def prompt_set() -> dict[str, Any]:
    return json.loads(resources.files("export").joinpath("data/prompts.json").read_text(encoding="utf-8"))


@dataclass
class TorchReference:
    prompts: list[list[int]]
    greedy: list[list[int]]  # [prompt][step]
    margins: list[list[float]]  # top1 - top2 logit gap at each greedy step
    heldout: list[int]
    heldout_argmax: np.ndarray  # [S - 1]
    perplexity: float


def encode_prompts(tokenizer: Any) -> list[list[int]]:
    chats = prompt_set()["chats"]
    if getattr(tokenizer, "chat_template", None):
        return [list(tokenizer.apply_chat_template(c, add_generation_prompt=True, tokenize=True)) for c in chats]
    return [tokenizer.encode(" ".join(m["content"] for m in c), add_special_tokens=False) for c in chats]


def heldout_ids(tokenizer: Any, bos_token_id: int | None, max_tokens: int) -> list[int]:
    ids = tokenizer.encode(heldout_text(), add_special_tokens=False)
    if bos_token_id is not None:
        ids = [bos_token_id, *ids]
    return ids[:max_tokens]


def torch_reference(model: Any, prompts: list[list[int]], heldout: list[int], new_tokens: int) -> TorchReference:
    import torch

    greedy, margins = [], []
    with torch.inference_mode():
        for ids in prompts:
            tokens, gaps = _torch_greedy(model, ids, new_tokens)
            greedy.append(tokens)
            margins.append(gaps)
        logits = model(torch.tensor([heldout])).logits[0].float().numpy()  # [S, V]
    return TorchReference(prompts, greedy, margins, heldout, logits[:-1].argmax(-1), perplexity(logits, heldout))


def _torch_greedy(model: Any, ids: list[int], new_tokens: int) -> tuple[list[int], list[float]]:
    import torch

    past = None
    inputs = torch.tensor([ids])
    tokens, gaps = [], []
    for _ in range(new_tokens):
        out = model(input_ids=inputs, past_key_values=past, use_cache=True)
        past = out.past_key_values
        last = out.logits[0, -1].float()
        top2 = torch.topk(last, 2).values
        token = int(last.argmax())
        tokens.append(token)
        gaps.append(float(top2[0] - top2[1]))
        inputs = torch.tensor([[token]])
    return tokens, gaps


def onnx_greedy(runner: ModelRunner, ids: list[int], new_tokens: int) -> list[int]:
    logits = runner.prefill(0, np.asarray(ids, np.int64), 0)
    tokens = [int(logits.argmax())]
    length = len(ids)
    while len(tokens) < new_tokens:
        logits = runner.decode(np.array([tokens[-1]], np.int64), np.array([length], np.int64))
        tokens.append(int(logits[0].argmax()))
        length += 1
    runner.release(0)
    return tokens


def perplexity(logits: np.ndarray, ids: list[int], chunk: int = 128) -> float:
    """exp(mean NLL) of ids[1:] under logits[:-1], in float32 chunks (a [807, 49152] f64 copy is 317 MB)."""
    targets = np.asarray(ids[1:])
    nll = 0.0
    for start in range(0, len(targets), chunk):
        rows = logits[start : min(start + chunk, len(targets))].astype(np.float32)
        peak = rows.max(-1, keepdims=True)
        lse = peak[:, 0] + np.log(np.exp(rows - peak).sum(-1))
        picked = rows[np.arange(len(rows)), targets[start : start + chunk]]
        nll += float((lse - picked).astype(np.float64).sum())
    return float(np.exp(nll / len(targets)))


def validate(runner: ModelRunner, ref: TorchReference, thresholds: Thresholds) -> Validation:
    new_tokens = len(ref.greedy[0]) if ref.greedy else 0
    exact = ties = matched = 0
    failures: list[str] = []
    for index, (ids, want, gaps) in enumerate(zip(ref.prompts, ref.greedy, ref.margins, strict=True)):
        got = onnx_greedy(runner, ids, new_tokens)
        first_diff = next((i for i, (a, b) in enumerate(zip(got, want, strict=True)) if a != b), None)
        if first_diff is None:
            exact += 1
            matched += new_tokens
            continue
        matched += first_diff
        if gaps[first_diff] < TIE_TOLERANCE:
            ties += 1
        elif thresholds.require_greedy_match:
            failures.append(
                f"greedy tokens differ from PyTorch on prompt {index} at step {first_diff} "
                f"(PyTorch's top-2 logit gap {gaps[first_diff]:.4f} is not a tie)"
            )
    logits = runner.forward_full(ref.heldout)
    ppl = perplexity(logits, ref.heldout)
    increase = 100.0 * (ppl / ref.perplexity - 1.0)
    top1 = float((logits[:-1].argmax(-1) == ref.heldout_argmax).mean())
    if increase > thresholds.max_ppl_increase_pct:
        failures.append(
            f"perplexity {ppl:.3f} is {increase:+.2f}% over PyTorch's {ref.perplexity:.3f} "
            f"(limit {thresholds.max_ppl_increase_pct:+.2f}%)"
        )
    if top1 < thresholds.min_top1_agreement:
        failures.append(f"top-1 agreement with PyTorch {top1:.3f} is below {thresholds.min_top1_agreement:.3f}")
    return Validation(
        passed=not failures,
        thresholds=thresholds,
        heldout_tokens=len(ref.heldout),
        perplexity_torch=round(ref.perplexity, 4),
        perplexity_onnx=round(ppl, 4),
        perplexity_increase_pct=round(increase, 3),
        top1_agreement=round(top1, 4),
        greedy=GreedyCheck(
            prompts=len(ref.prompts),
            new_tokens=new_tokens,
            exact_prompts=exact,
            tie_divergences=ties,
            matched_tokens=matched,
            total_tokens=new_tokens * len(ref.prompts),
        ),
        failures=failures,
    )

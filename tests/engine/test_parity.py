"""fp32 ORT greedy equals PyTorch `generate` greedy token for token, on both graph kinds."""

from __future__ import annotations

import numpy as np
import pytest

from app.engine.params import SamplingParams
from tests.engine.conftest import PROMPTS, generate, run, running_engine

NEW_TOKENS = 48
TIE = 1e-3


@pytest.fixture(scope="module")
def torch_greedy(torch_smollm):
    """PyTorch's greedy tokens and the processed scores of each step, for every prompt."""
    import torch

    model, tok = torch_smollm.model, torch_smollm.tokenizer
    out = []
    for chat in PROMPTS:
        ids = tok.apply_chat_template(chat, add_generation_prompt=True, return_tensors="pt")
        with torch.inference_mode():
            gen = model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                do_sample=False,
                max_new_tokens=NEW_TOKENS,
                min_new_tokens=NEW_TOKENS,
                output_scores=True,
                return_dict_in_generate=True,
                pad_token_id=tok.pad_token_id,
            )
        tokens = gen.sequences[0, ids.shape[1] :].tolist()
        scores = np.stack([s[0].float().numpy() for s in gen.scores])  # [steps, vocab]
        out.append((ids[0].tolist(), tokens, scores))
    return out


def test_chat_template_tokenization_matches_transformers(real_models, torch_greedy):
    from app.engine.manifest import read_manifest
    from app.engine.tokenizer import TextTokenizer

    folder = real_models.get("gqa", "fp32")
    tok = TextTokenizer(folder, read_manifest(folder).model)
    for chat, (ids, _, _) in zip(PROMPTS, torch_greedy, strict=True):
        assert tok.encode_chat(chat) == ids


@pytest.mark.parametrize("graph", ["gqa", "optimum"])
def test_fp32_greedy_equals_pytorch(real_models, torch_greedy, graph):
    folder = real_models.get(graph, "fp32")

    async def main():
        async with running_engine(folder) as engine:
            return [
                (await generate(engine, ids, SamplingParams(max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS)))[0]
                for ids, _, _ in torch_greedy
            ]

    exact = 0
    for ours, (_, theirs, scores) in zip(run(main()), torch_greedy, strict=True):
        assert len(ours) == NEW_TOKENS
        diff = next((i for i, (a, b) in enumerate(zip(ours, theirs, strict=True)) if a != b), None)
        if diff is None:
            exact += 1
            continue
        top2 = np.sort(scores[diff])[-2:]
        assert top2[1] - top2[0] < TIE, f"diverged at step {diff} where PyTorch's top-2 gap is {top2[1] - top2[0]}"
    assert exact >= len(PROMPTS) - 1

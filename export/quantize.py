"""Weight quantization recipes, one per quant level, with ONNX Runtime's MatMulNBits quantizer.

Measured on SmolLM2-135M on this project's 2-vCPU machine (docs/export.md has the full table):
- 8-bit blocks, asymmetric, block 32, accuracy level 4: +0.6% perplexity, 2.6x faster than fp32 decode.
  Symmetric 8-bit from the quantizer decodes garbage on ORT 1.32, so it is asymmetric on purpose.
  Optimum's ORTQuantizer dynamic int8 (avx512_vnni, per channel) was tried too: perplexity x5. Not used.
- 4-bit blocks, asymmetric, block 32, lm_head kept at 8 bits: +22% perplexity, fastest decode.
"""

from __future__ import annotations

import logging

import onnx

from app.engine.manifest import Quant, Recipe
from export.surgery import lm_head_node

BLOCK_SIZE = 32
ACCURACY_LEVEL = 4  # int8 activations x n-bit weights: MLAS's fast CompInt8 kernels

RECIPES: dict[Quant, Recipe] = {
    Quant.FP32: Recipe(method="none", notes="fp32 weights as exported"),
    Quant.INT8: Recipe(
        method="matmulnbits",
        bits=8,
        block_size=BLOCK_SIZE,
        symmetric=False,
        accuracy_level=ACCURACY_LEVEL,
        algorithm="rtn",
        notes="every MatMul with a constant weight, lm_head included",
    ),
    Quant.INT4: Recipe(
        method="matmulnbits",
        bits=4,
        block_size=BLOCK_SIZE,
        symmetric=False,
        accuracy_level=ACCURACY_LEVEL,
        algorithm="rtn",
        overrides={"lm_head": 8},
        notes="4-bit body; the lm_head (tied embedding, 21% of SmolLM2's weights) stays at 8 bits",
    ),
}


def quantize(model: onnx.ModelProto, quant: Quant) -> tuple[onnx.ModelProto, Recipe]:
    recipe = RECIPES[quant]
    if recipe.method == "none":
        return model, recipe
    head = lm_head_node(model).name
    bits = recipe.bits or 8
    lm_bits = recipe.overrides.get("lm_head", bits)
    if lm_bits == bits:
        model = _matmul_nbits(model, recipe, bits, exclude=[], include=None)
    else:
        model = _matmul_nbits(model, recipe, bits, exclude=[head], include=None)
        model = _matmul_nbits(model, recipe, lm_bits, exclude=[], include=[head])
    return model, recipe


def _matmul_nbits(
    model: onnx.ModelProto, recipe: Recipe, bits: int, exclude: list[str], include: list[str] | None
) -> onnx.ModelProto:
    from onnxruntime.quantization import matmul_nbits_quantizer as mq
    from onnxruntime.quantization import quant_utils

    logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer").setLevel(logging.WARNING)
    config = mq.DefaultWeightOnlyQuantConfig(
        block_size=recipe.block_size or BLOCK_SIZE,
        is_symmetric=bool(recipe.symmetric),
        accuracy_level=recipe.accuracy_level,
        quant_format=quant_utils.QuantFormat.QOperator,
        op_types_to_quantize=("MatMul",),
        bits=bits,
    )
    quantizer = mq.MatMulNBitsQuantizer(model, nodes_to_exclude=exclude, nodes_to_include=include, algo_config=config)
    quantizer.process()
    return quantizer.model.model

"""Weight quantization recipes, one per quant level, with ONNX Runtime's MatMulNBits quantizer.

Measured on SmolLM2-135M on this project's 2-vCPU machine (docs/export.md has the full table):
- 8-bit blocks, asymmetric, accuracy level 4, the body in blocks of 64 and the lm_head in blocks of 32:
  +0.40% perplexity, 2.4x faster than fp32 decode on Zen 5. Against blocks of 32 everywhere (same machine,
  same sitting): 20 MiB less resident, faster decode at 16 rows and prefill, perplexity +0.40% vs +0.59%
  (the int8 activations are quantized per block of the weights' size). The lm_head at 64 too saves 9 MiB
  more but +0.56% perplexity, top-1 0.950 and a wrong greedy "What is 2 + 2?"; the lm_head picks the token.
  Block 128 pads SmolLM2's 576-wide inputs to 640 and costs +0.97% perplexity.
  Symmetric 8-bit from the quantizer decodes garbage on ORT 1.32, so it is asymmetric on purpose.
  Optimum's ORTQuantizer dynamic int8 (avx512_vnni, per channel) was tried too: perplexity x5. Not used.
- 4-bit blocks, asymmetric, block 32, lm_head kept at 8 bits: +22% perplexity, fastest decode.
Both quantized levels also turn the token embedding into 8-bit blocks (GatherBlockQuantized).
- gguf (GGUF sources only): no re-quantization; the source's own blocks, exactly (export/exact.py).
"""

from __future__ import annotations

import logging
from pathlib import Path

import msgspec
import numpy as np
import onnx
from onnx import helper, numpy_helper

from app.engine.manifest import Quant, Recipe
from export.sources import Source
from export.surgery import lm_head_node

BLOCK_SIZE = 32
INT8_BLOCK_SIZE = 64  # the int8 body; measured above; divides the hidden sizes of the models we serve (576, 1536)
ACCURACY_LEVEL = 4  # int8 activations x n-bit weights: MLAS's fast CompInt8 kernels
W8A8_SMOOTHING_ALPHA = 0.5  # measured against 0.4 and 0.8 (docs/export.md)

RECIPES: dict[Quant, Recipe] = {
    Quant.FP32: Recipe(method="none", notes="fp32 weights as exported"),
    Quant.INT8: Recipe(
        method="matmulnbits",
        bits=8,
        block_size=INT8_BLOCK_SIZE,
        symmetric=False,
        accuracy_level=ACCURACY_LEVEL,
        algorithm="rtn",
        head_block_size=BLOCK_SIZE,
        notes="every MatMul with a constant weight, lm_head included (in blocks of 32)",
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
    Quant.GGUF: Recipe(
        method="gguf-blocks",
        bits=4,
        block_size=BLOCK_SIZE,
        symmetric=False,
        accuracy_level=ACCURACY_LEVEL,
        algorithm="exact/shared",
        notes="the GGUF's own blocks: Q8_0/Q5_0/Q5_1/Q5_K/Q6_K in 8-bit MatMulNBits, Q4_0/Q4_1/Q4_K in 4-bit; "
        "float block offsets (Q4_1, Q5_1, K-quant minima) as blocksum(x) @ offsets, one blocksum per input",
    ),
    Quant.W8A8: Recipe(
        method="w8a8",
        bits=8,
        symmetric=True,
        algorithm="smoothquant/rtn-per-column",
        head_block_size=BLOCK_SIZE,
        smoothing_alpha=W8A8_SMOOTHING_ALPHA,
        notes="SmoothQuant smoothing, then every body MatMul as int8 weights with one scale per output column "
        "(stored u8 around 128) x int8 activations with one scale per row, MatMulIntegerToFloat (MLAS QGEMM); "
        "the lm_head in 8-bit MatMulNBits blocks of 32",
    ),
}


# Levels `--quant auto` leaves out although they build. gguf: with ORT 1.32's 4-bit MatMulNBits a lone row
# takes another kernel than a batch; the runner now pads lone decode rows (Recipe.min_rows) so its answers no
# longer depend on the load, but the padding costs 13-25% of a single-stream step, so it has not been weighed
# by auto on every ISA yet. It stays available explicitly.
NOT_AUTO = frozenset({Quant.GGUF})


def levels_for(source: Source) -> list[Quant]:
    """The quant levels `--quant auto` builds and weighs for `source`: every level with a recipe here but
    NOT_AUTO (a level tied to a source format, such as exact GGUF blocks, also needs a source it can read)."""
    return [
        quant
        for quant in Quant
        if quant in RECIPES and quant not in NOT_AUTO and (quant is not Quant.GGUF or source.is_gguf)
    ]


def quantize(
    model: onnx.ModelProto, quant: Quant, gguf: Path | None = None, calibration: list[int] | None = None
) -> tuple[onnx.ModelProto, Recipe]:
    """`gguf`: the source GGUF file, which `Quant.GGUF` reads its blocks from. `calibration`: token ids of
    export/data/calibration.txt, for the recipes that smooth activations first."""
    recipe = RECIPES[quant]
    if recipe.method == "none":
        return model, recipe
    if recipe.method == "gguf-blocks":
        from export.exact import MinimumTerm, encode_exact

        if gguf is None:
            raise ValueError("--quant gguf needs the source GGUF file")
        report = encode_exact(model, gguf, MinimumTerm(recipe.algorithm.split("/")[1]), recipe.accuracy_level or 4)
        for name, error in report.errors.items():
            print(f"gguf-blocks {name}: {report.formats[name]} from {', '.join(report.sources.get(name, []))}, "
                  f"max abs error {error:.3g}")  # fmt: skip
        print(f"gguf-blocks kept in fp32: {', '.join(report.kept) or 'none'}")
        return model, msgspec.structs.replace(recipe, bits=report.body_bits, max_abs_error=report.errors)
    if recipe.method == "w8a8":
        return _w8a8(model, recipe, calibration), recipe
    head = lm_head_node(model).name
    bits = recipe.bits or 8
    lm_bits = recipe.overrides.get("lm_head", bits)
    head_recipe = msgspec.structs.replace(recipe, block_size=recipe.head_block_size or recipe.block_size)
    if lm_bits == bits and head_recipe.block_size == recipe.block_size:
        model = _matmul_nbits(model, recipe, bits, exclude=[], include=None)
    else:
        model = _matmul_nbits(model, recipe, bits, exclude=[head], include=None)
        model = _matmul_nbits(model, head_recipe, lm_bits, exclude=[], include=[head])
    quantize_embedding(model)
    return model, recipe


def _w8a8(model: onnx.ModelProto, recipe: Recipe, calibration: list[int] | None) -> onnx.ModelProto:
    from export import smoothing
    from export.w8a8 import encode_w8a8

    if not calibration:
        raise ValueError("--quant w8a8 smooths activations first and needs calibration token ids")
    report = smoothing.smooth(model, smoothing.calibration_maxima(model, calibration), recipe.smoothing_alpha or 0.5)
    print(f"smoothing: {len(report.folded)} MatMul inputs folded, left as they were: "
          f"{', '.join(report.skipped) or 'none'}")  # fmt: skip
    head = lm_head_node(model).name
    encoded = encode_w8a8(model, exclude=frozenset({head}))
    print(f"w8a8: {encoded.linears} linears over {encoded.inputs} quantized inputs, max weight error "
          f"{max(encoded.max_rel_error.values(), default=0):.3g} of each weight's largest")  # fmt: skip
    # the lm_head picks the token: 8-bit blocks of 32 as in the int8 recipe (docs/export.md)
    head_recipe = msgspec.structs.replace(RECIPES[Quant.INT8], block_size=recipe.head_block_size or BLOCK_SIZE)
    model = _matmul_nbits(model, head_recipe, 8, exclude=[], include=[head])
    quantize_embedding(model)
    return model


def quantize_embedding(model: onnx.ModelProto, block_size: int = BLOCK_SIZE) -> bool:
    """The token embedding Gather -> GatherBlockQuantized, 8-bit blocks (absmax / 127, zero point 128).

    The graphs read one embedding row per token, but ONNX Runtime keeps the whole fp32 table in memory:
    113 MB of SmolLM2's 275 MB. 8-bit blocks of 32 take 31 MB, and they are exact for a GGUF whose
    embedding is Q8_0 (same blocks, same absmax scale). Returns whether an embedding was found.
    """
    found = embedding_table(model, block_size)
    if found is None:
        return False
    node, table = found
    vocab, hidden = table.shape
    blocks = table.reshape(vocab, hidden // block_size, block_size)  # [V, H / 32, 32]
    scale = np.abs(blocks).max(-1) / 127.0  # [V, H / 32]
    scale[scale == 0] = 1.0
    q = np.clip(np.round(blocks / scale[..., None]), -127, 127).astype(np.int16) + 128
    replace_gather(model.graph, node, q.astype(np.uint8).reshape(vocab, hidden), scale, block_size)
    return True


def embedding_table(model: onnx.ModelProto, block_size: int = BLOCK_SIZE) -> tuple[onnx.NodeProto, np.ndarray] | None:
    """The token embedding's Gather and its fp32 table [V, H], if the graph has one."""
    graph = model.graph
    inits = {init.name: init for init in graph.initializer}
    producers = {out: node for node in graph.node for out in node.output}
    for node in graph.node:
        if node.op_type != "Gather" or node.domain not in ("", "ai.onnx"):
            continue
        table = _float_table(node.input[0], inits, producers)
        if table is not None and table.shape[1] % block_size == 0:
            return node, table
    return None


def replace_gather(
    graph: onnx.GraphProto, node: onnx.NodeProto, codes: np.ndarray, scales: np.ndarray, block_size: int
) -> None:
    """Swap `node` for a GatherBlockQuantized over 8-bit `codes` [V, H] (zero point 128) and `scales` [V, H / block]."""
    name = node.name or node.output[0]
    graph.initializer.extend(
        [
            numpy_helper.from_array(codes.astype(np.uint8), f"{name}.q8"),
            numpy_helper.from_array(scales.astype(np.float32), f"{name}.scales"),
            numpy_helper.from_array(np.full(scales.shape, 128, np.uint8), f"{name}.zero_points"),
        ]
    )
    replacement = helper.make_node(
        "GatherBlockQuantized",
        [f"{name}.q8", node.input[1], f"{name}.scales", f"{name}.zero_points"],
        list(node.output),
        name=f"{name}_Q8",
        domain="com.microsoft",
        gather_axis=0,
        quantize_axis=1,
        block_size=block_size,
        bits=8,
    )
    index = list(graph.node).index(node)
    graph.node.remove(node)
    graph.node.insert(index, replacement)
    drop_unused(graph)


def _float_table(name: str, inits: dict, producers: dict) -> np.ndarray | None:
    """The 2-D float table behind a Gather's data input: an initializer, or a Transpose of one."""
    if name in inits:
        array = numpy_helper.to_array(inits[name])
    elif name in producers and producers[name].op_type == "Transpose" and producers[name].input[0] in inits:
        array = numpy_helper.to_array(inits[producers[name].input[0]]).T
    else:
        return None
    if array.ndim != 2 or array.dtype != np.float32:
        return None
    return np.ascontiguousarray(array)


def drop_unused(graph: onnx.GraphProto) -> None:
    """Remove nodes whose outputs nobody reads, then initializers nobody reads."""
    outputs = {o.name for o in graph.output}
    while True:
        used = {name for node in graph.node for name in node.input} | outputs
        dead = [n for n in graph.node if n.op_type == "Transpose" and not any(o in used for o in n.output)]
        if not dead:
            break
        for node in dead:
            graph.node.remove(node)
    used = {name for node in graph.node for name in node.input} | {i.name for i in graph.input}
    keep = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)


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

"""Graph edits applied to every exported fp32 graph before quantization.

- `num_logits_to_keep` (int64 [1]): the lm_head runs on the last k positions only. A 512-token prefill
  then costs one lm_head row instead of 512 (49,152 x 576 MACs each); validation asks for all of them.
- The lm_head weight becomes its own initializer when the exporter tied it to the embedding through a
  Transpose, so that the weight-only quantizer (which needs a constant B) can quantize it.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from app.engine.manifest import LOGITS_TO_KEEP


def lm_head_node(model: onnx.ModelProto) -> onnx.NodeProto:
    for node in model.graph.node:
        if "logits" in node.output:
            return node
    raise ValueError("the graph has no node producing 'logits'")


def prepare_decoder(model: onnx.ModelProto) -> None:
    _untie_lm_head(model)
    _add_logits_to_keep(model)


def _untie_lm_head(model: onnx.ModelProto) -> None:
    graph = model.graph
    head = lm_head_node(model)
    if head.op_type != "MatMul":
        return
    inits = {init.name: init for init in graph.initializer}
    if head.input[1] in inits:
        return
    producer = next((n for n in graph.node if head.input[1] in n.output), None)
    if producer is None or producer.op_type != "Transpose" or producer.input[0] not in inits:
        return
    weight = numpy_helper.to_array(inits[producer.input[0]])
    perm = next((list(a.ints) for a in producer.attribute if a.name == "perm"), None)
    graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(weight.transpose(perm)), "lm_head.weight"))
    head.input[1] = "lm_head.weight"
    if not any(producer.output[0] in n.input for n in graph.node):
        graph.node.remove(producer)


def _add_logits_to_keep(model: onnx.ModelProto) -> None:
    graph = model.graph
    if any(i.name == LOGITS_TO_KEEP for i in graph.input):
        return
    head = lm_head_node(model)
    hidden = head.input[0]
    graph.input.append(helper.make_tensor_value_info(LOGITS_TO_KEEP, TensorProto.INT64, [1]))
    graph.initializer.extend(
        [
            # an input with an initializer of the same name is optional: callers that do not know it
            # (Optimum's ORTModelForCausalLM.generate) get the last position only, which is all they read
            numpy_helper.from_array(np.array([1], np.int64), LOGITS_TO_KEEP),
            numpy_helper.from_array(np.array([np.iinfo(np.int64).max], np.int64), "logits_keep_end"),
            numpy_helper.from_array(np.array([1], np.int64), "logits_keep_axis"),
        ]
    )
    sliced = f"{hidden}/last_k"
    nodes = [
        helper.make_node("Neg", [LOGITS_TO_KEEP], ["logits_keep_start"], name="/logits_keep/Neg"),
        helper.make_node(
            "Slice",
            [hidden, "logits_keep_start", "logits_keep_end", "logits_keep_axis"],
            [sliced],
            name="/logits_keep/Slice",
        ),
    ]
    index = list(graph.node).index(head)
    for offset, node in enumerate(nodes):
        graph.node.insert(index + offset, node)
    head.input[0] = sliced
    for out in graph.output:
        if out.name == "logits":
            dims = out.type.tensor_type.shape.dim
            if len(dims) == 3:
                dims[1].ClearField("dim_value")
                dims[1].dim_param = "logits_length"

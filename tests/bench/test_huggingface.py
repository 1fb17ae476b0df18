"""The Hugging Face side: the graph adaptation that lets ORTModelForCausalLM run our Optimum-layout
export, on tiny graph protos."""

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from benchmarks.huggingface import adapt_for_ortmodel, adaptations


def decoder_proto(with_default: bool, logits_axis: str = "logits_length"):
    inputs = [
        helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch_size", "sequence_length"]),
        helper.make_tensor_value_info("num_logits_to_keep", TensorProto.INT64, [1]),
    ]
    logits = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch_size", logits_axis, 8])
    inits = [numpy_helper.from_array(np.array([1], np.int64), "num_logits_to_keep")] if with_default else []
    node = helper.make_node("Identity", ["input_ids"], ["unused"])
    return helper.make_model(helper.make_graph([node], "g", inputs, [logits], initializer=inits))


def test_required_input_and_unknown_axis_are_both_adapted():
    proto = decoder_proto(with_default=False)
    assert len(adaptations(proto)) == 2
    adapt_for_ortmodel(proto)
    assert adaptations(proto) == []
    default = next(i for i in proto.graph.initializer if i.name == "num_logits_to_keep")
    assert numpy_helper.to_array(default).tolist() == [1]
    assert proto.graph.output[0].type.tensor_type.shape.dim[1].dim_value == 1


def test_a_defaulted_input_still_needs_the_logits_axis_fixed():
    proto = decoder_proto(with_default=True)
    [reason] = adaptations(proto)
    assert "logits_length" in reason
    adapt_for_ortmodel(proto)
    assert sum(i.name == "num_logits_to_keep" for i in proto.graph.initializer) == 1


def test_a_graph_ortmodel_can_run_is_left_alone():
    assert adaptations(decoder_proto(with_default=True, logits_axis="sequence_length")) == []

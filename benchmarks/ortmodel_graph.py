"""Give Optimum's ORTModelForCausalLM a graph it can run, from a folder exported with `--graph optimum`.

Our export adds the input `num_logits_to_keep` (int64 [1]: the lm_head runs on the last k positions)
and names the logits' length axis `logits_length`. ORTModel feeds only the inputs it knows and refuses
a graph with another required input; with IO binding it also sizes every output from axis names it can
evaluate from the inputs, which `logits_length` is not. Exports that give `num_logits_to_keep` a
default (an initializer of the same name, value 1) pass the first check but not the second.

So, unless the graph already suits ORTModel, this writes a copy of the graph proto (a few hundred KB)
in which `num_logits_to_keep` defaults to 1 (last-position logits, as our engine asks for; it also
spares ORTModel the lm_head over a whole prompt) and the logits' length axis is 1. The weight file is
hard-linked, not copied: no extra disk, and ORT reads the very same bytes.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from app.engine.manifest import LOGITS_TO_KEEP, GraphKind, Manifest

_SIDE_FILES = ("config.json", "generation_config.json")


class NotRunnable(Exception):
    """ORTModelForCausalLM cannot run this folder; the message says why."""


def adaptations(proto: Any) -> list[str]:
    """What ORTModel needs changed in this graph proto (empty: it runs as exported)."""
    needed = []
    if any(i.name == LOGITS_TO_KEEP for i in proto.graph.input) and not any(
        init.name == LOGITS_TO_KEEP for init in proto.graph.initializer
    ):
        needed.append(f"`{LOGITS_TO_KEEP}` is a required input without a default, which ORTModel cannot feed")
    known = {d.dim_param for i in proto.graph.input for d in i.type.tensor_type.shape.dim if d.dim_param}
    for out in proto.graph.output:
        dims = out.type.tensor_type.shape.dim
        if out.name == "logits" and len(dims) == 3 and dims[1].dim_param and dims[1].dim_param not in known:
            needed.append(f"the logits axis `{dims[1].dim_param}` is unknown to ORTModel's IO-binding shape inference")
    return needed


def ortmodel_folder(model_dir: Path, manifest: Manifest, workdir: Path) -> tuple[Path, list[str]]:
    """A folder ORTModelForCausalLM.from_pretrained loads, and notes on any adaptation made."""
    import onnx

    if manifest.graph is not GraphKind.OPTIMUM:
        raise NotRunnable(
            f"{model_dir.name} is a {manifest.graph} graph: ORTModelForCausalLM runs only Optimum-layout graphs "
            "(past and present KV as separate, growing tensors); export one with `--graph optimum`"
        )
    if not (model_dir / "config.json").is_file():
        raise NotRunnable(f"{model_dir} has no config.json, which ORTModelForCausalLM needs")
    proto = onnx.load(str(model_dir / manifest.io.onnx_file), load_external_data=False)
    needed = adaptations(proto)
    if not needed:
        return model_dir, []
    _adapt(proto)
    dest = workdir / "ortmodel" / model_dir.name
    _write_folder(model_dir, manifest, proto, dest)
    note = (
        f"ran a copy of the exported graph ({'; '.join(needed)}): there `{LOGITS_TO_KEEP}` defaults to 1 "
        "(last-position logits) and the logits length axis is 1; weights shared by hard link"
    )
    return dest, [note]


def _adapt(proto: Any) -> None:
    import numpy as np
    from onnx import numpy_helper

    if not any(init.name == LOGITS_TO_KEEP for init in proto.graph.initializer):
        proto.graph.initializer.append(numpy_helper.from_array(np.array([1], np.int64), LOGITS_TO_KEEP))
    for out in proto.graph.output:
        if out.name == "logits" and len(out.type.tensor_type.shape.dim) == 3:
            out.type.tensor_type.shape.dim[1].dim_value = 1


def _write_folder(model_dir: Path, manifest: Manifest, proto: Any, dest: Path) -> None:
    import onnx

    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for name in manifest.files:
        if name != manifest.io.onnx_file:
            _link_or_copy(model_dir / name, dest / name)
    for name in _SIDE_FILES:
        if (model_dir / name).is_file() and not (dest / name).exists():
            shutil.copyfile(model_dir / name, dest / name)
    onnx.save(proto, str(dest / manifest.io.onnx_file))


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:  # another file system: ORT refuses symlinks that leave the model folder, so copy
        shutil.copyfile(src, dst)

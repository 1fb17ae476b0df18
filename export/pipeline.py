"""The export, stage by stage: load -> export -> quantize -> validate -> write."""

from __future__ import annotations

import errno
import platform
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from app.engine.manifest import (
    GraphIO,
    GraphKind,
    Manifest,
    ModelShape,
    Quant,
    Recipe,
    Selection,
    SourceInfo,
    Thresholds,
    Validation,
    write_manifest,
)
from app.engine.selection import AUTO
from export.errors import ExportError
from export.progress import Progress
from export.sources import Source, SourceKind, resolve_source, sha256_file, source_sha256
from export.staging import check_destination, check_free_space, disk_full_error, staged_folder

STAGES = ["load", "export", "quantize", "validate", "write"]
AUTO_STAGES = ["load", "export", "quantize", "validate", "select", "write"]
NEW_TOKENS = 32
_VERSIONED = (
    "llm-gateway",
    "onnxruntime",
    "onnx",
    "torch",
    "transformers",
    "optimum",
    "optimum-onnx",
    "onnxruntime-genai",
    "gguf",
    "numpy",
)


@dataclass(frozen=True)
class ExportOptions:
    source: str | None = None
    quant: Quant | str = AUTO  # a Quant, or AUTO: build every level, keep the one autoselect chooses
    graph: str = "auto"
    out: Path | None = None
    force: bool = False
    quiet: bool = False
    max_ppl_increase: float | None = None
    min_top1: float | None = None
    threads: int = 2
    skip_existing: bool = False


@dataclass(frozen=True)
class Built:
    """One variant written by the quantize stage."""

    quant: Quant
    recipe: Recipe
    io: GraphIO
    folder: Path  # where its model.<quant>.onnx(.data) are

    @property
    def size_bytes(self) -> int:
        onnx_file = self.folder / self.io.onnx_file
        return sum(p.stat().st_size for p in (onnx_file, onnx_file.with_name(onnx_file.name + ".data")) if p.exists())


def default_out(source_name: str, graph: GraphKind, quant: Quant | str) -> Path:
    return Path("models") / f"{source_name}-{graph}-{quant}"


def run_export(opts: ExportOptions) -> tuple[Path, Manifest]:
    from export.loading import load_config

    source = resolve_source(opts.source)
    if opts.quant is Quant.GGUF and not source.is_gguf:
        raise ExportError(
            f"--quant gguf keeps a GGUF file's own weight blocks, and {source.spec} is not a GGUF source",
            hint="pass a .gguf file (or nothing, for the embedded GGUF), or choose --quant int8 / int4 / fp32",
        )
    config = load_config(source)
    from export.graphs import pick_graph

    graph = pick_graph(opts.graph, config)
    dest = (opts.out or default_out(source.name, graph, opts.quant)).absolute()
    if opts.skip_existing and not opts.force and (dest / "manifest.json").is_file():
        from app.engine.manifest import ManifestError, read_manifest

        try:
            existing = read_manifest(dest)
        except ManifestError:
            existing = None
        same_source = source.kind is SourceKind.HUB or (
            existing is not None and (existing.source.sha256 == source_sha256(source))
        )
        if existing is not None and same_source and _same_request(existing, graph, opts.quant):
            Progress(STAGES, quiet=opts.quiet).say(f"{dest} already holds a validated export; skipping")
            return dest, existing
    check_destination(dest, opts.force)
    progress = Progress(AUTO_STAGES if opts.quant == AUTO else STAGES, quiet=opts.quiet)
    progress.say(f"exporting {source.spec} -> {dest} (graph {graph}, quant {opts.quant})")
    try:
        with staged_folder(dest, opts.force) as tmp:
            progress.log_path = tmp / "export.log"
            manifest = _build(opts, source, config, graph, tmp, progress)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise disk_full_error(exc, dest.parent) from exc
        raise
    if manifest.selection is not None:
        progress.say(f"chose {manifest.quant}: {manifest.selection.reason}")
    progress.say(
        f"wrote {dest} ({manifest.graph_quant}, {manifest.size_bytes / 1e6:,.1f} MB): perplexity "
        f"{manifest.validation.perplexity_increase_pct:+.2f}% vs PyTorch, top-1 agreement "
        f"{manifest.validation.top1_agreement:.3f}"
    )
    return dest, manifest


def _same_request(existing: Manifest, graph: GraphKind, quant: Quant | str) -> bool:
    if existing.graph != graph:
        return False
    return existing.selection is not None if quant == AUTO else existing.quant == quant


def _build(opts: ExportOptions, source: Source, config, graph: GraphKind, tmp: Path, progress: Progress) -> Manifest:
    import onnx

    from export import graphs, loading, quantize, surgery

    quants = quantize.levels_for(source) if opts.quant == AUTO else [Quant(opts.quant)]
    with progress.stage("load", source.spec):
        ref = loading.load_reference(source, config)
        shape = loading.model_shape(ref)
        params = sum(p.numel() for p in ref.model.parameters())
        needs_hf_copy = graph is GraphKind.GQA and source.kind is not SourceKind.FOLDER
        check_free_space(tmp, params * 4 * ((3 if needs_hf_copy else 2) + len(quants) - 1))
        sha = source_sha256(source) if source.kind is not SourceKind.HUB else _hub_revision(ref, source)
    work = tmp / ".work"
    with progress.stage("export", f"{graph} graph"):
        if graph is GraphKind.GQA:
            hf_dir = Path(source.location) if not needs_hf_copy else loading.write_hf_folder(ref, work / "hf")
            onnx_path = graphs.build_gqa(hf_dir, work)
        else:
            onnx_path = graphs.build_optimum(ref.model, work)
        model = onnx.load(str(onnx_path))
        surgery.prepare_decoder(model)
    gguf = Path(source.location) / source.gguf_file if source.gguf_file else None
    calibration = _calibration_ids(ref.tokenizer, shape.bos_token_id, shape.context_length)
    with progress.stage("quantize", ", ".join(quants)):
        if len(quants) == 1:
            built = {quants[0]: _write_variant(model, quants[0], tmp, gguf, calibration)}
        else:  # each level from its own copy of the fp32 graph (quantizing and saving edit it in place)
            built = {
                q: _write_variant(
                    model if q == quants[-1] else _copy(model), q, tmp / ".candidates" / q, gguf, calibration
                )
                for q in quants
            }
        del model
        shutil.rmtree(work, ignore_errors=True)
        ref.tokenizer.save_pretrained(tmp)
        ref.model.generation_config.save_pretrained(tmp)
        ref.config.save_pretrained(tmp)
    with progress.stage("validate", "against PyTorch"):
        validations, timed, prompt_tokens = _validate(opts, ref, shape, graph, built)
    chosen, selection = _choose(opts, built, validations, timed, prompt_tokens, tmp, progress)
    with progress.stage("write", "manifest.json"):
        files = {p.name: sha256_file(p) for p in sorted(tmp.iterdir()) if p.is_file() and p.name != "export.log"}
        manifest = Manifest(
            name=source.name,
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            source=SourceInfo(
                kind=str(source.kind), spec=source.spec, name=source.name, sha256=sha, file=source.gguf_file
            ),
            graph=graph,
            quant=chosen.quant,
            recipe=chosen.recipe,
            model=shape,
            io=chosen.io,
            versions=_versions(),
            files=files,
            size_bytes=sum((tmp / f).stat().st_size for f in files),
            timings_s=dict(progress.timings),
            validation=validations[chosen.quant],
            selection=selection,
        )
        write_manifest(tmp, manifest)
    return manifest


def _choose(
    opts: ExportOptions,
    built: dict[Quant, Built],
    validations,
    timed,
    prompt_tokens: int,
    tmp: Path,
    progress: Progress,
):
    """(the variant to keep, the Selection that chose it or None); raises ExportError when none qualifies."""
    if opts.quant != AUTO:
        chosen = next(iter(built.values()))
        validation = validations[chosen.quant]
        if not validation.passed:
            raise ExportError(
                "validation against PyTorch failed: " + "; ".join(validation.failures),
                hint="nothing was written. Limits per quant level are in docs/export.md; override them with "
                "--max-ppl-increase / --min-top1 if you accept the loss",
            )
        return chosen, None
    with progress.stage("select", f"{len(built)} candidates timed, {len(validations)} validated"):
        selection = _select(opts, validations, timed, built, prompt_tokens)
        chosen = built[selection.chosen]
        for name in (chosen.io.onnx_file, f"{chosen.io.onnx_file}.data"):
            if (chosen.folder / name).exists():
                (chosen.folder / name).rename(tmp / name)
        shutil.rmtree(tmp / ".candidates")
    return Built(chosen.quant, chosen.recipe, chosen.io, tmp), selection


def _copy(model):
    import onnx

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    return copy


def _calibration_ids(tokenizer, bos_token_id: int | None, max_tokens: int) -> list[int]:
    from export.smoothing import CALIBRATION_TEXT

    ids = tokenizer.encode(CALIBRATION_TEXT.read_text(), add_special_tokens=False)
    return ([bos_token_id, *ids] if bos_token_id is not None else ids)[:max_tokens]


def _write_variant(model, quant: Quant, folder: Path, gguf: Path | None, calibration: list[int]) -> Built:
    import onnx

    from export import quantize

    model, recipe = quantize.quantize(model, quant, gguf, calibration)
    onnx_name = f"model.{quant}.onnx"
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save_model(
        model,
        str(folder / onnx_name),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=f"{onnx_name}.data",
        size_threshold=1024,
    )
    return Built(quant, recipe, _graph_io(model, onnx_name), folder)


def _select(opts: ExportOptions, validations, timed, built: dict[Quant, Built], prompt_tokens: int) -> Selection:
    from app.engine.selection import NoEligibleVariant
    from export import autoselect

    sizes = {q: b.size_bytes for q, b in built.items()}
    try:
        return autoselect.select(validations, timed, sizes, prompt_tokens, opts.threads, _selection_limit(opts))
    except NoEligibleVariant as exc:
        raise ExportError(
            str(exc),
            hint="nothing was written. Pass --max-ppl-increase PCT to accept more loss, or an explicit --quant",
        ) from exc


def _thresholds(opts: ExportOptions, quant: Quant) -> Thresholds:
    from export import validate

    base = validate.DEFAULT_THRESHOLDS[quant]
    # under --quant auto, --max-ppl-increase is the selection's limit; each level keeps its own
    ppl = opts.max_ppl_increase if opts.max_ppl_increase is not None and opts.quant != AUTO else None
    return Thresholds(
        max_ppl_increase_pct=ppl if ppl is not None else base.max_ppl_increase_pct,
        min_top1_agreement=opts.min_top1 if opts.min_top1 is not None else base.min_top1_agreement,
        require_greedy_match=base.require_greedy_match,
    )


def _validate(opts: ExportOptions, ref, shape: ModelShape, graph: GraphKind, built: dict[Quant, Built]):
    """Each variant against one PyTorch reference: (validations, timings, timing prompt length). Under
    `--quant auto` every variant is timed first and validated fastest first, until the rest cannot win."""
    import numpy as np

    from app.engine.runner import GqaRunner, OptimumRunner
    from app.engine.session import SessionConfig, open_session
    from export import autoselect, validate

    prompts = validate.encode_prompts(ref.tokenizer)
    heldout = validate.heldout_ids(ref.tokenizer, shape.bos_token_id, shape.context_length)
    torch_ref = validate.torch_reference(ref.model, prompts, heldout, NEW_TOKENS)
    max_len = min(shape.context_length, max(len(heldout), max(map(len, prompts)) + NEW_TOKENS) + 1)
    runner_cls = GqaRunner if graph is GraphKind.GQA else OptimumRunner
    slots = autoselect.BATCH_ROWS if opts.quant == AUTO else 1  # KV pages are committed only where written
    runners = {
        q: runner_cls(open_session(b.folder / b.io.onnx_file, SessionConfig(intra_op_threads=opts.threads)), shape,
                      b.io, slots, max_len)
        for q, b in built.items()
    }  # fmt: skip

    def check(quant: Quant, runner) -> Validation:
        return validate.validate(runner, torch_ref, _thresholds(opts, quant))

    if opts.quant != AUTO:
        return {q: check(q, r) for q, r in runners.items()}, {}, 0
    prompt = heldout[: max(1, min(autoselect.PROMPT_TOKENS, max_len - autoselect.DECODE_STEPS - 1))]
    timed = autoselect.time_candidates(runners, np.asarray(prompt, np.int64))
    validations = autoselect.validate_in_score_order(runners, timed, check, _selection_limit(opts))
    return validations, timed, len(prompt)


def _selection_limit(opts: ExportOptions) -> float:
    from app.engine.selection import MAX_PPL_INCREASE_PCT

    return MAX_PPL_INCREASE_PCT if opts.max_ppl_increase is None else opts.max_ppl_increase


def _graph_io(model, onnx_name: str) -> GraphIO:
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    inputs = [i.name for i in model.graph.input]
    return GraphIO(
        onnx_file=onnx_name,
        opset=opset,
        inputs=inputs,
        outputs=[o.name for o in model.graph.output],
        has_position_ids="position_ids" in inputs,
    )


def _versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for dist in _VERSIONED:
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return found


def _hub_revision(ref, source: Source) -> str:
    return getattr(ref.config, "_commit_hash", None) or f"hub:{source.spec}"

"""`llm-gateway bench [--models DIR...] [--quick] [--out DIR] [--llama-server PATH [--gguf FILE]]`: this stack
against PyTorch (and llama.cpp's server, when given), one sitting.

Exit codes: 0 every contestant measured (targets pass or fail, they are figures, not checks);
1 a contestant failed while running (the report says which and why); 2 nothing ran (bad arguments,
missing or incompatible model folders, no baseline model, a --llama-server that is not one).
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path

from app.config import DEFAULT_MODEL_DIR
from app.interrupts import exit_code, trap_signals
from benchmarks.server import kill_leftovers

DEFAULT_OUT = Path("bench-results")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--models", type=Path, nargs="+", default=[DEFAULT_MODEL_DIR], metavar="DIR",
        help="exported model folders; the first is the variant the targets judge; ORTModel runs on those exported "
        f"with --graph optimum (default {DEFAULT_MODEL_DIR})",
    )  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, tokens and client counts (< 5 min)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    parser.add_argument("--reps", type=int, default=None, help="measured repetitions (default 5; --quick 2)")
    parser.add_argument("--new-tokens", type=int, default=None, help="tokens per request (default 128; --quick 32)")
    parser.add_argument(
        "--clients", type=int, nargs="+", default=None, metavar="N",
        help="concurrent clients per burst (default 1 4 8 16 32; --quick 1 16 32)",
    )  # fmt: skip
    parser.add_argument("--threads", type=int, default=None, help="threads for every contestant (default: all cores)")
    parser.add_argument("--no-http", action="store_true", help="skip the HTTP service (its section says so)")
    parser.add_argument(
        "--scenarios", action=argparse.BooleanOptionalAction, default=None,
        help="the structured-output and prefix-cache scenarios on two more servers (default: on; --quick: off, "
        "--quick --scenarios runs them with small counts)",
    )  # fmt: skip
    parser.add_argument(
        "--llama-server", type=Path, default=None, metavar="PATH",
        help="also measure llama.cpp's llama-server binary through the same HTTP load (docs/benchmarks.md: "
        "how to build it)",
    )  # fmt: skip
    parser.add_argument(
        "--gguf", type=Path, default=None, metavar="FILE",
        help="the GGUF llama-server serves (default: the GGUF the models were exported from)",
    )  # fmt: skip


def _command() -> str:
    """The command line as typed, when this process is `llm-gateway bench ...`."""
    args = sys.argv[1:]
    return "llm-gateway " + shlex.join(args) if args[:1] == ["bench"] else "llm-gateway bench"


def _fail(message: str) -> int:
    print(f"llm-gateway bench: error: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    from app.engine.manifest import ManifestError, read_manifest
    from benchmarks.contestants import ContestError, baseline_source, build_contestants
    from benchmarks.llama_server import LlamaServerError
    from benchmarks.plan import make_plan
    from benchmarks.results import source_size
    from export.errors import ExportError
    from export.sources import resolve_source

    try:
        plan = make_plan(
            args.quick,
            args.reps,
            args.new_tokens,
            tuple(args.clients or ()),
            args.threads,
            not args.no_http,
            args.scenarios,
        )
        folders = [(folder, read_manifest(folder)) for folder in args.models]
        variants = [m.graph_quant for _, m in folders]
        if len(set(variants)) != len(variants):
            raise ContestError(f"two --models folders hold the same variant ({', '.join(variants)})")
        source = baseline_source([m for _, m in folders])
        resolved = resolve_source(source)
        llama = _llama_server(args, resolved)
    except (ValueError, ManifestError, ContestError, ExportError, LlamaServerError) as exc:
        return _fail(str(exc))
    size = source_size(resolved.location, resolved.gguf_file)
    contestants = build_contestants(folders, plan.http, size, llama)
    # SIGTERM and SIGINT unwind like Ctrl-C, so that the workers and the server this run started are stopped,
    # not orphaned
    interrupted = trap_signals()
    try:
        return _execute(plan, contestants, folders, source, args.out)
    except BaseException as exc:
        return exit_code(exc, interrupted, "bench", "workers and server stopped, no report written", "")
    finally:
        kill_leftovers()


def _llama_server(args: argparse.Namespace, resolved):
    """The llama-server contestant, checked before anything runs; None without --llama-server."""
    from benchmarks.llama_server import LlamaServerError, find_llama_server

    if args.llama_server is None:
        if args.gguf is not None:
            raise LlamaServerError("--gguf is the model for --llama-server; pass --llama-server PATH too")
        return None
    source_gguf = Path(resolved.location) / resolved.gguf_file if resolved.gguf_file else None
    return find_llama_server(args.llama_server, args.gguf, source_gguf, resolved.spec)


def _execute(plan, contestants, folders, source: str | None, out: Path) -> int:
    from app.engine.tokenizer import TextTokenizer
    from benchmarks.machine import DISTURBED
    from benchmarks.plan import encode, load_prompts
    from benchmarks.report import busy_warning, write_outputs
    from benchmarks.results import RunInfo, assemble
    from benchmarks.runner import Progress, Run, Setup, bursting

    started = datetime.now(UTC).replace(microsecond=0)
    first_dir, first = folders[0]
    tokenizer = TextTokenizer(first_dir, first.model)
    prompts = [encode(p, tokenizer) for p in load_prompts()]
    burst_prompt = next(p for p in prompts if p.prompt.length == "short" and p.prompt.style == "chat")
    workdir = out / "work"
    progress = Progress()
    progress.say(
        f"{plan.mode} run: {plan.reps} repetitions, {plan.new_tokens} new tokens, clients {list(plan.levels)}, "
        f"{plan.threads} threads; output in {out}"
    )
    setup = Setup(plan, prompts, burst_prompt, source, workdir, bursting(contestants, plan.quick))
    run = Run(contestants, setup, progress)
    measured = run.execute()
    run_info = RunInfo(_command(), started.isoformat(), progress.elapsed(), run.rounds.summary())
    results = assemble(plan, contestants, measured, prompts, run_info, run.scenarios, run.scenario_error)
    paths = write_outputs(results, out)
    shutil.rmtree(workdir / "ortmodel", ignore_errors=True)
    for target in results.targets:
        progress.say(f"target {target.status:<12} {target.name}: {target.shown}")
    progress.say(f"wrote {paths['report']}, {paths['results']} and {len(paths) - 2} charts")
    if results.foreign_load and results.foreign_load.share > DISTURBED:
        progress.say(f"WARNING: {busy_warning(results.foreign_load)}")
    failed = [cid for cid, m in measured.items() if m.error]
    if failed:
        progress.say(f"FAILED contestants: {', '.join(failed)} (see the report and {workdir / 'logs'})")
    return 1 if failed else 0

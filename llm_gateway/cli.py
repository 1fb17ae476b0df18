"""The `llm-gateway` console script: export, serve, bench.

This is the composition root: the only module that imports `app`, `export` and `benchmarks` together (they
import `app` and never this). Each subcommand imports its own dependencies lazily, so that `serve` never imports
torch, transformers or optimum (the runtime image does not even have them); a missing `export` or `benchmarks`
package turns its subcommand into a clear error rather than breaking `serve`.
"""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    from app import serve as serve_cli

    parser = argparse.ArgumentParser(prog="llm-gateway", description="CPU-first LLM serving on ONNX Runtime.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    export = sub.add_parser("export", help="convert, quantize and validate a model once")
    try:
        from export import cli as export_cli
    except ImportError:  # an install without the exporter
        export.set_defaults(missing="export")
    else:
        export_cli.add_arguments(export)
    serve_cli.add_arguments(sub.add_parser("serve", help="serve an exported model over HTTP"))
    bench = sub.add_parser("bench", help="measure this stack against the PyTorch baseline")
    try:
        from benchmarks import cli as bench_cli
    except ImportError:  # the runtime image ships without the benchmarks
        bench.set_defaults(missing="benchmarks")
    else:
        bench_cli.add_arguments(bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    missing = getattr(args, "missing", None)
    if missing is not None:
        print(f"llm-gateway {args.command}: not part of this install (no {missing} package)", file=sys.stderr)
        return 2
    if args.command == "export":
        from export import cli as export_cli

        return export_cli.run(args)
    if args.command == "serve":
        from app import serve as serve_cli

        return serve_cli.run(args)
    from benchmarks import cli as bench_cli

    return bench_cli.run(args)

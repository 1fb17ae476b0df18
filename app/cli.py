"""The `llm-gateway` console script: export, serve, bench.

Each subcommand imports its own dependencies lazily, so that `serve` never imports torch, transformers
or optimum (the runtime image does not even have them).
"""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    from app import serve as serve_cli
    from export import cli as export_cli

    parser = argparse.ArgumentParser(prog="llm-gateway", description="CPU-first LLM serving on ONNX Runtime.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    export_cli.add_arguments(sub.add_parser("export", help="convert, quantize and validate a model once"))
    serve_cli.add_arguments(sub.add_parser("serve", help="serve an exported model over HTTP"))
    bench = sub.add_parser("bench", help="measure this stack against the PyTorch baseline")
    try:
        from benchmarks import cli as bench_cli
    except ImportError:  # the runtime image ships without the benchmarks
        bench.set_defaults(bench_missing=True)
    else:
        bench_cli.add_arguments(bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "export":
        from export import cli as export_cli

        return export_cli.run(args)
    if args.command == "serve":
        from app import serve as serve_cli

        return serve_cli.run(args)
    if getattr(args, "bench_missing", False):
        print("llm-gateway bench: the benchmarks are not installed here; install llm-gateway[bench]", file=sys.stderr)
        return 2
    from benchmarks import cli as bench_cli

    return bench_cli.run(args)


if __name__ == "__main__":
    sys.exit(main())

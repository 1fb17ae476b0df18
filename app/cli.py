"""The `llm-gateway` console script. Subcommands import their own dependencies lazily, so that
`serve` never imports torch, transformers or optimum."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    from export import cli as export_cli

    parser = argparse.ArgumentParser(prog="llm-gateway", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    export_cli.add_arguments(sub.add_parser("export", help="convert, quantize and validate a model once"))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "export":
        from export import cli as export_cli

        return export_cli.run(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())

"""`llm-gateway serve [--model DIR] [--host] [--port]`: the Litestar app under uvicorn."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        type=Path,
        default=None,
        metavar="DIR",
        help="exported model folder (env LLM_GATEWAY_MODEL_DIR; default models/SmolLM2-135M-Instruct-gqa-auto)",
    )
    parser.add_argument("--host", default=None, help="bind address (env LLM_GATEWAY_HOST; default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="TCP port (env LLM_GATEWAY_PORT; default 8000)")


def run(args: argparse.Namespace) -> int:
    from app.config import SettingsError, load_settings

    try:
        settings = load_settings(model_dir=args.model, host=args.host, port=args.port)
    except SettingsError as exc:
        print(f"llm-gateway serve: error: {exc}", file=sys.stderr)
        return 2
    from app.server import serve

    return serve(settings)

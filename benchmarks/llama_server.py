"""llama-server (llama.cpp's HTTP server) as an optional contestant: `llm-gateway bench --llama-server PATH
[--gguf FILE]`, serving the GGUF our export started from, measured through the same HTTP harness as
`llm-gateway serve` (benchmarks/load.py) in the same run, with the same prompts, client counts, new-token
counts and threads.

The binary is checked before anything runs (`PATH --version`). The server gets one slot per client of the
largest burst (`-np`), each slot the context the longest prompt and the new tokens need (`-c` is the total
over slots; with -np given the KV cache is per slot, not unified), continuous batching, the GGUF's own chat
template (`--jinja`), no web UI. Our server runs its prefix cache off in these figures, so every repetition
is a cold prefill on llama-server too: no prompt cache (`--no-cache-prompt`, and `cache_prompt: false` in
every request) and no host-memory prompt cache (`--cache-ram 0`, which would also inflate its RSS). Tokens
are counted the way ours are: `usage.completion_tokens` (llama-server's n_decoded) from the stream's usage
chunk, which `stream_options.include_usage` asks for.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.load import HttpService
from benchmarks.plan import EncodedPrompt, Plan
from benchmarks.server import HOST, ServeProcess

BUILD_HINT = "build it as docs/benchmarks.md says (section 'llama-server'), then pass build/bin/llama-server"
SLOT_ROUND = 256  # a slot's context is rounded up to this many tokens
SLOT_MARGIN = 64  # tokens on top of the longest prompt and the new tokens (llama-server's own template and BOS)
ENV_PREFIX = "LLAMA_ARG_"  # llama-server reads its flags from these too; the bench passes none on


class LlamaServerError(Exception):
    """--llama-server or --gguf cannot be used; the message says why and what to pass instead."""


@dataclass(frozen=True, slots=True)
class LlamaServer:
    binary: Path
    gguf: Path
    version: (
        str  # as `llama-server --version` prints it: "0.6.0-dev (build 11434, commit 1a2b3c4)", or "7200 (1a2b3c4)"
    )

    @property
    def build(self) -> str:
        """llama.cpp's release name for it, b<build number> ("b11434"); the version as printed without one."""
        found = re.search(r"build (\d+)", self.version) or re.match(r"(\d+) ", self.version)
        return f"b{found.group(1)}" if found else self.version.split()[0]


def check_binary(path: Path) -> str:
    """The version `path --version` prints; raises LlamaServerError unless it is a runnable llama-server."""
    if not path.exists():
        raise LlamaServerError(f"--llama-server {path} does not exist; {BUILD_HINT}")
    if not path.is_file():
        raise LlamaServerError(f"--llama-server {path} is not a file; {BUILD_HINT}")
    if not os.access(path, os.X_OK):
        raise LlamaServerError(f"--llama-server {path} is not executable (chmod +x it, or pass the built binary)")
    try:
        done = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LlamaServerError(f"--llama-server {path}: `{path.name} --version` failed: {exc}") from None
    lines = (done.stdout + done.stderr).splitlines()
    version = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("version:")), None)
    if done.returncode != 0 or version is None:
        tail = " | ".join(lines[-3:]) or "no output"
        raise LlamaServerError(
            f"--llama-server {path} is not llama.cpp's llama-server: `{path.name} --version` exited with "
            f"{done.returncode} and printed no 'version:' line ({tail})"
        )
    return version


def resolve_gguf(gguf: Path | None, source_gguf: Path | None, source_spec: str) -> Path:
    """--gguf, else the GGUF the models were exported from (the embedded one by default)."""
    if gguf is None:
        if source_gguf is None:
            raise LlamaServerError(
                f"the models were exported from {source_spec}, not from a GGUF file: pass --gguf FILE "
                "(the same model as a GGUF) for llama-server"
            )
        return source_gguf
    if not gguf.is_file() or gguf.suffix.lower() != ".gguf":
        raise LlamaServerError(f"--gguf {gguf} is not a .gguf file")
    return gguf


def find_llama_server(binary: Path, gguf: Path | None, source_gguf: Path | None, source_spec: str) -> LlamaServer:
    """The contestant's binary, GGUF and version, checked before the run starts."""
    version = check_binary(binary)
    return LlamaServer(binary.resolve(), resolve_gguf(gguf, source_gguf, source_spec).resolve(), version)


def slot_context(prompts: list[EncodedPrompt], new_tokens: int) -> int:
    """Tokens per slot: the longest prompt, the new tokens and a margin, rounded up to SLOT_ROUND."""
    need = max(len(p.ids) for p in prompts) + new_tokens + SLOT_MARGIN
    return -(-need // SLOT_ROUND) * SLOT_ROUND


def server_args(spec: LlamaServer, plan: Plan, slot_tokens: int) -> list[str]:
    """llama-server's flags (every one of them exists in the llama.cpp version docs/benchmarks.md builds)."""
    slots = max(plan.levels)
    threads = str(plan.threads)
    return [
        "-m", str(spec.gguf), "-t", threads, "-tb", threads, "-np", str(slots), "-c", str(slots * slot_tokens),
        "--cont-batching", "--jinja", "--no-webui", "--no-cache-prompt", "--cache-ram", "0", "--alias", spec.gguf.stem,
    ]  # fmt: skip


def llama_env() -> dict[str, str]:
    """This environment without LLAMA_ARG_* variables, which would override the flags the bench sets."""
    return {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}


class LlamaServerProcess(ServeProcess):
    """`llama-server ARGS --host 127.0.0.1 --port PORT`; ready when GET /health answers 200 (503 while loading)."""

    name = "llama-server"
    ready_path = "/health"
    log_name = "llama-server"

    def __init__(self, binary: Path, args: list[str], log_dir: Path) -> None:
        self._launch(lambda port: [str(binary), *args, "--host", HOST, "--port", str(port)], llama_env(), log_dir)


class LlamaService(HttpService):
    """The runner's handle on llama-server: the HTTP contestant's harness, llama-server's process and flags."""

    extra_body: Mapping[str, Any] = {"cache_prompt": False}

    def __init__(self, spec: LlamaServer, plan: Plan, workdir: Path, slot_tokens: int) -> None:
        self.spec = spec
        self.args = server_args(spec, plan, slot_tokens)
        self.slot_tokens = slot_tokens
        self._attach(LlamaServerProcess(spec.binary, self.args, workdir / "logs"), plan)

    def describe(self) -> str:
        slots = max(self.plan.levels)
        return (
            f"llama-server {self.spec.version} ({self.spec.binary}) on 127.0.0.1, model id {self.model!r}, "
            f"{slots} slots of {self.slot_tokens} tokens, {self.plan.threads} threads, requests with "
            f"cache_prompt=false; flags: {' '.join(self.args)}"
        )

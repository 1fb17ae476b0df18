"""Session fixtures: the tiny test model, and the real SmolLM2 exported once per test run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CLI = str(Path(sys.executable).parent / "llm-gateway")
DEFAULT_VARIANT = ("gqa", "auto")  # `llm-gateway export` with no arguments: the quant chosen here
# LLM_GATEWAY_TEST_EXPORTS=DIR keeps real-model exports in DIR between runs (development only; CI exports fresh)
REUSE_DIR = os.environ.get("LLM_GATEWAY_TEST_EXPORTS", "")


def run_cli(
    *args: str, cwd: Path | None = None, timeout: float = 900, env: dict | None = None, check: bool = False
) -> subprocess.CompletedProcess:
    merged = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    # its own process group: on a timeout, the CLI's children (a bench's servers and workers) go with it
    with subprocess.Popen(
        [CLI, *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=merged,
        start_new_session=True,
    ) as child:  # fmt: skip
        try:
            stdout, stderr = child.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.communicate()
            raise
    proc = subprocess.CompletedProcess(child.args, child.returncode, stdout, stderr)
    if check and proc.returncode != 0:
        raise AssertionError(f"llm-gateway {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


@pytest.fixture(scope="session")
def tiny_source(tmp_path_factory) -> Path:
    from tests.tiny_model import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("tiny") / "tiny-llama")


@pytest.fixture(scope="session")
def tiny_models(tiny_source, tmp_path_factory) -> dict[str, Path]:
    """The tiny model exported fp32 on both graphs (seconds)."""
    out = tmp_path_factory.mktemp("tiny-exports")
    found = {}
    for graph in ("gqa", "optimum"):
        dest = out / f"tiny-{graph}-fp32"
        run_cli(
            "export", str(tiny_source), "--graph", graph, "--quant", "fp32", "--out", str(dest), "--quiet", check=True
        )
        found[graph] = dest
    return found


class RealModels:
    """The embedded SmolLM2 exported through the real CLI, each variant at most once per session."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._done: dict[tuple[str, str], Path] = {}
        self._lock = threading.Lock()

    def get(self, graph: str, quant: str) -> Path:
        with self._lock:
            key = (graph, quant)
            if key not in self._done and REUSE_DIR:
                # a developer's cache across runs (CI never sets it): export there once, reuse after
                path = Path(REUSE_DIR) / f"SmolLM2-135M-Instruct-{graph}-{quant}"
                args = () if (path / "manifest.json").exists() else ("--graph", graph, "--quant", quant)
                if args:
                    run_cli("export", *args, "--out", str(path), "--quiet", cwd=self.workdir, check=True)
                self._done[key] = path
            if key not in self._done:
                if key == DEFAULT_VARIANT:
                    # the default variant comes from `llm-gateway export` with no arguments at all
                    run_cli("export", cwd=self.workdir, check=True)
                    path = self.workdir / "models" / "SmolLM2-135M-Instruct-gqa-auto"
                else:
                    path = self.workdir / "models" / f"SmolLM2-135M-Instruct-{graph}-{quant}"
                    run_cli(
                        "export", "--graph", graph, "--quant", quant, "--out", str(path), cwd=self.workdir, check=True
                    )
                self._done[key] = path
            return self._done[key]

    @property
    def default(self) -> Path:
        return self.get(*DEFAULT_VARIANT)


@pytest.fixture(scope="session")
def real_models(tmp_path_factory) -> RealModels:
    return RealModels(tmp_path_factory.mktemp("real"))


@pytest.fixture(scope="session")
def torch_smollm():
    """The PyTorch reference (dequantized from the embedded GGUF) and its HF tokenizer."""
    from export.loading import load_config, load_reference
    from export.sources import resolve_source

    source = resolve_source(None)
    return load_reference(source, load_config(source))

"""Deploy fixtures: the runtime image's Python environment rebuilt in a venv, a server started from it, and
Debian's promtool and compose schema fetched with apt-get into the session's tmp dir (nothing installed)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from benchmarks.server import ServerError, free_port, stop_process, wait_ready
from tests.deploy.dockerfile import env_values, lay_out_context, read_stages, replay_pip_steps

TOOL_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def debian_package(name: str, dest: Path) -> Path:
    """Unpack Debian package `name` under dest with `apt-get download` and `dpkg-deb -x`; returns the root."""
    if shutil.which("apt-get") is None:
        pytest.skip(f"no apt-get on this machine to fetch Debian's {name} (the project's machines are Debian)")

    def download() -> subprocess.CompletedProcess:
        return subprocess.run(["apt-get", "download", name], cwd=dest, capture_output=True, text=True, timeout=600)

    proc = download()
    if proc.returncode != 0 and os.geteuid() == 0:  # a fresh machine has no package lists yet
        subprocess.run(["apt-get", "update"], capture_output=True, timeout=600, check=True)
        proc = download()
    assert proc.returncode == 0, f"apt-get download {name} failed:\n{proc.stderr}"
    root = dest / "root"
    subprocess.run(["dpkg-deb", "-x", str(next(dest.glob(f"{name}_*.deb"))), str(root)], check=True)
    return root


@pytest.fixture(scope="session")
def promtool(tmp_path_factory) -> Path:
    found = shutil.which("promtool")
    if found:
        return Path(found)
    return debian_package("prometheus", tmp_path_factory.mktemp("prometheus-deb")) / "usr/bin/promtool"


@pytest.fixture(scope="session")
def compose_schema(tmp_path_factory) -> Path:
    """The Compose specification schema as Docker's docker-compose (Debian package) validates with it."""
    root = debian_package("docker-compose", tmp_path_factory.mktemp("compose-deb"))
    return next(root.glob("usr/lib/python3/dist-packages/compose/config/compose_spec.json"))


@dataclass(frozen=True, slots=True)
class RuntimeEnv:
    venv: Path
    workdir: Path  # runtime-deps' WORKDIR: what it COPYs from the build context
    home: Path  # HOME as in the image: a path that does not exist (the image user's is /nonexistent)
    image_env: dict[str, str]  # the runtime stage's ENV

    @property
    def bin(self) -> Path:
        return self.venv / "bin"

    def clean_env(self, **extra: str) -> dict[str, str]:
        """A container-like environment: PATH to the venv first, the image's ENV, then extra."""
        base = {"PATH": f"{self.bin}:/usr/local/bin:/usr/bin:/bin", "HOME": str(self.home), "LANG": "C.UTF-8"}
        return {**base, **self.image_env, **extra}


@pytest.fixture(scope="session")
def runtime_env(tmp_path_factory) -> RuntimeEnv:
    """The runtime's venv built as the Dockerfile's runtime-deps stage builds it, in a fresh venv (~30 s)."""
    stages = read_stages()
    stage = stages["runtime-deps"]
    root = tmp_path_factory.mktemp("runtime")
    workdir, venv = root / "workdir", root / "venv"
    workdir.mkdir()
    lay_out_context(stage, workdir)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    replay_pip_steps(stage, venv / "bin" / "python", workdir, TOOL_ENV)
    image_env = {k: v for k, v in env_values(stages["runtime"]).items() if k != "PATH"}  # PATH: clean_env's venv
    return RuntimeEnv(venv=venv, workdir=workdir, home=root / "nonexistent", image_env=image_env)


def http_status(url: str, timeout: float = 5) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


@dataclass(frozen=True, slots=True)
class RuntimeServer:
    url: str
    port: int
    pid: int
    stderr: Path

    def stderr_text(self) -> str:
        return self.stderr.read_text(errors="replace")


@pytest.fixture(scope="module")
def runtime_server(runtime_env, real_models, tmp_path_factory):
    """`llm-gateway serve` (the image's CMD) from the runtime venv on the default export, with import profiling.

    It runs as us, not as the image's UID 10001: the venv's interpreter lives under /root here (mode 0700)."""
    port = free_port()
    logs = tmp_path_factory.mktemp("runtime-server")
    env = runtime_env.clean_env(
        LLM_GATEWAY_HOST="127.0.0.1",  # the image binds 0.0.0.0; tests stay on loopback
        LLM_GATEWAY_PORT=str(port),
        LLM_GATEWAY_MODEL_DIR=str(real_models.default),
        LLM_GATEWAY_THREADS="2",
        PYTHONPROFILEIMPORTTIME="1",
    )
    with open(logs / "stdout", "wb") as out, open(logs / "stderr", "wb") as err:
        proc = subprocess.Popen(
            [str(runtime_env.bin / "llm-gateway"), "serve"], cwd=runtime_env.workdir, env=env, stdout=out, stderr=err
        )
    server = RuntimeServer(url=f"http://127.0.0.1:{port}", port=port, pid=proc.pid, stderr=logs / "stderr")
    try:
        try:
            wait_ready(server.url, 300, exited=proc.poll)
        except ServerError:
            pytest.fail(f"server not ready (exit {proc.poll()}):\n{server.stderr_text()[-4000:]}")
        yield server
    finally:
        stop_process(proc)

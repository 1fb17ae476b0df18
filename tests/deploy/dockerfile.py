"""Just enough of a Dockerfile reader for the deploy tests: instructions per stage, and the runtime stage replayed
(its COPY and `pip` steps) into a folder and a virtual environment, so the tests install what the image installs."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo")  # as .dockerignore says


@dataclass(frozen=True, slots=True)
class Instruction:
    keyword: str  # upper case: FROM, RUN, COPY, ...
    args: str  # the rest, continuation lines joined


def logical_lines(text: str) -> list[str]:
    """Lines with `\\` continuations joined; comments and blank lines dropped (also inside continuations)."""
    lines, pending = [], ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1].strip() + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    return lines


def read_stages(path: Path = DOCKERFILE) -> dict[str, list[Instruction]]:
    """Stage name (the `AS` name, or its index) -> its instructions, FROM first."""
    stages: dict[str, list[Instruction]] = {}
    current: list[Instruction] = []
    for line in logical_lines(path.read_text()):
        keyword, _, args = line.partition(" ")
        instruction = Instruction(keyword.upper(), args.strip())
        if instruction.keyword == "FROM":
            words = args.split()
            name = words[-1] if len(words) >= 3 and words[-2].upper() == "AS" else str(len(stages))
            current = stages.setdefault(name, [])
        current.append(instruction)
    return stages


def global_args(path: Path = DOCKERFILE) -> dict[str, str]:
    """The ARG defaults declared before the first FROM (what FROM lines may use)."""
    found = {}
    for line in logical_lines(path.read_text()):
        keyword, _, args = line.partition(" ")
        if keyword.upper() == "FROM":
            return found
        if keyword.upper() == "ARG" and "=" in args:
            name, value = args.split("=", 1)
            found[name.strip()] = value.strip()
    return found


def of_kind(stage: list[Instruction], keyword: str) -> list[str]:
    return [i.args for i in stage if i.keyword == keyword]


def copy_args(args: str) -> tuple[dict[str, str], list[str], str]:
    """`--from=build a b dest` -> ({"from": "build"}, ["a", "b"], "dest")."""
    words = shlex.split(args)
    flags = dict(w[2:].split("=", 1) for w in words if w.startswith("--"))
    paths = [w for w in words if not w.startswith("--")]
    return flags, paths[:-1], paths[-1]


def env_values(stage: list[Instruction]) -> dict[str, str]:
    return dict(word.split("=", 1) for args in of_kind(stage, "ENV") for word in shlex.split(args))


def pip_steps(stage: list[Instruction]) -> list[list[str]]:
    """Every `pip ...` command of the stage's RUN lines, split at `&&`."""
    steps = []
    for args in of_kind(stage, "RUN"):
        for part in args.split("&&"):
            argv = shlex.split(part)
            if argv and Path(argv[0]).name == "pip":  # pip, or a venv's: /opt/venv/bin/pip
                steps.append(["pip", *argv[1:]])
    return steps


def lay_out_context(stage: list[Instruction], workdir: Path) -> list[str]:
    """Copy what the stage's COPY lines take from the build context (not --from) into workdir; return the sources."""
    copied = []
    for args in of_kind(stage, "COPY"):
        flags, sources, dest = copy_args(args)
        if "from" in flags:
            continue
        target = workdir / dest
        for source in sources:
            src = REPO / source
            if src.is_dir():
                shutil.copytree(src, target, ignore=DOCKERIGNORED, dirs_exist_ok=True)
            else:
                into = target / src.name if dest.endswith("/") or len(sources) > 1 else target
                into.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, into)
            copied.append(source)
    return copied


def replay_pip_steps(stage: list[Instruction], python: Path, workdir: Path, env: dict[str, str]) -> None:
    """Run the stage's pip commands with `python -m pip`, in workdir, as the image build runs them."""
    steps = pip_steps(stage)
    if not steps:
        raise AssertionError("the stage has no pip steps to replay")
    for argv in steps:
        proc = subprocess.run(
            [str(python), "-m", *argv], cwd=workdir, env=env, capture_output=True, text=True, timeout=900
        )
        if proc.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr}")

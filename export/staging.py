"""Build in a temporary folder beside the destination; rename into place only when everything passed."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from export.errors import ExportError


def check_destination(dest: Path, force: bool) -> None:
    if dest.exists() and not force:
        raise ExportError(f"{dest} already exists", hint="pass --force to replace it, or choose another --out")
    if dest.exists() and not dest.is_dir():
        raise ExportError(f"{dest} exists and is not a folder", hint="choose another --out")


def check_free_space(folder: Path, needed: int) -> None:
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise ExportError(
            f"not enough disk space in {folder}: {free / 1e6:,.0f} MB free, the export needs about "
            f"{needed / 1e6:,.0f} MB",
            hint="free some space or pass --out on another disk",
        )


def disk_full_error(exc: OSError, where: Path) -> ExportError:
    return ExportError(
        f"the disk filled up while writing to {where}: {exc.strerror}",
        hint="free some space or pass --out on another disk; nothing was written",
    )


@contextlib.contextmanager
def staged_folder(dest: Path, force: bool) -> Iterator[Path]:
    """Yield an empty temporary folder next to `dest`; on success it becomes `dest` in one rename."""
    check_destination(dest, force)
    parent = dest.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=parent))
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)  # mkdtemp makes it 0700; the model folder should not be private
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise disk_full_error(exc, parent) from exc
        raise ExportError(
            f"cannot write to {parent}: {exc.strerror or exc}", hint="choose a writable --out folder"
        ) from exc
    try:
        yield tmp
        _commit(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _commit(tmp: Path, dest: Path) -> None:
    umask = os.umask(0)
    os.umask(umask)
    for path in tmp.iterdir():  # onnx writes external data 0600; a model folder is meant to be readable
        if path.is_file():
            path.chmod(0o666 & ~umask)
    old = None
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
        dest.rename(old)
    try:
        tmp.rename(dest)
    except OSError:
        if old is not None:
            old.rename(dest)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)

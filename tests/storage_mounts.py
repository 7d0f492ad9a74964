"""Real storage trouble for the tests: a small tmpfs that fills up, and a read-only mount.

Both need root (mount(8)); the tests that use them skip elsewhere with `NEEDS_ROOT` as the reason.
As root, chmod cannot make a file read-only (root writes it anyway), hence a read-only bind mount.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
NEEDS_ROOT = (
    "needs root to mount a small tmpfs or a read-only bind mount (mount(8)); as another user "
    "a full disk and a read-only file system cannot be made for real"
)
can_mount = pytest.mark.skipif(
    not IS_ROOT or shutil.which("mount") is None or shutil.which("umount") is None,
    reason=NEEDS_ROOT,
)


def _run(*command: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"{' '.join(command)} failed ({done.stderr.strip()}): {NEEDS_ROOT}")


def _unmount(directory: Path) -> None:
    # Lazy: a server still holding files there must not keep the mount alive for later tests.
    subprocess.run(["umount", "-l", str(directory)], capture_output=True, check=False)


@contextmanager
def small_tmpfs(directory: Path, size: str = "8m") -> Iterator[Path]:
    """A tmpfs of `size` mounted on `directory` (created), unmounted afterwards."""
    directory.mkdir(parents=True, exist_ok=True)
    _run("mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory))
    try:
        yield directory
    finally:
        _unmount(directory)


@contextmanager
def read_only_view(source: Path, directory: Path) -> Iterator[Path]:
    """`source` (a directory) seen read-only at `directory`, through a read-only bind mount."""
    directory.mkdir(parents=True, exist_ok=True)
    _run("mount", "--bind", str(source), str(directory))
    try:
        _run("mount", "-o", "remount,bind,ro", str(directory))
        yield directory
    finally:
        _unmount(directory)


def fill(directory: Path) -> Path:
    """Fill the file system of `directory` with one file until no byte is left; returns it."""
    filler = directory / "filler.bin"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        # Big writes first, then small ones: down to the very last block.
        for size in (1 << 20, 64 * 1024, 4096, 512):
            chunk = b"\0" * size
            with suppress(OSError):
                while True:
                    os.write(fd, chunk)
    finally:
        os.close(fd)
    return filler

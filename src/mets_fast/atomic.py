"""Atomic writes: how every file and directory the package writes (stores, cache entries, run
files, checkpoints, indexes, plots, arrays) gets into place whole or not at all.

Each writer fills a temporary name of its own in the target's directory (hidden, with the
process id and a random token, so two writers of one target never share it), flushes it to disk,
renames it over the target (atomic on POSIX within one file system) and flushes the directory,
so the rename itself survives a crash.
"""

from __future__ import annotations

import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

_MARK = ".tmp-"


def temp_path(target: str | os.PathLike, suffix: str = "") -> Path:
    """A fresh temporary name for `target`, in its directory: ``.<name>.tmp-<pid>-<token>``
    and `suffix` (a writer that chooses its format by the extension, such as matplotlib's
    ``savefig``, needs one)."""
    target = Path(target)
    return target.with_name(f".{target.name}{_MARK}{os.getpid()}-{uuid.uuid4().hex[:12]}"
                            f"{suffix}")


@contextmanager
def atomic_file(target: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yields a temporary path to write `target`'s content to; when the block ends without an
    exception, the file is flushed and renamed over `target`.  Otherwise it is removed and
    `target` stays as it was."""
    target = Path(target)
    tmp = temp_path(target, suffix)
    try:
        yield tmp
        fsync_file(tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)


def write_bytes(target: str | os.PathLike, data: bytes) -> None:
    """`data` at `target`, atomically."""
    with atomic_file(target) as tmp:
        tmp.write_bytes(data)


def write_text(target: str | os.PathLike, text: str) -> None:
    """`text` (UTF-8) at `target`, atomically."""
    write_bytes(target, text.encode("utf-8"))


def link_or_copy(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """`target` becomes a hard link to `source` (a copy where the file system has no hard
    links), replacing what was there in one rename."""
    with atomic_file(target) as tmp:
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)


def temp_dir(target: str | os.PathLike) -> Path:
    """A new, empty temporary directory for `target` (see :func:`commit_dir`); those a killed
    writer of `target` left behind are removed first."""
    for stale in stale_temporaries(target):
        shutil.rmtree(stale, ignore_errors=True)
    path = temp_path(target)
    path.mkdir(parents=True)
    return path


def commit_dir(tmp: str | os.PathLike, target: str | os.PathLike) -> None:
    """Flushes every file of the directory `tmp` and renames it to `target`.  A `target`
    already there is first renamed aside (a directory cannot be renamed over a full one) and
    removed after, so `target` is never a mix of the two."""
    tmp, target = Path(tmp), Path(target)
    fsync_tree(tmp)
    if target.exists():
        old = temp_path(target)
        os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, target)
    fsync_dir(target.parent)


def stale_temporaries(target: str | os.PathLike) -> list:
    """The temporaries of `target` whose writing process is gone (left by a crash)."""
    target = Path(target)
    found = []
    for tmp in target.parent.glob(f".{target.name}{_MARK}*"):
        pid = tmp.name[len(f".{target.name}{_MARK}"):].split("-")[0]
        if pid.isdigit() and not _alive(int(pid)):
            found.append(tmp)
    return found


def fsync_file(path: str | os.PathLike) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def fsync_dir(path: str | os.PathLike) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(path: str | os.PathLike) -> None:
    """Flushes every file below `path`, then the directories themselves."""
    for folder, _, files in os.walk(path):
        for name in files:
            fsync_file(Path(folder) / name)
        fsync_dir(folder)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

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
    `target` stays as it was.  Temporaries of `target` that a killed writer left are removed
    first."""
    target = Path(target)
    for stale in stale_temporaries(target):
        stale.unlink(missing_ok=True)
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


def remove_stale(directory: str | os.PathLike) -> list:
    """Removes every temporary in `directory` (not below it) whose writer is gone, whatever
    its target; returns their paths.  For a folder a writer is about to take over (a run being
    resumed), where a killed writer's target may never be written again."""
    found = []
    for tmp in Path(directory).glob(f".*{_MARK}*"):
        pid = tmp.name.split(_MARK, 1)[1].split("-")[0]
        if pid.isdigit() and not _alive(int(pid)):
            if tmp.is_dir():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink(missing_ok=True)
            found.append(tmp)
    return found


def lock(directory: str | os.PathLike, what: str) -> int:
    """Takes the lock of `directory` (``.lock`` in it, created if new) for this process and
    returns its descriptor (the lock lasts until it is closed or the process ends, however it
    ends).  Raises ValueError naming the holder when another process has it; `what` says what
    the holder is doing (``"training it"``)."""
    import fcntl

    path = Path(directory) / ".lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise ValueError(f"{directory} is locked: process {holder} is {what}; wait for it to "
                         f"end or stop it") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


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

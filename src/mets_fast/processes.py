"""Worker processes that read and prepare records: spawned (a fork after Numba's parallel layer
has started is unsafe), one core each, as many as the cores and the memory hold, and never
outliving the process that started them.

A killed ``prepare`` used to leave its workers (and multiprocessing's resource tracker) alive
for ever, each blocked on a queue whose other end was gone, ~380 MB each.  Each worker now
watches its parent and leaves the moment it is gone (a thread polling ``os.getppid()``, which
works for a SIGKILL as for anything else; Linux's parent-death signal fires when the *thread*
that spawned a worker ends, which a pool's feeding thread does before the pool closes).  With
the workers gone, the resource tracker sees its pipe close and leaves too.
"""

from __future__ import annotations

import os
import threading
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

# what one worker holds while it prepares records (380 MB measured on MIMIC-IV-ECG's shards,
# most of it NumPy, SciPy, Numba and wfdb imported), with room to spare
WORKER_MB = 500
_WATCH_S = 0.5  # how often a worker looks for its parent


def cores() -> int:
    """The cores this process may run on (its affinity, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def available_mb() -> float | None:
    """The memory available to new processes in MB (Linux's MemAvailable; None elsewhere)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def cap_workers(workers: int, flag: str = "--workers") -> int:
    """`workers` capped at what this machine holds: its cores, and the available memory at
    :data:`WORKER_MB` each; a warning names the cap where it applies."""
    memory = available_mb()
    most = min(cores(), max(1, int(memory // WORKER_MB)) if memory is not None else workers)
    if workers > most:
        warnings.warn(f"{flag} {workers} capped at {most}: this machine has {cores()} core(s)"
                      + (f" and {memory / 1024:.1f} GB available ({WORKER_MB} MB a worker)"
                         if memory is not None else ""), stacklevel=2)
        return most
    return workers


def worker_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of `workers` spawned processes, each with Numba and BLAS on one thread and gone
    as soon as this process is."""
    return ProcessPoolExecutor(workers, mp_context=get_context("spawn"),
                               initializer=_start_worker, initargs=(os.getpid(),))


def _start_worker(parent: int) -> None:
    from .threads import set_threads

    threading.Thread(target=_watch, args=(parent,), daemon=True,
                     name="mets-fast-parent-watch").start()
    set_threads(1, numeric_only=True)


def _watch(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(_WATCH_S)
    os._exit(1)  # the parent is gone: nobody will read what this worker makes

"""Thread counts: one call sets every pool the package runs on, so that ``--threads N`` means
N everywhere: torch's intra-op pool (which our OpenMP kernels follow: they take
``torch.get_num_threads()`` per call), Numba's parallel layer, FAISS's OpenMP and the BLAS /
OpenMP libraries that NumPy, SciPy and scikit-learn load (through threadpoolctl)."""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator


def default_threads() -> int:
    """The cores of this machine shared among the processes ``torchrun`` started on it."""
    return max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def set_threads(threads: int | None = None, *, numeric_only: bool = False) -> int:
    """Sets every thread pool to `threads` (None: :func:`default_threads`) and returns the
    count.  Numba cannot go beyond the threads it started with (``NUMBA_NUM_THREADS``), so it
    takes the smaller of the two.  With `numeric_only`, Numba's and the BLAS / OpenMP pools
    only: for a worker process that runs NumPy and Numba code and would spend a second importing
    torch and FAISS to set pools it never uses.  Raises ValueError for a count below 1."""
    if threads is None:
        threads = default_threads()
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"--threads must be a positive integer, got {threads!r}")
    import numba
    from threadpoolctl import threadpool_limits

    if not numeric_only:
        import faiss
        import torch

        torch.set_num_threads(threads)
        faiss.omp_set_num_threads(threads)
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    threadpool_limits(limits=threads)
    return threads


@contextmanager
def numeric_threads(threads: int) -> Iterator[None]:
    """Numba's and the BLAS / OpenMP pools at `threads` within the block, as they were after
    it: for a process that works beside worker processes it started (``prepare``'s shards),
    and must not take more than its own core meanwhile."""
    import numba
    from threadpoolctl import threadpool_limits

    before = numba.get_num_threads()
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        with threadpool_limits(limits=threads):
            yield
    finally:
        numba.set_num_threads(before)

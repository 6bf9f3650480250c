"""Thread counts: one call sets every pool the package runs on, so that ``--threads N`` means
N everywhere: torch's intra-op pool (which our OpenMP kernels follow: they take
``torch.get_num_threads()`` per call), Numba's parallel layer, FAISS's OpenMP and the BLAS /
OpenMP libraries that NumPy, SciPy and scikit-learn load (through threadpoolctl)."""

from __future__ import annotations

import os


def default_threads() -> int:
    """The cores of this machine shared among the processes ``torchrun`` started on it."""
    return max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def set_threads(threads: int | None = None) -> int:
    """Sets every thread pool to `threads` (None: :func:`default_threads`) and returns the
    count.  Numba cannot go beyond the threads it started with (``NUMBA_NUM_THREADS``), so it
    takes the smaller of the two.  Raises ValueError for a count below 1."""
    if threads is None:
        threads = default_threads()
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"--threads must be a positive integer, got {threads!r}")
    import faiss
    import numba
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    faiss.omp_set_num_threads(threads)
    threadpool_limits(limits=threads)
    return threads

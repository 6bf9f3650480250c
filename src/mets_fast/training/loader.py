"""Feeding the training step: the batches of an epoch gathered from the store's memory map in a
background thread while the previous step runs, converted to float32 tensors, pinned when the
device is a GPU and copied to it without blocking.

The order is the caller's (a function of the seed and the epoch in the trainer), so a resumed run
sees the same batches; the values are those of a plain gather (``signals[ids]`` as float32), bit
for bit.  One thread is enough: it gathers well over 20,000 ECGs of 12 leads at 100 Hz a second
from the page cache (``benchmarks/bench_train.py --loader``), and NumPy's copy and conversion
release the GIL, so it runs beside the step rather than before it.
"""

from __future__ import annotations

import queue
import threading
from functools import partial
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

DEPTH = 2  # batches gathered ahead of the step


def gather(signals, ids: np.ndarray, pin: bool = False,
           transform: Callable | None = None) -> torch.Tensor:
    """ECGs of store positions `ids` (sorted, for the memory map's sake) as a float32 CPU
    tensor ``(len(ids), leads, samples)``, in page-locked memory with `pin`; `transform`
    (``(ids, x) -> x`` on the float32 array) applied before."""
    # NumPy's conversion, one thread: torch's would open an OpenMP team of its own beside the
    # step's, and on a CPU the step's threads then wait for each other (4 % slower steps)
    x = np.asarray(signals[ids]).astype(np.float32)
    x = torch.from_numpy(x if transform is None else transform(ids, x))
    return x.pin_memory() if pin else x


class BatchLoader:
    """Iterates ``(ids, x)`` over `batches` (arrays of store positions), `x` on `device`;
    up to :data:`DEPTH` batches are gathered ahead in a background thread, each through
    `transform` ``(k, ids, x) -> x`` (batch k's float32 array; an augmentation) where given.
    An error there is raised here, at the batch it concerns; leaving the loop early (a
    ``break``, an exception) stops the thread (use it as a context manager, or call
    :meth:`close`)."""

    def __init__(self, signals, batches: Sequence[np.ndarray], device: torch.device,
                 transform: Callable | None = None):
        self.signals, self.batches, self.transform = signals, batches, transform
        self.device = torch.device(device)
        self._pin = self.device.type == "cuda"
        self._queue: queue.Queue = queue.Queue(DEPTH)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._fill, daemon=True,
                                        name="mets_fast-loader")
        self._thread.start()

    def _fill(self) -> None:
        try:
            for k, ids in enumerate(self.batches):
                if self._stop.is_set():
                    return
                step = None if self.transform is None else partial(self.transform, k)
                self._put((ids, gather(self.signals, ids, self._pin, step)))
        except BaseException as exc:  # handed to the consumer, which raises it
            self._put(exc)

    def _put(self, item) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                pass

    def __iter__(self) -> Iterator[tuple]:
        for _ in range(len(self.batches)):
            item = self._queue.get()
            if isinstance(item, BaseException):
                raise item
            ids, x = item
            yield ids, x.to(self.device, non_blocking=self._pin)

    def close(self) -> None:
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._queue.get(timeout=0.1)
            except queue.Empty:
                pass
        self._thread.join()

    def __enter__(self) -> "BatchLoader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

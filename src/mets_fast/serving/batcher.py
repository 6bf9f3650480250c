"""Dynamic batching: the ECG windows of concurrent requests gathered into one encoder batch.

A request awaits :meth:`Batcher.embed`; a background task takes the first waiting request,
then any others that arrive within ``max_wait`` seconds, up to ``max_batch`` windows, runs the
encoder once on them in the model's thread (the event loop never waits on the model, so other
requests are read and ``/health`` answers meanwhile) and hands each request its rows back.
A request of more windows than ``max_batch`` runs alone.

It waits only for requests on their way: those being preprocessed
(:meth:`Batcher.prepare_and_embed` announces them).  A lone request goes straight to the
encoder, so batching costs a single client nothing.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from typing import Callable

import numpy as np


class Batcher:
    """Gathers windows ``(n, leads, samples)`` of concurrent requests for `encode` (windows ->
    embeddings ``(n, d)``), run in `executor`.  Start it with :meth:`start` inside the event
    loop; :meth:`stop` ends it."""

    def __init__(self, encode: Callable[[np.ndarray], np.ndarray], executor: Executor,
                 max_batch: int = 64, max_wait: float = 0.005):
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        if not max_wait >= 0:
            raise ValueError(f"max_wait must be >= 0 seconds, got {max_wait}")
        self.encode, self.executor = encode, executor
        self.max_batch, self.max_wait = max_batch, max_wait
        self.batches = 0  # encoder calls made: how well requests were gathered
        self.coming = 0  # requests being preprocessed, to be embedded next
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def embed(self, windows: np.ndarray) -> np.ndarray:
        """The embeddings of `windows`, computed in a batch with whatever else is waiting."""
        if self._queue is None:
            raise RuntimeError("the batcher has not been started")
        future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((windows, future))
        return await future

    async def prepare_and_embed(self, prepare: Callable, *args) -> tuple:
        """``prepare(*args)`` in a worker thread (its result has ``windows``), then its
        windows' embeddings: ``(prepared, embeddings)``.  While it prepares, a batch about to
        run waits for it (up to ``max_wait``)."""
        self.coming += 1
        try:
            prepared = await asyncio.to_thread(prepare, *args)
        finally:
            self.coming -= 1  # and enqueued in the same step of the loop: never missed
        return prepared, await self.embed(prepared.windows)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            items = [await self._queue.get()]
            count = len(items[0][0])
            deadline = loop.time() + self.max_wait
            while count < self.max_batch:
                if self._queue.empty() and not self.coming:
                    break  # nobody else on the way: waiting would only add latency
                left = deadline - loop.time()
                try:
                    item = self._queue.get_nowait() if left <= 0 else \
                        await asyncio.wait_for(self._queue.get(), left)
                except (asyncio.QueueEmpty, asyncio.TimeoutError):
                    break
                if count + len(item[0]) > self.max_batch:
                    await self._flush(loop, items)
                    items, count = [], 0
                items.append(item)
                count += len(item[0])
            await self._flush(loop, items)

    async def _flush(self, loop, items: list) -> None:
        waiting = [(w, f) for w, f in items if not f.done()]  # a client may have gone
        if not waiting:
            return
        self.batches += 1
        try:
            out = await loop.run_in_executor(self.executor, self.encode,
                                             np.concatenate([w for w, _ in waiting]))
        except Exception as exc:  # handed to each request, which answers for it
            for _, future in waiting:
                if not future.done():
                    future.set_exception(exc)
            return
        start = 0
        for windows, future in waiting:
            if not future.done():
                future.set_result(out[start:start + len(windows)])
            start += len(windows)

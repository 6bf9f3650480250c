"""Dynamic batching: the ECGs of concurrent requests gathered into one call of the model.

A request submits its jobs (one per ECG) and awaits their futures; a background task takes
every job waiting, plus any that arrive within ``max_wait`` seconds, up to ``max_batch`` jobs,
and hands them to `run` in the model's thread as one list.  The event loop never waits on the
model, so other requests are read (and queue up for the next batch) and ``/health`` answers
while a batch runs.  All the work of a job, its preprocessing included, is done in that one
thread: worker threads preprocessing beside the model's would take cores from its OpenMP team
(on a CPU, a team that waits for a descheduled thread is many times slower).

It waits only for requests known to be on their way (:meth:`Batcher.expecting`): a lone
request goes straight through, so batching costs a single client nothing.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from contextlib import contextmanager
from typing import Callable, Iterator, Sequence


class Batcher:
    """Gathers the jobs of concurrent requests for `run` (a list of jobs -> a list of their
    results, an exception in place of the result of a job that failed), run in `executor`.
    Start it with :meth:`start` inside the event loop; :meth:`stop` ends it."""

    def __init__(self, run: Callable[[list], Sequence], executor: Executor,
                 max_batch: int = 64, max_wait: float = 0.005,
                 cost: Callable[[object], int] | None = None, max_cost: int | None = None):
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        if not max_wait >= 0:
            raise ValueError(f"max_wait must be >= 0 seconds, got {max_wait}")
        self.run, self.executor = run, executor
        self.max_batch, self.max_wait = max_batch, max_wait
        # a batch also stops before its jobs' cost passes max_cost (a job that costs more
        # alone still runs, alone)
        self.cost, self.max_cost = cost or (lambda job: 1), max_cost
        self._held = None  # the job that did not fit the last batch: the next one's first
        self.batches = 0  # calls of run made: how well requests were gathered
        self.coming = 0  # requests being read, whose jobs will be submitted next
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

    @contextmanager
    def expecting(self) -> Iterator[None]:
        """Within the block a request is on its way: a batch about to run waits for its jobs
        (up to ``max_wait``).  Submit them inside the block, await them after it."""
        self.coming += 1
        try:
            yield
        finally:
            self.coming -= 1

    def submit(self, job) -> asyncio.Future:
        """Queues `job` for the next batch; the future holds its result (or its exception)."""
        if self._queue is None:
            raise RuntimeError("the batcher has not been started")
        future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((job, future))
        return future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            items = [self._held or await self._queue.get()]
            self._held = None
            spent = self.cost(items[0][0])
            deadline = loop.time() + self.max_wait
            while len(items) < self.max_batch:
                if self._queue.empty() and not self.coming:
                    break  # nobody else on the way: waiting would only add latency
                left = deadline - loop.time()
                try:
                    item = (self._queue.get_nowait() if left <= 0 or not self._queue.empty()
                            else await asyncio.wait_for(self._queue.get(), left))
                except (asyncio.QueueEmpty, asyncio.TimeoutError):
                    break
                spent += self.cost(item[0])
                if self.max_cost is not None and spent > self.max_cost:
                    self._held = item
                    break
                items.append(item)
            await self._flush(loop, items)

    async def _flush(self, loop, items: list) -> None:
        waiting = [(job, f) for job, f in items if not f.done()]  # a client may have gone
        if not waiting:
            return
        self.batches += 1
        try:
            out = await loop.run_in_executor(self.executor, self.run, [j for j, _ in waiting])
        except Exception as exc:  # handed to each request, which answers for it
            out = [exc] * len(waiting)
        for (_, future), result in zip(waiting, out):
            if future.done():
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)

"""The dynamic batcher: texts from concurrent requests share model calls; the queue is bounded."""

from __future__ import annotations

import asyncio
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

from serving.predictor import Item, ItemResult

PredictFn = Callable[[list[Item], "list[str] | None"], list[ItemResult]]


def model_thread_executor() -> ThreadPoolExecutor:
    """The one thread that runs torch in a server. Each thread that calls torch gets its own OpenMP thread
    team, and two teams on two cores fight for them for the rest of the process: a lone paragraph took 62.7 ms
    once a second thread had run the model, 43.9 ms when only one ever had (benchmarks/model_thread.py)."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="rasid-model")


class QueueFull(Exception):
    """More texts are waiting than max_queue_items allows: the client should retry later (429)."""


class ShuttingDown(Exception):
    """The service is stopping and takes no new work (503)."""


@dataclass(eq=False)
class _Entry:
    items: list[Item]
    tasks: tuple[str, ...] | None  # None: the default tasks; entries are grouped by this per model call
    future: asyncio.Future


class Batcher:
    """Collects entries until `max_batch_size` texts or `max_wait_ms` have passed, then runs them in one
    worker thread (one model call per distinct task list), so the event loop never blocks on the model
    and the model never runs twice at once."""

    def __init__(self, predict: PredictFn, max_batch_size: int = 32, max_wait_ms: float = 5.0,
                 max_queue_items: int = 512, on_batch: Callable[[int], None] | None = None,
                 model_thread: ThreadPoolExecutor | None = None):
        """model_thread: a one-worker executor to run the model in (the one it was loaded in, see
        Service.load); the batcher shuts it down on stop. None: the batcher starts its own."""
        self._predict = predict
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000
        self.max_queue_items = max_queue_items
        self._on_batch = on_batch or (lambda size: None)
        self._queue: deque[_Entry] = deque()
        self._wakeup = asyncio.Event()
        self._executor = model_thread or model_thread_executor()
        self._task: asyncio.Task | None = None
        self._closed = False
        self.pending = 0  # texts queued and not yet handed to the model

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="rasid-batcher")

    async def stop(self) -> None:
        """Take no new work, finish everything queued, then stop the worker thread."""
        self._closed = True
        self._wakeup.set()
        if self._task is not None:
            await self._task
        self._executor.shutdown(wait=True)

    async def submit(self, items: list[Item], tasks: list[str] | None = None) -> list[ItemResult]:
        """Queue the items and wait for their results, in order. Cancelling the wait (a timeout)
        drops the items that have not reached the model yet."""
        if self._closed:
            raise ShuttingDown("the service is shutting down")
        # An empty queue admits any request, so one larger than the queue is slow but never refused forever.
        if self.pending and self.pending + len(items) > self.max_queue_items:
            raise QueueFull(f"{self.pending} texts are waiting; the limit is {self.max_queue_items}")
        loop = asyncio.get_running_loop()
        key = tuple(tasks) if tasks is not None else None
        size = self.max_batch_size
        entries = [_Entry(items[i:i + size], key, loop.create_future()) for i in range(0, len(items), size)]
        self._queue.extend(entries)
        self.pending += len(items)
        self._wakeup.set()
        # Cancelled with the caller. return_exceptions: every chunk's error is retrieved (no asyncio warnings).
        chunks = await asyncio.gather(*(e.future for e in entries), return_exceptions=True)
        for chunk in chunks:
            if isinstance(chunk, BaseException):
                raise chunk
        return [result for chunk in chunks for result in chunk]

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queue or not self._closed:
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            batch = await self._collect(loop)
            if not batch:
                continue
            self._on_batch(sum(len(e.items) for e in batch))
            try:
                outcomes = await loop.run_in_executor(self._executor, self._predict_groups, batch)
            except Exception as error:  # a bug here must fail these requests, not stop the worker for all
                outcomes = [(entry, None, error) for entry in batch]
            for entry, results, error in outcomes:
                if entry.future.done():  # its request timed out meanwhile
                    continue
                if error is not None:
                    entry.future.set_exception(error)
                else:
                    entry.future.set_result(results)

    async def _collect(self, loop) -> list[_Entry]:
        deadline = loop.time() + self.max_wait
        batch, size = [], 0
        while True:
            while self._queue and (not batch or size + len(self._queue[0].items) <= self.max_batch_size):
                entry = self._queue.popleft()
                self.pending -= len(entry.items)
                if not entry.future.done():  # skip entries whose request already gave up
                    batch.append(entry)
                    size += len(entry.items)
            remaining = deadline - loop.time()
            if size >= self.max_batch_size or self._queue or remaining <= 0 or self._closed:
                return batch
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except asyncio.TimeoutError:
                return batch

    def _predict_groups(self, batch: list[_Entry]):
        """In the worker thread: one predict call per task list; an error fails only its own group."""
        groups: dict[tuple | None, list[_Entry]] = {}
        for entry in batch:
            groups.setdefault(entry.tasks, []).append(entry)
        outcomes = []
        for key, entries in groups.items():
            try:
                results = self._predict([i for e in entries for i in e.items], None if key is None else list(key))
            except Exception as error:  # handed to the waiting requests; the route decides the status
                outcomes += [(e, None, error) for e in entries]
                continue
            position = 0
            for entry in entries:
                outcomes.append((entry, results[position:position + len(entry.items)], None))
                position += len(entry.items)
        return outcomes

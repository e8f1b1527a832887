"""The dynamic batcher: texts from concurrent requests share model calls, fairly; the queue is bounded by
texts and by the wait it promises."""

from __future__ import annotations

import asyncio
import math
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

from serving.predictor import Item, ItemResult

PredictFn = Callable[[list[Item], "list[str] | None"], list[ItemResult]]

# How fast the throughput estimate follows the latest model calls: a weight of 0.3 forgets a call in about
# ten, so a slower phase (longer texts, a busy host) is seen within a few batches and one odd call moves
# the estimate by a third at most.
THROUGHPUT_WEIGHT = 0.3


def model_thread_executor() -> ThreadPoolExecutor:
    """The one thread that runs torch in a server. Each thread that calls torch gets its own OpenMP thread
    team, and two teams fight for the cores for the rest of the process, slowing every call after the second
    thread's first (benchmarks/model_thread.py measures it)."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="rasid-model")


class QueueFull(Exception):
    """The server cannot take this request in time: too many texts wait, or the wait it can promise (queued
    work over measured throughput) is longer than the request may wait. The client should retry after
    `retry_after` seconds (429); None: the service's default."""

    def __init__(self, message: str, retry_after: int | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class ShuttingDown(Exception):
    """The service is stopping and takes no new work (503)."""


@dataclass(eq=False)
class _Request:
    """One submit call: its texts go to the model in slices; its future resolves when every slice is answered."""

    items: list[Item]
    tasks: tuple[str, ...] | None  # None: the default tasks; slices are grouped by this per model call
    future: asyncio.Future
    results: list = field(default_factory=list)
    sent: int = 0  # items handed to the model so far
    answered: int = 0

    @property
    def waiting(self) -> int:
        return len(self.items) - self.sent


class Batcher:
    """Collects texts until `max_batch_size` or `max_wait_ms` have passed, then runs them in one worker thread
    (one model call per distinct task list), so the event loop never blocks on the model and the model never
    runs twice at once.

    Fair: each batch is filled round-robin, up to `slice_size` texts from each waiting request in turn, so a
    long article (hundreds of paragraphs) shares every batch with the short requests that arrive meanwhile
    instead of holding them until its last paragraph.

    Admission: a request is refused at once (QueueFull, 429) when more than `max_queue_items` texts would wait,
    or when its expected wait (`expected_wait`: the work served before its last text, over the measured
    throughput) is longer than `max_expected_wait_s`: better a refusal with a Retry-After than an accepted
    request that times out. An idle server (nothing queued, nothing in the model) takes any request: one larger
    than the limits is slow, not refused forever. Until a batch has been timed, one batch of texts may wait."""

    def __init__(
        self,
        predict: PredictFn,
        max_batch_size: int = 32,
        max_wait_ms: float = 5.0,
        max_queue_items: int = 512,
        on_batch: Callable[[int], None] | None = None,
        model_thread: ThreadPoolExecutor | None = None,
        max_expected_wait_s: float | None = None,
        slice_size: int | None = None,
    ):
        """model_thread: a one-worker executor to run the model in (the one it was loaded in, see
        Service.load); the batcher shuts it down on stop. None: the batcher starts its own.
        slice_size: texts a request gives per turn (default: a quarter of a batch, so at least four requests
        share a full batch)."""
        self._predict = predict
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000
        self.max_queue_items = max_queue_items
        self.max_expected_wait_s = max_expected_wait_s
        self.slice_size = slice_size or max(1, max_batch_size // 4)
        self._on_batch = on_batch or (lambda size: None)
        self._waiting: deque[_Request] = deque()  # requests with texts not yet sent, in round-robin order
        self._wakeup = asyncio.Event()
        self._executor = model_thread or model_thread_executor()
        self._task: asyncio.Task | None = None
        self._closed = False
        self.pending = 0  # texts queued and not yet handed to the model
        self.in_model = 0  # texts of the model call running now
        self.throughput: float | None = None  # texts per second through the model (moving average), once measured
        self._seconds_per_text: float | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="rasid-batcher")

    async def stop(self) -> None:
        """Take no new work, finish everything queued, then stop the worker thread."""
        self._closed = True
        self._wakeup.set()
        if self._task is not None:
            await self._task
        self._executor.shutdown(wait=True)

    def seed(self, texts: int, seconds: float) -> None:
        """A first throughput from a timed model call made before serving (Service.load's warm-up), so the
        expected wait is known from the first request on."""
        self._observe(texts, seconds)

    def expected_wait(self, texts: int) -> float | None:
        """Seconds until a new request of `texts` texts would be answered (None: throughput not measured yet):
        the texts in the model, what the round-robin serves of each waiting request before this one's last
        slice (all of a short one, as many slices of a long one as this request has), and its own, over the
        measured throughput. So a paragraph is not refused for the long article ahead of it: it would not
        wait for that article's end."""
        if not self.throughput:
            return None
        turns = math.ceil(texts / self.slice_size) * self.slice_size
        ahead = sum(min(r.waiting, turns) for r in self._waiting if not r.future.done())
        return (self.in_model + ahead + texts) / self.throughput

    def _admit(self, texts: int) -> None:
        if not (self.pending or self.in_model):
            return  # an idle server takes anything: a request larger than the limits is slow, not refused forever
        if self.pending and self.pending + texts > self.max_queue_items:
            raise QueueFull(f"{self.pending} texts are waiting; the limit is {self.max_queue_items}")
        wait = self.expected_wait(texts)
        if self.max_expected_wait_s is not None and wait is None and self.pending + texts > self.max_batch_size:
            # Not measured yet (a burst as the server starts): one batch may wait while the first is timed;
            # admitting the whole queue then timed out every request past the first few batches.
            raise QueueFull(f"{self.pending} texts are waiting for the first model call to be timed", retry_after=1)
        if self.max_expected_wait_s is not None and wait is not None and wait > self.max_expected_wait_s:
            raise QueueFull(
                f"about {wait:.1f} s of work is queued at {self.throughput:.0f} texts/s, more than "
                f"the {self.max_expected_wait_s:.1f} s this request may wait",
                retry_after=max(1, math.ceil(wait - self.max_expected_wait_s)),
            )

    async def submit(self, items: list[Item], tasks: list[str] | None = None) -> list[ItemResult]:
        """Queue the items and wait for their results, in order. Cancelling the wait (a timeout) drops the
        items that have not reached the model yet."""
        if self._closed:
            raise ShuttingDown("the service is shutting down")
        if not items:
            return []
        self._admit(len(items))
        request = _Request(
            list(items),
            tuple(tasks) if tasks is not None else None,
            asyncio.get_running_loop().create_future(),
            results=[None] * len(items),
        )
        self._waiting.append(request)
        self.pending += len(items)
        self._wakeup.set()
        return await request.future  # cancelled with the caller: _take then skips what it has not sent

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while self._waiting or not self._closed:
            if not self._waiting:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            # Throughput is measured over the whole cycle, collecting included, not over the model call alone:
            # between calls the event loop parses requests and writes answers, and under load that time is
            # part of every queued text's wait (a tiny model spends more of it there than in the model).
            cycle_started = loop.time()
            batch = await self._collect(loop)
            if not batch:
                continue
            size = sum(end - start for _, start, end in batch)
            self._on_batch(size)
            self.in_model = size
            try:
                outcomes = await loop.run_in_executor(self._executor, self._predict_groups, batch)
            except Exception as error:  # a bug here must fail these requests, not stop the worker for all
                outcomes = [(part, None, error) for part in batch]
            finally:
                self.in_model = 0
            for (request, start, end), results, error in outcomes:
                if request.future.done():  # its request timed out, or another slice failed it
                    continue
                if error is not None:
                    request.future.set_exception(error)
                    continue
                request.results[start:end] = results
                request.answered += end - start
                if request.answered == len(request.items):
                    request.future.set_result(request.results)
            self._observe(size, loop.time() - cycle_started)

    def _observe(self, texts: int, seconds: float) -> None:
        """Average the seconds per text, not the texts per second: the throughput is then the harmonic mean
        of the cycles', which a fast cycle cannot inflate (on a shared host they vary threefold in seconds)."""
        if seconds <= 0 or texts <= 0:
            return
        per_text = seconds / texts
        self._seconds_per_text = (
            per_text
            if self._seconds_per_text is None
            else THROUGHPUT_WEIGHT * per_text + (1 - THROUGHPUT_WEIGHT) * self._seconds_per_text
        )
        self.throughput = 1 / self._seconds_per_text

    async def _collect(self, loop) -> list[tuple[_Request, int, int]]:
        deadline = loop.time() + self.max_wait
        batch: list[tuple[_Request, int, int]] = []
        size = 0
        while True:
            size = self._take(batch, size)
            remaining = deadline - loop.time()
            if size >= self.max_batch_size or remaining <= 0 or self._closed:
                return batch
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except asyncio.TimeoutError:
                return batch

    def _take(self, batch: list, size: int) -> int:
        """Add slices to `batch` round-robin until it is full or nothing waits; return its size."""
        while self._waiting and size < self.max_batch_size:
            request = self._waiting.popleft()
            if request.future.done():  # its caller gave up (timeout) or a slice failed: drop the rest
                self.pending -= request.waiting
                continue
            count = min(self.slice_size, self.max_batch_size - size, request.waiting)
            batch.append((request, request.sent, request.sent + count))
            request.sent += count
            self.pending -= count
            size += count
            if request.waiting:
                self._waiting.append(request)  # back of the line: the others take their turn first
        return size

    def _predict_groups(self, batch: list[tuple[_Request, int, int]]):
        """In the worker thread: one predict call per task list; an error fails only its own group."""
        groups: dict[tuple | None, list] = {}
        for part in batch:
            groups.setdefault(part[0].tasks, []).append(part)
        outcomes = []
        for key, parts in groups.items():
            try:
                results = self._predict(
                    [i for r, s, e in parts for i in r.items[s:e]], None if key is None else list(key)
                )
            except Exception as error:  # handed to the waiting requests; the route decides the status
                outcomes += [(part, None, error) for part in parts]
                continue
            position = 0
            for part in parts:
                count = part[2] - part[1]
                outcomes.append((part, results[position : position + count], None))
                position += count
        return outcomes

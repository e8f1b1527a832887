"""What one app holds: its settings and metrics, the predictor once loaded, and the batcher in front of it."""

from __future__ import annotations

import asyncio
import functools
import logging

from fastapi import HTTPException
from fastapi.exceptions import RequestValidationError

from serving.api.batcher import Batcher, QueueFull, ShuttingDown, model_thread_executor
from serving.api.metrics import Metrics
from serving.api.settings import Settings
from serving.bundle import has_target, no_target
from serving.errors import RasidError

log = logging.getLogger("rasid.serve")


# A news sentence of typical length for the warm-up call: the first model call is slow (allocations, one-off
# initialisations), and timing it gives the batcher a throughput before the first request (admission by
# expected wait has a number to work with when a burst arrives as the server starts).
WARM_UP_TEXT = (
    "أعلنت وزارة الاقتصاد اليوم عن خطة جديدة لدعم الشركات الصغيرة والمتوسطة بقروض ميسرة، وقال الوزير "
    "في مؤتمر صحفي إن الخطة تشمل إعفاءات ضريبية لمدة ثلاث سنوات."
)


def _load_and_time(model_dir, batch_size: int, **options):
    """In the model thread: load the bundle, then time one full batch (texts, seconds) on it. A bundle that
    loads but cannot predict fails here, before the server says it is ready."""
    import time

    from serving.predictor import Item, Predictor

    predictor = Predictor.from_bundle(model_dir, batch_size=batch_size, **options)
    predictor.predict_items([Item(WARM_UP_TEXT)])  # the one-off costs, not timed
    started = time.perf_counter()
    predictor.predict_items([Item(WARM_UP_TEXT)] * batch_size)
    return predictor, (batch_size, time.perf_counter() - started)


def field_error(loc: tuple, message: str) -> RequestValidationError:
    """A 422 naming the field, in the same shape as the schema's own errors."""
    return RequestValidationError([{"loc": loc, "msg": message, "type": "value_error"}])


class Service:
    def __init__(self, settings: Settings, metrics: Metrics):
        self.settings, self.metrics = settings, metrics
        self.predictor = None
        self.batcher: Batcher | None = None
        self.load_error: str | None = None
        # Called once loading has failed; `rasid serve` sets it to stop the server, which then exits non-zero
        # with load_error: a process manager must see the failure, not a server up and never ready.
        self.on_load_failure = None

    async def load(self) -> None:
        """Load the bundle in the model thread (so /healthz answers meanwhile), then start the batcher on
        that same thread: torch must only ever run in one thread (see model_thread_executor)."""
        settings = self.settings
        if settings.model_dir is None:
            self.load_error = "no model folder is set: start with `rasid serve --model DIR` or set RASID_MODEL_DIR."
            log.error(self.load_error)
            self._failed()
            return
        model_thread = model_thread_executor()
        load = functools.partial(
            _load_and_time, settings.model_dir, batch_size=settings.max_batch_size, precision=settings.precision
        )
        try:
            predictor, warm_up = await asyncio.get_running_loop().run_in_executor(model_thread, load)
        except Exception as error:  # noqa: BLE001  (reported by /readyz, and by `rasid serve` exiting)
            model_thread.shutdown(wait=False)
            if isinstance(error, RasidError):
                self.load_error = f"the model could not be loaded: {error}"
            else:  # e.g. a MemoryError with no message from a weights file overwritten with garbage
                self.load_error = (
                    f"the model in {settings.model_dir} could not be loaded ({type(error).__name__}"
                    f"{': ' + str(error) if str(error) else ''}); its files may be damaged or "
                    "incomplete: copy or train the bundle again."
                )
            log.exception("loading %s failed", settings.model_dir)
            self._failed()
            return
        self.batcher = Batcher(
            predictor.predict_items,
            settings.max_batch_size,
            settings.max_wait_ms,
            settings.max_queue_items,
            on_batch=self.metrics.batch_size.observe,
            model_thread=model_thread,
            max_expected_wait_s=settings.request_timeout_s * settings.admission_wait_fraction,
        )
        self.batcher.seed(*warm_up)
        self.metrics.queue_depth.set_function(lambda: self.batcher.pending)
        self.batcher.start()
        self.predictor = predictor
        log.info("model %s loaded: tasks %s", settings.model_dir, predictor.task_names)

    def _failed(self) -> None:
        if self.on_load_failure is not None:
            self.on_load_failure()

    async def close(self) -> None:
        if self.batcher is not None:
            await self.batcher.stop()

    def check_tasks(self, tasks: list[str] | None, targets: list[tuple[tuple, str | None]]) -> list[str] | None:
        """Unknown task names and pair tasks asked for without a target are 422s naming the field."""
        try:
            self.predictor.check_tasks(tasks)
        except RasidError as error:
            raise field_error(("body", "tasks"), str(error)) from None
        if tasks is not None:
            pair = [t.name for t in self.predictor.manifest.tasks if t.name in tasks and t.input == "pair"]
            for loc, target in targets:
                if pair and not has_target(target):
                    raise field_error(loc, f"{no_target(pair)}: give 'target', or leave these tasks out.")
        return tasks

    def check_article(self, text: str, target: str | None) -> None:
        """An article cut into more paragraphs than max_article_paragraphs is a 422 naming the field: one
        request must not hold the model for minutes (its paragraphs would also outlast the timeout)."""
        from serving.documents import char_budget, split_paragraphs

        limit = self.settings.max_article_paragraphs
        count = len(split_paragraphs(text, char_budget(self.predictor.manifest.max_length, target)))
        if count > limit:
            raise field_error(
                ("body", "text"),
                f"the article has {count:,} paragraphs (lines, and pieces of long "
                f"lines); this server analyses at most {limit:,} per request "
                "(RASID_MAX_ARTICLE_PARAGRAPHS): send it in parts.",
            )

    def clip(self, text: str) -> tuple[str, bool]:
        """Cut texts past max_text_chars (they overflow the model window anyway); say whether it happened."""
        limit = self.settings.max_text_chars
        return (text[:limit], True) if len(text) > limit else (text, False)

    async def within_timeout(self, work):
        """Await model work under the request timeout, turning overload and stalls into 429/503/504."""
        retry = {"Retry-After": str(self.settings.retry_after_s)}
        try:
            return await asyncio.wait_for(work, self.settings.request_timeout_s)
        except QueueFull as error:
            if error.retry_after is not None:
                retry = {"Retry-After": str(error.retry_after)}
            raise HTTPException(
                429, f"the server is busy ({error}); retry after {retry['Retry-After']} s.", headers=retry
            ) from None
        except ShuttingDown:
            raise HTTPException(503, "the server is shutting down; retry on another instance.", headers=retry) from None
        except asyncio.TimeoutError:
            raise HTTPException(
                504, f"the request took longer than {self.settings.request_timeout_s} s (RASID_REQUEST_TIMEOUT_S)."
            ) from None
        except RasidError as error:
            raise HTTPException(422, str(error)) from None

    def summary(self) -> dict:
        manifest = self.predictor.manifest
        return {
            "base_model": manifest.base_model,
            "tasks": self.predictor.task_names,
            "rasid_version": manifest.rasid_version,
            "created": manifest.created,
        }

    def limits(self) -> dict:
        s = self.settings
        return {
            "max_text_chars": s.max_text_chars,
            "max_target_chars": s.max_target_chars,
            "max_article_chars": s.max_article_chars,
            "max_article_paragraphs": s.max_article_paragraphs,
            "max_batch_items": s.max_batch_items,
            "admission_wait_fraction": s.admission_wait_fraction,
            "max_body_bytes": s.max_body_bytes,
            "max_queue_items": s.max_queue_items,
            "request_timeout_s": s.request_timeout_s,
            "max_batch_size": s.max_batch_size,
            "max_wait_ms": s.max_wait_ms,
        }


class BatchedPredictor:
    """What analyze_document sees as a predictor: its predict_items goes through the batcher, so article
    paragraphs share model calls with other requests. Called from a worker thread, never the event loop."""

    def __init__(self, service: Service, loop: asyncio.AbstractEventLoop):
        self.service, self.loop = service, loop
        self.manifest = service.predictor.manifest
        self.check_tasks = service.predictor.check_tasks
        self.document_models = getattr(service.predictor, "document_models", {})  # learned verdicts, if any

    def predict_items(self, items, tasks=None, abstain_below=None):
        timeout = self.service.settings.request_timeout_s  # the outer wait_for gives up at the same time
        work = asyncio.wait_for(self.service.batcher.submit(items, tasks), timeout)
        return asyncio.run_coroutine_threadsafe(work, self.loop).result()

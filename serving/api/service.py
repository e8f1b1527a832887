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
from serving.errors import RasidError

log = logging.getLogger("rasid.serve")


def field_error(loc: tuple, message: str) -> RequestValidationError:
    """A 422 naming the field, in the same shape as the schema's own errors."""
    return RequestValidationError([{"loc": loc, "msg": message, "type": "value_error"}])


class Service:
    def __init__(self, settings: Settings, metrics: Metrics):
        self.settings, self.metrics = settings, metrics
        self.predictor = None
        self.batcher: Batcher | None = None
        self.load_error: str | None = None

    async def load(self) -> None:
        """Load the bundle in the model thread (so /healthz answers meanwhile), then start the batcher on
        that same thread: torch must only ever run in one thread (see model_thread_executor)."""
        from serving.predictor import Predictor  # torch: imported only when a model is loaded

        settings = self.settings
        if settings.model_dir is None:
            self.load_error = "no model folder is set: start with `rasid serve --model DIR` or set RASID_MODEL_DIR."
            log.error(self.load_error)
            return
        model_thread = model_thread_executor()
        load = functools.partial(Predictor.from_bundle, settings.model_dir, batch_size=settings.max_batch_size,
                                 fast=settings.fast, precision=settings.precision)
        try:
            predictor = await asyncio.get_running_loop().run_in_executor(model_thread, load)
        except Exception as error:  # noqa: BLE001  (reported by /readyz; the process stays up to say so)
            model_thread.shutdown(wait=False)
            self.load_error = f"the model could not be loaded: {error}"
            log.exception("loading %s failed", settings.model_dir)
            return
        self.batcher = Batcher(predictor.predict_items, settings.max_batch_size, settings.max_wait_ms,
                               settings.max_queue_items, on_batch=self.metrics.batch_size.observe,
                               model_thread=model_thread)
        self.metrics.queue_depth.set_function(lambda: self.batcher.pending)
        self.batcher.start()
        self.predictor = predictor
        log.info("model %s loaded: tasks %s", settings.model_dir, predictor.task_names)

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
                if pair and target is None:
                    raise field_error(loc, f"task(s) {pair} judge the text against a target: give 'target', "
                                           "or leave these tasks out.")
        return tasks

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
            raise HTTPException(429, f"the server is busy ({error}); retry later.", headers=retry) from None
        except ShuttingDown:
            raise HTTPException(503, "the server is shutting down; retry on another instance.", headers=retry) from None
        except asyncio.TimeoutError:
            raise HTTPException(504, f"the request took longer than {self.settings.request_timeout_s} s "
                                     "(RASID_REQUEST_TIMEOUT_S).") from None
        except RasidError as error:
            raise HTTPException(422, str(error)) from None

    def summary(self) -> dict:
        manifest = self.predictor.manifest
        return {"base_model": manifest.base_model, "tasks": self.predictor.task_names,
                "rasid_version": manifest.rasid_version, "created": manifest.created}

    def limits(self) -> dict:
        s = self.settings
        return {"max_text_chars": s.max_text_chars, "max_target_chars": s.max_target_chars,
                "max_article_chars": s.max_article_chars, "max_batch_items": s.max_batch_items,
                "max_body_bytes": s.max_body_bytes, "max_queue_items": s.max_queue_items,
                "request_timeout_s": s.request_timeout_s, "max_batch_size": s.max_batch_size,
                "max_wait_ms": s.max_wait_ms}


class BatchedPredictor:
    """What analyze_document sees as a predictor: its predict_items goes through the batcher, so article
    paragraphs share model calls with other requests. Called from a worker thread, never the event loop."""

    def __init__(self, service: Service, loop: asyncio.AbstractEventLoop):
        self.service, self.loop = service, loop
        self.manifest = service.predictor.manifest
        self.check_tasks = service.predictor.check_tasks

    def predict_items(self, items, tasks=None, abstain_below=None):
        timeout = self.service.settings.request_timeout_s  # the outer wait_for gives up at the same time
        work = asyncio.wait_for(self.service.batcher.submit(items, tasks), timeout)
        return asyncio.run_coroutine_threadsafe(work, self.loop).result()

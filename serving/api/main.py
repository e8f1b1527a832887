"""Builds the FastAPI app; nothing else. `create_app(settings)` is what uvicorn and the tests call."""

from __future__ import annotations

import asyncio
import contextlib
from contextlib import asynccontextmanager

from fastapi import FastAPI

from serving import __version__
from serving.api import handlers, page
from serving.api.metrics import Metrics, MetricsMiddleware
from serving.api.middleware import ApiKeyMiddleware, BodyLimitMiddleware
from serving.api.routes import build_router
from serving.api.schemas import request_models
from serving.api.service import Service
from serving.api.settings import Settings, get_settings


@asynccontextmanager
async def lifespan(app: FastAPI):
    service: Service = app.state.service
    loading = asyncio.create_task(service.load())  # not awaited: /healthz answers while the model loads
    try:
        yield
    finally:
        if not loading.done():
            loading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loading
        await service.close()  # drains the batcher: queued texts are answered before exit


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    metrics = Metrics()
    app = FastAPI(
        title="rasid",
        version=__version__,
        lifespan=lifespan,
        description="Topic and stance classification of Arabic news, paragraph by paragraph.",
        docs_url=None,
        redoc_url=None,
    )  # serving.api.page serves both without a CDN
    app.state.service = Service(settings, metrics)
    router = build_router(request_models(settings))
    app.include_router(router)
    page.install(app)
    handlers.install(app)
    # Added innermost first: metrics see every answer, the key is checked before the body is read.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    api_key = settings.api_key.get_secret_value() if settings.api_key else None
    app.add_middleware(ApiKeyMiddleware, api_key=api_key)
    app.add_middleware(MetricsMiddleware, metrics=metrics, routes={r.path for r in router.routes})
    return app

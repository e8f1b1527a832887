"""The routes: /v1 classification and model info, health, readiness and metrics."""

import asyncio

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.responses import JSONResponse

from serving.api.metrics import CONTENT_TYPE_LATEST
from serving.api.schemas import (
    AnalyzeResponse,
    BatchResponse,
    ClassifyResponse,
    ErrorResponse,
    ModelInfo,
    RequestModels,
    Status,
)
from serving.api.service import BatchedPredictor, Service

_ERRORS = {code: {"model": ErrorResponse} for code in (401, 413, 422, 429, 503, 504)}


def get_service(request: Request) -> Service:
    return request.app.state.service


def ready_service(service: Service = Depends(get_service)) -> Service:
    """The /v1 routes answer 503 until the model is loaded (and if loading failed)."""
    if service.predictor is None:
        detail = service.load_error or "the model is still loading; retry shortly."
        raise HTTPException(503, detail, headers={"Retry-After": str(service.settings.retry_after_s)})
    return service


def _result(answer, cut: bool, abstain_below: float | None, unseen_targets: bool) -> dict:
    """One item's answer with this request's abstention (the batcher's shared model calls never abstain)."""
    from serving.abstention import abstain

    return {
        "predictions": {task: abstain(p, abstain_below, unseen_targets) for task, p in answer.predictions.items()},
        "truncated": answer.truncated or cut,
        "skipped_tasks": answer.skipped_tasks,
    }


def _threads() -> dict:
    """The torch thread count this process chose (serving.threads), or torch's own if rasid did not choose."""
    import torch

    from serving import threads

    choice = threads.chosen()
    return choice.as_dict() if choice else {"threads": torch.get_num_threads(), "source": "torch default"}


def build_router(models: RequestModels) -> APIRouter:
    """Routes for this app's request models (they carry the configured limits)."""
    from serving.predictor import Item

    router = APIRouter()  # one flat router: the metrics middleware labels requests by these paths
    v1 = {"tags": ["v1"], "responses": _ERRORS}

    @router.post("/v1/classify", **v1, response_model=ClassifyResponse, summary="Classify one text")
    async def classify(body: models.classify, service: Service = Depends(ready_service)):
        tasks = service.check_tasks(body.tasks, [(("body", "target"), body.target)])
        text, cut = service.clip(body.text)
        answers = await service.within_timeout(service.batcher.submit([Item(text, body.target)], tasks))
        unseen = service.settings.abstain_unseen_targets
        return {**_result(answers[0], cut, body.abstain_below, unseen), "model": service.summary()}

    @router.post(
        "/v1/classify/batch", **v1, response_model=BatchResponse, summary="Classify many texts, answered in input order"
    )
    async def classify_batch(body: models.batch, service: Service = Depends(ready_service)):
        targets = [(("body", "inputs", k, "target"), i.target) for k, i in enumerate(body.inputs)]
        tasks = service.check_tasks(body.tasks, targets)
        clipped = [service.clip(i.text) for i in body.inputs]
        items = [Item(text, i.target) for (text, _), i in zip(clipped, body.inputs)]
        answers = await service.within_timeout(service.batcher.submit(items, tasks))
        unseen = service.settings.abstain_unseen_targets
        return {
            "results": [_result(a, cut, body.abstain_below, unseen) for a, (_, cut) in zip(answers, clipped)],
            "model": service.summary(),
        }

    @router.post(
        "/v1/analyze", **v1, response_model=AnalyzeResponse, summary="Analyze a whole article paragraph by paragraph"
    )
    async def analyze(body: models.analyze, service: Service = Depends(ready_service)):
        from serving.documents import analyze_document

        tasks = service.check_tasks(body.tasks, [(("body", "target"), body.target)])
        service.check_article(body.text, body.target)
        predictor = BatchedPredictor(service, asyncio.get_running_loop())
        work = asyncio.to_thread(
            analyze_document,
            predictor,
            body.text,
            body.target,
            tasks,
            body.abstain_below,
            abstain_unseen_targets=service.settings.abstain_unseen_targets,
        )
        return {**await service.within_timeout(work), "model": service.summary()}

    @router.get("/v1/model", **v1, response_model=ModelInfo, summary="The loaded model: tasks, labels, metrics, limits")
    async def model_info(service: Service = Depends(ready_service)):
        manifest = service.predictor.manifest
        return {
            "tasks": [
                {
                    "name": t.name,
                    "labels": list(t.labels),
                    "input": t.input,
                    "open_targets": manifest.targets.get(t.name, {}).get("open"),
                    "targets": manifest.targets.get(t.name, {}).get("counts"),
                }
                for t in manifest.tasks
            ],
            "base_model": manifest.base_model,
            "max_length": manifest.max_length,
            "pooling": manifest.pooling,
            "metrics": manifest.metrics.get("validation", {}),
            "rasid_version": manifest.rasid_version,
            "created": manifest.created,
            "backend": service.predictor.backend,
            "limits": service.limits(),
            "threads": _threads(),
        }

    @router.get("/healthz", response_model=Status, tags=["health"], summary="200 while the process is alive")
    async def healthz():
        return {"status": "ok"}

    @router.get(
        "/readyz",
        response_model=Status,
        tags=["health"],
        responses={503: {"model": Status}},
        summary="200 once the model is loaded, 503 before (or if loading failed)",
    )
    async def readyz(service: Service = Depends(get_service)):
        if service.predictor is not None:
            return {"status": "ready"}
        status = "failed" if service.load_error else "loading"
        return JSONResponse({"status": status, "detail": service.load_error}, status_code=503)

    @router.get("/metrics", include_in_schema=False)
    async def metrics(service: Service = Depends(get_service)):
        return Response(service.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return router

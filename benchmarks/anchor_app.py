"""The plain Hugging Face anchor: a minimal FastAPI app calling `pipeline(...)` per request, one per task.

Run: ANCHOR_MODELS=<rasid export --format hf folder> uvicorn benchmarks.anchor_app:app --port P
Same contract as rasid serve's POST /v1/classify, so one client drives both. It normalises the text as the
export README asks, and nothing more: this is what a user would write without rasid.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI
from pydantic import BaseModel
from transformers import pipeline

from serving.normalize import normalize

FOLDER = Path(os.environ.get("ANCHOR_MODELS", "exported"))
PAIR_TASKS = {"stance", "claim"}
pipes = {
    task.name: pipeline("text-classification", model=str(task), device="cpu", trust_remote_code=True)
    for task in sorted(FOLDER.iterdir())
    if (task / "config.json").is_file()
}
app = FastAPI()


class Request(BaseModel):
    text: str
    target: str | None = None
    tasks: list[str] | None = None


@app.get("/readyz")
def ready() -> dict:
    return {"status": "ready"}


@app.post("/v1/classify")
def classify(request: Request) -> dict:
    text = normalize(request.text)
    predictions = {}
    for task in request.tasks or list(pipes):
        if task in PAIR_TASKS:
            if not request.target:
                continue
            inputs = {"text": normalize(request.target), "text_pair": text}
        else:
            inputs = text
        answer = pipes[task](inputs, truncation=True)
        best = answer[0] if isinstance(answer, list) else answer
        predictions[task] = {"label": best["label"], "score": best["score"]}
    return {"predictions": predictions}

"""The TF-IDF + logistic-regression baseline as a Predictor (the `rasid baseline` command is training/baseline.py).

Per task: TF-IDF (character 2-5-grams within word boundaries + word 1-2-grams, sublinear tf) and a
class-balanced logistic regression, on text normalised with serving.normalize's default settings; pair
tasks see `target [SEP] text`. It answers through the Predictor interface (predict_items), so evaluation,
documents and reports treat it exactly like a bundle.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from serving.bundle import Manifest, TaskSpec
from serving.errors import DataError, RasidError
from serving.normalize import DEFAULT_SETTINGS, normalize
from serving.predictor import Predictor
from training.data import read_rows

log = logging.getLogger(__name__)

SEPARATOR = " [SEP] "


class BaselinePredictor(Predictor):
    """A Predictor whose encoder + heads are one scikit-learn pipeline per task."""

    def __init__(self, specs: list[TaskSpec], pipelines: dict, max_length: int = 128, batch_size: int = 256):
        self.manifest = Manifest(tasks=specs, max_length=max_length, base_model="tfidf-logreg",
                                 normalization=DEFAULT_SETTINGS)
        self.pipelines = pipelines
        self.batch_size = batch_size
        self.tokenizer = self.model = None
        self.quantized = False
        self._sessions = None
        self._temperatures = {spec.name: 1.0 for spec in specs}

    def _run(self, jobs, progress):
        """Predictor._run's contract: per job (tasks, inputs), the probabilities per task and truncation flags."""
        results = []
        for tasks, inputs in jobs:
            texts = [SEPARATOR.join(parts) for parts in inputs]  # (text,) or (target, text), already normalised
            outputs = {}
            for task in tasks:
                pipeline = self.pipelines[task]
                probabilities = pipeline.predict_proba(texts) if texts else []
                order = [list(pipeline.classes_).index(label) for label in self.manifest.task(task).labels]
                outputs[task] = torch.tensor(probabilities, dtype=torch.float32)[:, order] if texts else torch.empty(0)
            if progress:
                progress(len(inputs))
            results.append((outputs, [False] * len(inputs)))
        return results


def make_pipeline(rows: int):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import FeatureUnion, Pipeline

    min_df = 2 if rows >= 1000 else 1  # drop one-off n-grams on real data; keep everything on tiny sets
    features = FeatureUnion([
        ("char", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=min_df)),
        ("word", TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True, min_df=min_df,
                                 token_pattern=r"(?u)\b\w+\b")),
    ])
    return Pipeline([("tfidf", features), ("logreg", LogisticRegression(class_weight="balanced", max_iter=2000))])


def baseline_input(text: str, target: str | None) -> str:
    text = normalize(text, DEFAULT_SETTINGS)
    return normalize(target, DEFAULT_SETTINGS) + SEPARATOR + text if target is not None else text


def fit_baseline(train: list[Path], tasks: list[str], pair_tasks: set[str] = frozenset(),
                 skip_bad_rows: bool = False) -> BaselinePredictor:
    """Train one pipeline per task on the rows of `train` labelled for it."""
    from training.features import task_specs

    rows = read_rows(train, skip_bad_rows, tasks=tasks).rows
    present = {task for row in rows for task in row.labels}
    missing = [t for t in tasks if t not in present]
    if missing:
        raise DataError(f"the baseline's training data (--train) has no labels for task(s) {missing}.")
    specs = task_specs(rows, tasks, set(pair_tasks))
    pipelines = {}
    for spec in specs:
        labelled = [r for r in rows if spec.name in r.labels]
        if spec.input == "pair":
            without = [r.where for r in labelled if not (r.target and r.target.strip())]
            if without and not skip_bad_rows:
                raise DataError(f"{without[0]}: task '{spec.name}' compares text with a target, but the row has "
                                f"no target ({len(without)} such rows); fix them or pass --skip-bad-rows.")
            labelled = [r for r in labelled if r.target and r.target.strip()]
        inputs = [baseline_input(r.text, r.target if spec.input == "pair" else None) for r in labelled]
        log.info("baseline: fitting task '%s' on %d rows", spec.name, len(inputs))
        pipeline = make_pipeline(len(inputs))
        try:
            pipeline.fit(inputs, [r.labels[spec.name] for r in labelled])
        except ValueError as error:
            raise RasidError(f"the baseline could not be trained for task '{spec.name}': {error}.") from error
        pipelines[spec.name] = pipeline
    return BaselinePredictor(specs, pipelines)

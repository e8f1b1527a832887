"""The TF-IDF + logistic-regression baseline as a Predictor (the `rasid baseline` command is training/baseline.py).

Per task: serving.tfidf's char_wb 2-5-gram features and a class-balanced logistic regression with C chosen
on held-out training rows (training/ngram_model.py), on text normalised with serving.normalize's default
settings; pair tasks see the text, the target and their shared n-grams as separate blocks. It answers
through the Predictor interface (predict_items), so evaluation, documents and reports treat it exactly like
a bundle.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from serving.bundle import Manifest, TaskSpec, has_target, no_target
from serving.data_files import read_rows, report_bad_rows
from serving.errors import DataError, RasidError
from serving.normalize import DEFAULT_SETTINGS, normalize
from serving.predictor import Predictor

log = logging.getLogger(__name__)

DESCRIPTION = (
    "TF-IDF (char_wb 2-5, sublinear; pairs: text, target and shared n-grams) + "
    "LogisticRegression(class_weight=balanced, C chosen on held-out training rows)"
)


def describe(train: list[Path]) -> str:
    """The baseline's line in a report: what it is and what it was trained on."""
    return f"{DESCRIPTION}, trained on {', '.join(str(p) for p in train)}"


class BaselinePredictor(Predictor):
    """A Predictor whose encoder + heads are one serving.tfidf.NgramClassifier per task."""

    def __init__(self, specs: list[TaskSpec], pipelines: dict, max_length: int = 128, batch_size: int = 256):
        self.manifest = Manifest(
            tasks=specs, max_length=max_length, base_model="tfidf-logreg", normalization=DEFAULT_SETTINGS
        )
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
            # (text,) or (target, text), already normalised
            texts, targets = (
                [parts[-1] for parts in inputs],
                [parts[0] if len(parts) == 2 else None for parts in inputs],
            )
            outputs = {task: torch.from_numpy(self.pipelines[task].probabilities(texts, targets)) for task in tasks}
            if progress:
                progress(len(inputs))
            results.append((outputs, [False] * len(inputs)))
        return results


def fit_baseline(
    train: list[Path], tasks: list[str], pair_tasks: set[str] = frozenset(), skip_bad_rows: bool = False
) -> BaselinePredictor:
    """Train one n-gram classifier per task on the rows of `train` labelled for it."""
    from training.features import task_specs
    from training.ngram_model import fit_ngram_classifier

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
            report_bad_rows(
                [f"{r.where}: {no_target([spec.name])}" for r in labelled if not has_target(r.target)],
                skip_bad_rows,
                where=" in the baseline's training data",
            )
            labelled = [r for r in labelled if has_target(r.target)]
        pair = spec.input == "pair"
        inputs = [
            (normalize(r.target, DEFAULT_SETTINGS) if pair else None, normalize(r.text, DEFAULT_SETTINGS))
            for r in labelled
        ]
        log.info("baseline: fitting task '%s' on %d rows", spec.name, len(inputs))
        try:
            pipelines[spec.name] = fit_ngram_classifier(labelled, inputs, spec.name, list(spec.labels), pair)
        except ValueError as error:
            raise RasidError(f"the baseline could not be trained for task '{spec.name}': {error}.") from error
    return BaselinePredictor(specs, pipelines)

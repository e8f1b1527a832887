"""Fitting a bundle's late fusion (serving/fusion.py): one n-gram model per task, and its weight.

Per task: the n-gram classifier is trained on the training rows (training/ngram_model.py); the fusion weight
(of the encoder's log-probabilities, 0 to 1 in steps of 0.1) is the one with the best macro-F1 on the
validation rows, and a temperature is fitted on them afterwards. Since both are chosen on validation, the
score reported for the fused model is cross-fitted: the weight chosen on one half of the validation groups
scores the other half, and the reverse. A task where the fused model does not beat the encoder alone on
that honest score keeps the encoder alone (weight 1), and so does a task pooled over several validation files
(claim: ANS and AuSTR) where the fused model loses on any one of them: one weight must not trade one
dataset's answers for another's. A target-stance task is reported by its StanceEval score, which ignores
the None class that macro-F1 counts: fusion that lowers the cross-fitted StanceEval is not used either.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from serving.bundle import has_target, load_ngram_models, read_manifest, save_ngram_models, write_manifest
from serving.data_files import Row
from serving.fusion import FusedTask, fuse
from serving.normalize import normalize
from training.calibration import fit_temperature
from training.data import split_rows
from training.metrics import classification_metrics, is_target_stance, stanceeval_score
from training.ngram_model import fit_ngram_classifier

log = logging.getLogger(__name__)

WEIGHTS = tuple(round(0.1 * k, 1) for k in range(11))
MIN_FILE_ROWS = 20  # a validation file with fewer rows of a task is too small to veto its fusion


def _macro_f1(probabilities: np.ndarray, gold: np.ndarray, labels: list[str]) -> float:
    return classification_metrics([labels[g] for g in gold], [labels[p] for p in probabilities.argmax(1)], labels)[
        "macro_f1"
    ]


def choose_weight(encoder: np.ndarray, ngram: np.ndarray, gold: np.ndarray, labels: list[str]) -> float:
    """The weight with the best macro-F1 (ties: the one nearest the encoder alone)."""
    scores = {w: _macro_f1(fuse(encoder, ngram, w), gold, labels) for w in WEIGHTS}
    return max(WEIGHTS, key=lambda w: (round(scores[w], 6), w))


def cross_fitted(
    encoder: np.ndarray, ngram: np.ndarray, gold: np.ndarray, labels: list[str], halves: list[np.ndarray]
) -> np.ndarray:
    """Fused probabilities where each half's weight was chosen on the other half."""
    fused = np.zeros_like(encoder)
    for k, half in enumerate(halves):
        other = halves[1 - k]
        weight = choose_weight(encoder[other], ngram[other], gold[other], labels)
        fused[half] = fuse(encoder[half], ngram[half], weight)
    return fused


def losing_files(
    encoder: np.ndarray, fused: np.ndarray, gold: np.ndarray, labels: list[str], files: list[str]
) -> dict[str, dict]:
    """The validation files (with at least MIN_FILE_ROWS rows) on which the fused answers score a lower
    macro-F1 than the encoder's alone: {file: {"rows", "encoder", "fused_cross_fitted"}}."""
    files = np.asarray(files)
    losers = {}
    for file in sorted(set(files.tolist())):
        rows = np.flatnonzero(files == file)
        if len(rows) < MIN_FILE_ROWS:
            continue
        alone, mixed = (_macro_f1(p[rows], gold[rows], labels) for p in (encoder, fused))
        if mixed < alone:
            losers[file] = {"rows": len(rows), "encoder": round(alone, 4), "fused_cross_fitted": round(mixed, 4)}
    return losers


def _stanceeval(probabilities: np.ndarray, gold: np.ndarray, labels: list[str], targets: list[str]) -> float:
    predicted = [labels[k] for k in probabilities.argmax(1)]
    return stanceeval_score([labels[g] for g in gold], predicted, targets)["score"]


def decide_weight(
    encoder: np.ndarray,
    ngram: np.ndarray,
    gold: np.ndarray,
    labels: list[str],
    halves: list[np.ndarray],
    files: list[str],
    targets: list[str] | None = None,
) -> tuple[float, dict, dict]:
    """(weight, scores, losing files) for one task's validation answers; weight 1 keeps the encoder alone.

    `targets` (given for a target-stance task) adds the StanceEval scores, and the rule that fusion must not
    lower the cross-fitted one."""
    scores = {"encoder": _macro_f1(encoder, gold, labels), "ngram": _macro_f1(ngram, gold, labels)}
    if not all(len(h) for h in halves):
        return 1.0, scores, {}  # no honest score for the fused model: the encoder alone
    held_out = cross_fitted(encoder, ngram, gold, labels, halves)
    scores["fused_cross_fitted"] = _macro_f1(held_out, gold, labels)
    losers = losing_files(encoder, held_out, gold, labels, files)
    pays = scores["fused_cross_fitted"] > scores["encoder"] and not losers
    if targets is not None:
        scores["stanceeval_encoder"] = _stanceeval(encoder, gold, labels, targets)
        scores["stanceeval_fused_cross_fitted"] = _stanceeval(held_out, gold, labels, targets)
        pays = pays and scores["stanceeval_fused_cross_fitted"] >= scores["stanceeval_encoder"]
    return (choose_weight(encoder, ngram, gold, labels) if pays else 1.0), scores, losers


def fit_fusion(
    bundle: Path, train_rows: list[Row], val_rows: list[Row], seed: int = 13, tasks: list[str] | None = None
) -> dict:
    """Fit and write the bundle's n-gram models and fusion weights; return the per-task measurements."""
    from serving.predictor import Predictor

    manifest = read_manifest(bundle)
    predictor = Predictor.from_bundle(bundle, fusion=False, precision="fp32")  # the encoder alone, as trained
    settings = manifest.normalization
    fused, report = {}, {}
    for spec in manifest.tasks:
        if tasks is not None and spec.name not in tasks:
            continue
        pair, labels = spec.input == "pair", list(spec.labels)

        def usable(row: Row, name=spec.name, labels=labels, pair=pair) -> bool:
            return name in row.labels and row.labels[name] in labels and (not pair or has_target(row.target))

        def inputs_of(rows: list[Row], pair=pair) -> list[tuple[str | None, str]]:
            return [(normalize(r.target, settings) if pair else None, normalize(r.text, settings)) for r in rows]

        train, val = [r for r in train_rows if usable(r)], [r for r in val_rows if usable(r)]
        if len(val) < 20 or len({r.labels[spec.name] for r in train}) < 2:
            log.info(
                "fusion: task '%s' has too few labelled rows to fit a weight; the encoder answers alone", spec.name
            )
            continue
        classifier = fit_ngram_classifier(train, inputs_of(train), spec.name, labels, pair)
        val_inputs = inputs_of(val)
        encoder_inputs = [(t, x) if pair else (x,) for t, x in val_inputs]
        encoder = predictor.probabilities(encoder_inputs, [spec.name])[spec.name].float().numpy()
        ngram = classifier.probabilities([x for _, x in val_inputs], [t for t, _ in val_inputs])
        gold = np.array([labels.index(r.labels[spec.name]) for r in val])
        position = {id(r): k for k, r in enumerate(val)}
        first, _ = split_rows(val, 0.5, seed)
        in_first = np.zeros(len(val), dtype=bool)
        in_first[[position[id(r)] for r in first]] = True
        halves = [np.flatnonzero(in_first), np.flatnonzero(~in_first)]
        targets = [r.target for r in val] if pair and is_target_stance(spec.name, labels) else None
        weight, scores, losers = decide_weight(encoder, ngram, gold, labels, halves, [r.file for r in val], targets)
        mixed = weight * np.log(np.maximum(encoder, 1e-6)) + (1 - weight) * np.log(np.maximum(ngram, 1e-6))
        temperature = fit_temperature(mixed, gold)
        report[spec.name] = {
            **{k: round(v, 4) for k, v in scores.items()},
            "weight": weight,
            "temperature": round(temperature, 4),
            "val_rows": len(val),
            "train_rows": len(train),
            **({"losing_files": losers} if losers else {}),
        }
        log.info(
            "fusion %s: macro-F1 encoder %.4f, n-grams %.4f, fused (cross-fitted) %s%s; weight %.1f%s",
            spec.name,
            scores["encoder"],
            scores["ngram"],
            f"{scores['fused_cross_fitted']:.4f}" if "fused_cross_fitted" in scores else "n/a",
            (
                f"; StanceEval encoder {scores['stanceeval_encoder']:.4f}, fused (cross-fitted) "
                f"{scores['stanceeval_fused_cross_fitted']:.4f}"
                if "stanceeval_encoder" in scores
                else ""
            ),
            weight,
            f" (fused loses on {', '.join(losers)})" if losers else "",
        )
        if weight < 1.0:
            fused[spec.name] = FusedTask(classifier, weight, temperature)
    earlier = {} if tasks is None else {k: v for k, v in load_ngram_models(bundle).items() if k not in tasks}
    kept = {**earlier, **fused}  # a task refitted to the encoder alone loses its earlier n-gram model
    save_ngram_models(bundle, kept)
    manifest.metrics["fusion"] = {**(manifest.metrics.get("fusion", {}) if tasks is not None else {}), **report}
    write_manifest(bundle, manifest)
    return report

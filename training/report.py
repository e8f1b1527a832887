"""Evaluation reports: one dict of scores per model and task, printed, and written as JSON, Markdown and PNGs.

Scores are fractions in report.json and percentages (one decimal) where people read them.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from training.calibration import expected_calibration_error
from training.metrics import classification_metrics, confusion, stanceeval_score

NO_VERDICT = "(no verdict)"  # the prediction recorded for a document with no usable paragraph


def is_target_stance(task: str, labels) -> bool:
    """Target stance is scored with StanceEval too: the task `stance`, or any task labelled Favor/Against."""
    return task == "stance" or {"favor", "against"} <= {label.lower() for label in labels}


def score_task(task: str, labels: list[str], gold: list[str], predicted: list[str],
               probabilities: list | None = None, targets: list[str | None] | None = None) -> dict:
    """Every number the report gives for one task. `probabilities[k]` is row k's vector over `labels`
    (None for a row without one, e.g. a document with no verdict); ECE is computed on the rows that have one."""
    scores = classification_metrics(gold, predicted, labels)
    scores["confusion"] = confusion(gold, predicted, labels)
    if probabilities is not None:
        rows = [k for k, p in enumerate(probabilities) if p is not None]
        index = {label: k for k, label in enumerate(labels)}
        matrix = np.array([probabilities[k] for k in rows], dtype=np.float64).reshape(len(rows), len(labels))
        scores["ece"] = expected_calibration_error(matrix, np.array([index[gold[k]] for k in rows]))
    if NO_VERDICT in predicted:
        scores["no_verdict"] = predicted.count(NO_VERDICT)
    if targets is not None and is_target_stance(task, labels):
        scores["stanceeval"] = stanceeval_score(gold, predicted, [t or "" for t in targets])
    return scores


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def summary_rows(report: dict) -> list[list[str]]:
    rows = []
    for model, result in report["models"].items():
        for task, s in result["tasks"].items():
            rows.append([task, model, str(s["n"]), _pct(s["accuracy"]), _pct(s["macro_f1"]),
                         _pct(s.get("stanceeval", {}).get("score")), _pct(s.get("ece"))])
    return sorted(rows, key=lambda r: r[0])


SUMMARY_HEADER = ["task", "model", "n", "accuracy", "macro-F1", "StanceEval", "ECE"]


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def _class_rows(scores: dict) -> list[list[str]]:
    return [[label, _pct(c["precision"]), _pct(c["recall"]), _pct(c["f1"]), str(c["support"])]
            for label, c in scores["per_class"].items()]


def _target_rows(scores: dict) -> list[list[str]]:
    return [[target, str(v["n"]), _pct(v["f1_favor"]), _pct(v["f1_against"]), _pct(v["score"])]
            for target, v in scores["stanceeval"]["per_target"].items()]


def format_report(report: dict) -> str:
    """The report as plain text for the terminal."""
    parts = [f"data: {', '.join(report['data'])}" + ("  (documents)" if report.get("documents") else "")]
    for model, result in report["models"].items():
        for task, s in result["tasks"].items():
            parts.append(f"\n== {model} · {task} ==  n={s['n']}  accuracy {_pct(s['accuracy'])}  "
                         f"macro-F1 {_pct(s['macro_f1'])}  ECE {_pct(s.get('ece'))}"
                         + (f"  no verdict: {s['no_verdict']}" if s.get("no_verdict") else ""))
            parts.append(_table(["label", "precision", "recall", "F1", "support"], _class_rows(s)))
            if "stanceeval" in s:
                parts.append(f"StanceEval 2024 score {_pct(s['stanceeval']['score'])} (mean over targets of "
                             f"mean(F1 Favor, F1 Against)):")
                parts.append(_table(["target", "n", "F1 Favor", "F1 Against", "score"], _target_rows(s)))
    parts.append("\n== summary (percent) ==")
    parts.append(_table(SUMMARY_HEADER, summary_rows(report)))
    return "\n".join(parts)


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    escape = lambda c: str(c).replace("|", "\\|")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(escape(c) for c in r) + " |" for r in rows])


def format_markdown(report: dict, images: dict[str, str]) -> str:
    out = [f"# rasid evaluation report", "",
           f"- created: {report['created']}", f"- rasid: {report['rasid_version']}",
           f"- data: {', '.join('`' + d + '`' for d in report['data'])}",
           f"- documents mode: {'yes' if report.get('documents') else 'no'}"]
    for model, result in report["models"].items():
        out.append(f"- {model}: {result['description']}")
    out += ["", "## Summary (percent)", "", _md_table(SUMMARY_HEADER, summary_rows(report))]
    for model, result in report["models"].items():
        for task, s in result["tasks"].items():
            out += ["", f"## {model} · {task}", "",
                    f"n={s['n']}, accuracy {_pct(s['accuracy'])}, macro-F1 {_pct(s['macro_f1'])}, "
                    f"ECE {_pct(s.get('ece'))}" + (f", no verdict: {s['no_verdict']}" if s.get("no_verdict") else ""),
                    "", _md_table(["label", "precision", "recall", "F1", "support"], _class_rows(s))]
            if "stanceeval" in s:
                out += ["", f"StanceEval 2024 score: **{_pct(s['stanceeval']['score'])}**", "",
                        _md_table(["target", "n", "F1 Favor", "F1 Against", "score"], _target_rows(s))]
            if (model, task) in images:
                out += ["", f"![confusion matrix {model} {task}]({images[(model, task)]})"]
    return "\n".join(out) + "\n"


def plot_confusion(matrix: dict, title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = np.array(matrix["counts"], dtype=int).reshape(len(matrix["labels"]), len(matrix["columns"]))
    size = max(4.0, 0.9 * max(counts.shape) + 2)
    figure, axes = plt.subplots(figsize=(size + 1, size))
    image = axes.imshow(counts, cmap="Blues")
    axes.set_xticks(range(len(matrix["columns"])), matrix["columns"], rotation=45, ha="right")
    axes.set_yticks(range(len(matrix["labels"])), matrix["labels"])
    axes.set_xlabel("predicted")
    axes.set_ylabel("gold")
    axes.set_title(title)
    threshold = counts.max() / 2 if counts.size else 0
    for i in range(counts.shape[0]):
        for j in range(counts.shape[1]):
            axes.text(j, i, str(counts[i, j]), ha="center", va="center",
                      color="white" if counts[i, j] > threshold else "black")
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write_report(report: dict, folder: Path) -> list[Path]:
    """report.json, report.md and confusion-<task>[-<model>].png in `folder`; return the paths written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written, images = [], {}
    first = next(iter(report["models"]), None)
    for model, result in report["models"].items():
        for task, s in result["tasks"].items():
            name = f"confusion-{task}.png" if model == first else f"confusion-{task}-{model}.png"
            plot_confusion(s["confusion"], f"{model} · {task} (n={s['n']})", folder / name)
            images[(model, task)] = name
            written.append(folder / name)
    for name, content in (("report.json", json.dumps(report, ensure_ascii=False, indent=2) + "\n"),
                          ("report.md", format_markdown(report, images))):
        _write_atomic(folder / name, content)
        written.append(folder / name)
    return written


def _write_atomic(path: Path, content: str) -> None:
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(content)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise

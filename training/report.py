"""Evaluation reports: one dict of scores per model and task, printed, and written as JSON, Markdown and PNGs.

Scores are fractions in report.json and percentages (one decimal) where people read them. Each task with scores
gets a risk-coverage table (and plot): for each threshold, the share of answers whose score reaches it and how
good those answers are, so a user can choose `abstain_below` knowing what it keeps and what it costs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from serving.abstention import UNCERTAIN, abstain
from serving.files import write_text
from training.calibration import expected_calibration_error
from training.metrics import classification_metrics, confusion, is_target_stance, stanceeval_score

NO_VERDICT = "(no verdict)"  # the prediction recorded for a document with no usable paragraph
# Thresholds of the risk-coverage table: from where a 3-label task starts to drop answers to where few are left
RISK_COVERAGE_THRESHOLDS = tuple(round(0.30 + 0.05 * k, 2) for k in range(14))  # 0.30, 0.35, ..., 0.95


def score_task(
    task: str,
    labels: list[str],
    gold: list[str],
    predicted: list[str],
    probabilities: list | None = None,
    targets: list[str | None] | None = None,
    confidences: list[float | None] | None = None,
    abstain_below: float | None = None,
) -> dict:
    """Every number the report gives for one task. `probabilities[k]` is row k's vector over `labels`
    (None for a row without one, e.g. a document with no verdict); ECE is computed on the rows that have one.
    `confidences[k]` is the score of row k's answer (default: its highest probability); with `abstain_below`,
    answers scoring less are "uncertain" and count as wrong, and `abstention` gives how many were answered and
    how good those were. `risk_coverage` does the same for every threshold of RISK_COVERAGE_THRESHOLDS."""
    if confidences is None and probabilities is not None:
        confidences = [max(p) if p is not None else None for p in probabilities]
    answered = predicted
    if abstain_below is not None and confidences is not None:
        predicted = [
            p if c is None else abstain({"label": p, "score": c}, abstain_below)["label"]
            for p, c in zip(predicted, confidences)
        ]
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
    if confidences is not None:
        scores["risk_coverage"] = risk_coverage(gold, answered, confidences, labels)
        if abstain_below is not None:
            kept = _kept(gold, answered, confidences, labels, abstain_below)
            scores["abstention"] = {"abstain_below": abstain_below, "uncertain": predicted.count(UNCERTAIN), **kept}
    return scores


def _kept(gold, predicted, confidences, labels, threshold: float) -> dict:
    """How many answers score at least `threshold`, their share of all rows, and their accuracy and macro-F1
    (None when none is kept). Rows without an answer (no verdict) are never kept."""
    rows = [k for k, c in enumerate(confidences) if c is not None and c >= threshold]
    metrics = classification_metrics([gold[k] for k in rows], [predicted[k] for k in rows], labels) if rows else None
    return {
        "answered": len(rows),
        "coverage": len(rows) / len(gold) if gold else 0.0,
        "accuracy": metrics["accuracy"] if metrics else None,
        "macro_f1": metrics["macro_f1"] if metrics else None,
    }


def risk_coverage(
    gold: list[str],
    predicted: list[str],
    confidences: list[float | None],
    labels: list[str],
    thresholds=RISK_COVERAGE_THRESHOLDS,
) -> list[dict]:
    """For each threshold: {"threshold", "answered", "coverage", "accuracy", "macro_f1"} of the answers that
    abstain_below=threshold would keep. `predicted` are the answers before any abstention."""
    return [{"threshold": t, **_kept(gold, predicted, confidences, labels, t)} for t in thresholds]


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def summary_rows(report: dict) -> list[list[str]]:
    rows = []
    for model, result in report["models"].items():
        for task, s in result["tasks"].items():
            rows.append(
                [
                    task,
                    model,
                    str(s["n"]),
                    _pct(s["accuracy"]),
                    _pct(s["macro_f1"]),
                    _pct(s.get("stanceeval", {}).get("score")),
                    _pct(s.get("ece")),
                ]
            )
    return sorted(rows, key=lambda r: r[0])


SUMMARY_HEADER = ["task", "model", "n", "accuracy", "macro-F1", "StanceEval", "ECE"]


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def _class_rows(scores: dict) -> list[list[str]]:
    return [
        [label, _pct(c["precision"]), _pct(c["recall"]), _pct(c["f1"]), str(c["support"])]
        for label, c in scores["per_class"].items()
    ]


RISK_COVERAGE_HEADER = ["abstain below", "answered", "coverage", "accuracy (answered)", "macro-F1 (answered)"]


def _risk_rows(scores: dict) -> list[list[str]]:
    return [
        [f"{r['threshold']:.2f}", str(r["answered"]), _pct(r["coverage"]), _pct(r["accuracy"]), _pct(r["macro_f1"])]
        for r in scores["risk_coverage"]
    ]


def _abstention_line(scores: dict) -> str:
    a = scores["abstention"]
    return (
        f"abstaining below {a['abstain_below']:g}: {a['answered']} of {scores['n']} answered "
        f"(coverage {_pct(a['coverage'])}%), accuracy {_pct(a['accuracy'])} and macro-F1 {_pct(a['macro_f1'])} "
        f"on those; the scores above count the {a['uncertain']} uncertain answer(s) as wrong"
    )


def _target_rows(scores: dict) -> list[list[str]]:
    return [
        [target, str(v["n"]), _pct(v["f1_favor"]), _pct(v["f1_against"]), _pct(v["score"])]
        for target, v in scores["stanceeval"]["per_target"].items()
    ]


def format_report(report: dict) -> str:
    """The report as plain text for the terminal."""
    parts = [f"data: {', '.join(report['data'])}" + ("  (documents)" if report.get("documents") else "")]
    for model, result in report["models"].items():
        for task, s in result["tasks"].items():
            parts.append(
                f"\n== {model} · {task} ==  n={s['n']}  accuracy {_pct(s['accuracy'])}  "
                f"macro-F1 {_pct(s['macro_f1'])}  ECE {_pct(s.get('ece'))}"
                + (f"  no verdict: {s['no_verdict']}" if s.get("no_verdict") else "")
            )
            parts.append(_table(["label", "precision", "recall", "F1", "support"], _class_rows(s)))
            if "stanceeval" in s:
                parts.append(
                    f"StanceEval 2024 score {_pct(s['stanceeval']['score'])} (mean over targets of "
                    f"mean(F1 Favor, F1 Against)):"
                )
                parts.append(_table(["target", "n", "F1 Favor", "F1 Against", "score"], _target_rows(s)))
            if "abstention" in s:
                parts.append(_abstention_line(s))
            if "risk_coverage" in s:
                parts.append("risk-coverage (percent):")
                parts.append(_table(RISK_COVERAGE_HEADER, _risk_rows(s)))
    parts.append("\n== summary (percent) ==")
    parts.append(_table(SUMMARY_HEADER, summary_rows(report)))
    return "\n".join(parts)


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    escape = lambda c: str(c).replace("|", "\\|")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(escape(c) for c in r) + " |" for r in rows])


def format_markdown(report: dict, images: dict[str, str]) -> str:
    out = [
        "# rasid evaluation report",
        "",
        f"- created: {report['created']}",
        f"- rasid: {report['rasid_version']}",
        f"- data: {', '.join('`' + d + '`' for d in report['data'])}",
        f"- documents mode: {'yes' if report.get('documents') else 'no'}",
    ]
    for model, result in report["models"].items():
        out.append(f"- {model}: {result['description']}")
    out += ["", "## Summary (percent)", "", _md_table(SUMMARY_HEADER, summary_rows(report))]
    for model, result in report["models"].items():
        for task, s in result["tasks"].items():
            out += [
                "",
                f"## {model} · {task}",
                "",
                f"n={s['n']}, accuracy {_pct(s['accuracy'])}, macro-F1 {_pct(s['macro_f1'])}, "
                f"ECE {_pct(s.get('ece'))}" + (f", no verdict: {s['no_verdict']}" if s.get("no_verdict") else ""),
                "",
                _md_table(["label", "precision", "recall", "F1", "support"], _class_rows(s)),
            ]
            if "stanceeval" in s:
                out += [
                    "",
                    f"StanceEval 2024 score: **{_pct(s['stanceeval']['score'])}**",
                    "",
                    _md_table(["target", "n", "F1 Favor", "F1 Against", "score"], _target_rows(s)),
                ]
            if (model, task) in images:
                out += ["", f"![confusion matrix {model} {task}]({images[(model, task)]})"]
            if "abstention" in s:
                out += ["", _abstention_line(s) + "."]
            if "risk_coverage" in s:
                out += [
                    "",
                    "Risk-coverage: answers whose score reaches each threshold, and how good they are "
                    "(percent). Pick `abstain_below` where coverage and accuracy suit the use.",
                    "",
                    _md_table(RISK_COVERAGE_HEADER, _risk_rows(s)),
                ]
                if (model, task, "risk") in images:
                    out += ["", f"![risk-coverage {model} {task}]({images[(model, task, 'risk')]})"]
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
            axes.text(
                j,
                i,
                str(counts[i, j]),
                ha="center",
                va="center",
                color="white" if counts[i, j] > threshold else "black",
            )
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_risk_coverage(rows: list[dict], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    thresholds = [r["threshold"] for r in rows]
    figure, axes = plt.subplots(figsize=(6.4, 4.2))
    for key, name, style in (
        ("coverage", "coverage (answered share)", "-o"),
        ("accuracy", "accuracy of answered", "-s"),
        ("macro_f1", "macro-F1 of answered", "-^"),
    ):
        values = [r[key] if r[key] is not None else np.nan for r in rows]
        axes.plot(thresholds, values, style, label=name, markersize=4)
    axes.set_xlabel("abstain below (score threshold)")
    axes.set_ylabel("fraction")
    axes.set_ylim(0, 1.02)
    axes.grid(alpha=0.3)
    axes.legend(loc="lower left", fontsize=8)
    axes.set_title(title)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write_report(report: dict, folder: Path) -> list[Path]:
    """report.json, report.md, confusion-<task>[-<model>].png and risk-coverage-<task>[-<model>].png in
    `folder`; return the paths written."""
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
            if s.get("risk_coverage"):
                name = f"risk-coverage-{task}.png" if model == first else f"risk-coverage-{task}-{model}.png"
                plot_risk_coverage(s["risk_coverage"], f"{model} · {task} (n={s['n']})", folder / name)
                images[(model, task, "risk")] = name
                written.append(folder / name)
    for name, content in (
        ("report.json", json.dumps(report, ensure_ascii=False, indent=2) + "\n"),
        ("report.md", format_markdown(report, images)),
    ):
        write_text(folder / name, content)
        written.append(folder / name)
    return written

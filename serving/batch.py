"""Labelling many rows: the chunks, the per-row work and the result layout that `rasid predict`'s local engine
(serving/predict.py) and its Ray engine (serving/predict_ray.py) share."""

from __future__ import annotations

import json

from serving.errors import DataError, RasidError

CHUNK_ROWS = 256  # rows per predictor call: big enough to fill batches, small enough to stop within seconds
CHUNK_DOCUMENTS = 32  # an article is many paragraphs: fewer per call, so a stop request is still answered soon
RESULT_FIELDS = ("predictions", "truncated", "skipped_tasks")
DOCUMENT_FIELDS = ("paragraphs", "skipped", "empty")


def check_tasks(manifest, requested: str | None) -> list[str] | None:
    """The tasks asked for by name (None: every task each row can take), checked against the bundle."""
    if not requested:
        return None
    tasks = [t.strip() for t in requested.split(",") if t.strip()]
    known = [t.name for t in manifest.tasks]
    unknown = [t for t in tasks if t not in known]
    if unknown:
        raise RasidError(f"unknown task(s) {unknown}; this model has {known}.")
    return tasks


def chunks(rows, size: int, skip: int = 0):
    """Lists of `size` items from an iterator, after dropping its first `skip` (rows a resumed run has)."""
    chunk = []
    for n, item in enumerate(rows):
        if n < skip:
            continue
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def predict_chunk(
    predictor,
    rows,
    tasks,
    documents: bool,
    abstain_below: float | None,
    abstain_unseen_targets: bool = False,
    recurring: frozenset[str] | None = None,
) -> list[dict]:
    """The result of each row ({predictions, truncated, skipped_tasks}, plus the document fields), in order."""
    if documents:
        from serving.documents import analyze_documents

        return analyze_documents(
            predictor,
            [r.text for r in rows],
            [r.target for r in rows],
            tasks,
            abstain_below,
            abstain_unseen_targets=abstain_unseen_targets,
            recurring=recurring,
        )
    from serving.predictor import Item

    return [
        {"predictions": r.predictions, "truncated": r.truncated, "skipped_tasks": r.skipped_tasks}
        for r in predictor.predict_items(
            [Item(r.text, r.target) for r in rows], tasks, abstain_below, abstain_unseen_targets=abstain_unseen_targets
        )
    ]


def output_line(record: dict, result: dict, keep_text: bool) -> dict:
    """The input row's own columns (not its text, unless asked), then its result."""
    line = {key: value for key, value in record.items() if key != "text" or keep_text}
    line.update(result)
    return line


def flat_line(line: dict, tasks: list[str], documents: bool) -> dict:
    """A nested output line as flat columns (CSV, Parquet, Ray shards): see the module's docstring."""
    flat = {key: value for key, value in line.items() if key not in RESULT_FIELDS + DOCUMENT_FIELDS}
    for task in tasks:
        answer = line["predictions"].get(task) or {}
        flat[f"{task}.label"] = answer.get("label")
        flat[f"{task}.score"] = answer.get("score")
        flat[f"{task}.scores"] = answer.get("scores")
        flat[f"{task}.target_seen"] = answer.get("target_seen")  # a column for pair tasks only (result_schema)
        if documents:
            flat[f"{task}.rule"] = answer.get("rule")
    flat["truncated"] = bool(line["truncated"])
    flat["skipped_tasks"] = list(line["skipped_tasks"])
    if documents:
        flat["empty"] = bool(line["empty"])
        flat["paragraphs"] = json.dumps(line["paragraphs"], ensure_ascii=False)
        flat["skipped"] = json.dumps(line["skipped"], ensure_ascii=False)
    return flat


def result_columns(manifest, tasks: list[str], documents: bool) -> list[str]:
    return result_schema(manifest, tasks, documents).names


def result_schema(manifest, tasks: list[str], documents: bool):
    """The result columns of the flat layout and their Arrow types: fixed by the bundle, so every Parquet chunk
    and Ray shard agrees. `TASK.target_seen` (whether training saw the row's target) is for pair tasks, null
    where the bundle keeps no list of targets for the task."""
    import pyarrow as pa

    fields = []
    for task in tasks:
        spec = manifest.task(task)
        fields += [
            pa.field(f"{task}.label", pa.string()),
            pa.field(f"{task}.score", pa.float64()),
            pa.field(f"{task}.scores", pa.struct([pa.field(label, pa.float64()) for label in spec.labels])),
        ]
        if spec.input == "pair":
            fields.append(pa.field(f"{task}.target_seen", pa.bool_()))
        if documents:
            fields.append(pa.field(f"{task}.rule", pa.string()))
    fields += [pa.field("truncated", pa.bool_()), pa.field("skipped_tasks", pa.list_(pa.string()))]
    if documents:
        fields += [pa.field("empty", pa.bool_()), pa.field("paragraphs", pa.string()), pa.field("skipped", pa.string())]
    return pa.schema(fields)


def refuse_clashing_columns(columns: dict, fmt: str, manifest, tasks: list[str], documents: bool) -> None:
    """An input column named like an output field would be silently overwritten: refuse instead."""
    ours = (
        set(RESULT_FIELDS + (DOCUMENT_FIELDS if documents else ()))
        if fmt == "jsonl"
        else set(result_columns(manifest, tasks, documents))
    )
    clashes = sorted(set(columns) & ours)
    if clashes:
        raise DataError(
            f"input column(s) {clashes} have the names of rasid's output fields and would be overwritten; rename them."
        )

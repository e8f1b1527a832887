"""AuSTR (stance of an authority's tweet towards a rumour tweet) from AuSTR_SNAM.tsv."""

from __future__ import annotations

import csv
from pathlib import Path

from training.recipes.common import Extract, label_problem, read_table, text_problem

FILE = "AuSTR_SNAM.tsv"
TASKS = ("claim",)
COLUMNS = ("text", "target", *TASKS, "id", "group", "source")
STANCES = {"agree", "disagree", "other"}


def read(source: Path) -> Extract:
    extract = Extract()
    path = source / FILE
    # Tab-separated with CRLF and no quoting at all: a '"' inside a tweet is just a character.
    records = read_table(
        path,
        ["rumor_id", "evidence_id", "rumor_text", "evidence_text", "stance"],
        extract,
        delimiter="\t",
        quoting=csv.QUOTE_NONE,
    )
    for line, record in records:
        stance = record["stance"].strip()
        rumor_id = record["rumor_id"].strip()
        problem = (
            text_problem(record["evidence_text"])
            or (None if record["rumor_text"].strip() else "empty rumor_text")
            or (None if rumor_id and record["evidence_id"].strip() else "empty rumor_id or evidence_id")
            or label_problem("stance", stance, STANCES)
        )
        if problem:
            extract.reject(path, line, problem)
            continue
        row = {
            "text": record["evidence_text"].strip(),
            "target": record["rumor_text"].strip(),
            "claim": stance,
            "id": f"austr:{rumor_id}:{record['evidence_id'].strip()}",
            "group": rumor_id,
            "source": "austr",
        }
        extract.keep(path, line, row)
    return extract

"""Mawqif (target stance of tweets, plus sentiment and sarcasm) from Mawqif_AllTargets_Train.csv."""

from __future__ import annotations

from pathlib import Path

from training.recipes.common import Extract, label_problem, read_table, text_group, text_problem

FILE = "Mawqif_AllTargets_Train.csv"
TASKS = ("stance", "sentiment", "sarcasm")
COLUMNS = ("text", "target", *TASKS, "id", "group", "source")
STANCES = {"Favor", "Against", "None"}
SENTIMENTS = {"Positive", "Neutral", "Negative"}
SARCASM = {"Yes", "No"}


def read(source: Path) -> Extract:
    extract = Extract()
    path = source / FILE
    # The file starts with a BOM and ends lines with CRLF; read_table handles both.
    for line, record in read_table(path, ["ID", "text", "target", "stance", "sentiment", "sarcasm"], extract):
        # "None" is written out in this copy; pandas reads it (and an empty cell) as NaN, hence SOURCE.md's note.
        stance = record["stance"].strip() or "None"
        sentiment = record["sentiment"].strip() or None
        sarcasm = record["sarcasm"].strip() or None
        problem = (
            text_problem(record["text"])
            or (None if record["ID"].strip() else "empty ID")
            or (None if record["target"].strip() else "empty target")
            or label_problem("stance", stance, STANCES)
            or (sentiment and label_problem("sentiment", sentiment, SENTIMENTS))
            or (sarcasm and label_problem("sarcasm", sarcasm, SARCASM))
        )
        if problem:
            extract.reject(path, line, problem)
            continue
        text = record["text"].strip()
        row = {
            "text": text,
            "target": record["target"].strip(),
            "stance": stance,
            "sentiment": sentiment,
            "sarcasm": sarcasm,
            "id": f"mawqif:{record['ID'].strip()}",
            "group": text_group(text),
            "source": "mawqif",
        }
        extract.keep(path, line, row)
    return extract

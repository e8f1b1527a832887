"""ANS (claim stance between two news headlines) from stance/train.csv and stance/dev.csv."""

from __future__ import annotations

from pathlib import Path

from training.recipes.common import Extract, label_problem, read_table, text_group, text_problem

FILES = {"train": "stance/train.csv", "dev": "stance/dev.csv"}
TASKS = ("claim",)
COLUMNS = ("text", "target", *TASKS, "id", "group", "source", "split")
STANCES = {"agree", "disagree", "other"}


def read(source: Path) -> Extract:
    extract = Extract()
    for split, name in FILES.items():
        path = source / name
        for line, record in read_table(path, ["s1", "s2", "stance"], extract):
            stance = record["stance"].strip()
            problem = (
                text_problem(record["s2"])
                or (None if record["s1"].strip() else "empty claim headline (s1)")
                or label_problem("stance", stance, STANCES)
            )
            if problem:
                extract.reject(path, line, problem)
                continue
            claim = record["s1"].strip()
            # The files carry no ids, so the line is the id. Several paraphrases share one s1 headline: the
            # group keeps them together.
            row = {
                "text": record["s2"].strip(),
                "target": claim,
                "claim": stance,
                "id": f"ans:{split}:{line}",
                "group": text_group(claim),
                "source": "ans",
                "split": split,
            }
            extract.keep(path, line, row)
    return extract

"""ASND (topic of news outlets' social-media posts) from sm_news_ar_trn.csv and sm_news_ar_dev.csv."""

from __future__ import annotations

from pathlib import Path

from training.recipes.common import Extract, label_problem, read_table, text_group, text_problem

# The two files order their columns differently (Class,Content,ID,Platform vs ID,Content,Class,Platform);
# read_table finds them by name.
FILES = {"train": "sm_news_ar_trn.csv", "dev": "sm_news_ar_dev.csv"}
TASKS = ("topic",)
COLUMNS = ("text", "target", *TASKS, "id", "group", "source", "split", "platform")
TOPICS = {
    "politics",
    "crime-war-conflict",
    "others",
    "art-and-entertainment",
    "human-rights-press-freedom",
    "sports",
    "science-and-technology",
    "business-and-economy",
    "health",
    "environment",
    "spiritual",
    "education",
}


def read(source: Path) -> Extract:
    extract = Extract()
    for split, name in FILES.items():
        path = source / name
        for line, record in read_table(path, ["ID", "Content", "Class", "Platform"], extract):
            topic = record["Class"].strip()
            problem = (
                text_problem(record["Content"])
                or (None if record["ID"].strip() else "empty ID")
                or label_problem("topic", topic, TOPICS)
            )
            if problem:
                extract.reject(path, line, problem)
                continue
            text = record["Content"].strip()
            # Duplicates and retweets share a group, so they never straddle a validation split.
            row = {
                "text": text,
                "target": None,
                "topic": topic,
                "id": f"asnd:{record['ID'].strip()}",
                "group": text_group(text),
                "source": "asnd",
                "split": split,
                "platform": record["Platform"].strip() or None,
            }
            extract.keep(path, line, row)
    return extract

"""Baly et al. 2018 (claim stance of news articles) from dataset/*.json and train_test_splits.txt."""

from __future__ import annotations

import json
import re
from pathlib import Path

from serving.errors import DataError
from training.recipes.common import Extract, label_problem

SPLITS_FILE = "train_test_splits.txt"
# Its own task, not ANS's "claim": the label schemes differ (agree/disagree/discuss/unrelated here,
# agree/disagree/other there), and one head over both answered "other" on news paragraphs.
TASKS = ("news_claim",)
COLUMNS = ("text", "target", *TASKS, "id", "group", "source", "fold")
STANCES = {"agree", "disagree", "discuss", "unrelated"}
MIN_NEGATIVE_CHARS = 30  # shorter lines are menus, dates and bylines: no use as a negative example
_RATIONALE = re.compile(r"\[\s*(\d+(\s*,\s*\d+)*)?\s*\]")
_WORD = re.compile(r"\w{3,}")  # two-letter words are mostly particles (في، من) that every line shares


def read_folds(path: Path) -> dict[str, int]:
    """Claim id -> fold number, from lines like "Fold_1: R-10 V-4 ..."."""
    if not path.is_file():
        raise DataError(f"{path} does not exist; is --source the Baly corpus folder?")
    folds = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        match = re.fullmatch(r"\s*Fold_(\d+)\s*:(.*)", line)
        if match:
            folds.update((claim_id, int(match[1])) for claim_id in match[2].split())
        elif line.strip():
            raise DataError(f"{path}:{number}: expected 'Fold_N: ids...', found {line[:40]!r}")
    return folds


def parse_rationale(value: object) -> list[int] | None:
    """Line indices from "[3]", "[3, 4]", "" or "[]"; None when the value is something else."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    if value == "":
        return []
    return [int(index) for index in re.findall(r"\d+", value)] if _RATIONALE.fullmatch(value) else None


def closest_lines(claim: str, lines: list[str], count: int) -> list[int]:
    """Indices of the `count` long lines sharing the most words with the claim (ties: earlier line first)."""
    claim_words = set(_WORD.findall(claim))
    seen, scored = set(), []
    for index, line in enumerate(lines):
        text = line.strip()
        if len(text) < MIN_NEGATIVE_CHARS or text in seen:
            continue
        seen.add(text)
        scored.append((-len(claim_words & set(_WORD.findall(text))), index))
    return sorted(index for _, index in sorted(scored)[:count])


def read(
    source: Path, granularity: str = "paragraphs", folds: str | None = None, lines_per_article: int = 2
) -> Extract:
    if granularity not in ("paragraphs", "articles"):
        raise DataError(f"--granularity must be paragraphs or articles, not {granularity!r}")
    fold_of = read_folds(source / SPLITS_FILE)
    wanted = set(fold_of.values()) if folds is None else {int(fold) for fold in str(folds).split(",") if fold.strip()}
    files = {path.stem: path for path in sorted((source / "dataset").glob("*.json"))}
    if not files:
        raise DataError(f"{source / 'dataset'} holds no claim .json files")
    extract = Extract()
    absent = sorted(claim_id for claim_id, fold in fold_of.items() if fold in wanted and claim_id not in files)
    if absent:  # fold 5 is held out of this copy on purpose
        extract.info.append(f"{len(absent)} claim ids in {SPLITS_FILE} have no json (e.g. {absent[0]}); skipped")
    unlabelled = {}  # stance -> related pairs with no rationale line
    for claim_id, path in files.items():
        if claim_id not in fold_of:
            extract.reject(path, 1, f"claim {claim_id} is in no fold of {SPLITS_FILE}")
        elif fold_of[claim_id] in wanted:
            for stance in _read_claim(path, fold_of[claim_id], granularity, lines_per_article, extract):
                unlabelled[stance] = unlabelled.get(stance, 0) + 1
    if unlabelled:
        counts = ", ".join(f"{stance} {count}" for stance, count in sorted(unlabelled.items()))
        extract.info.append(f"related articles with no rationale line ({counts}): took the lines closest to the claim")
    return extract


def _read_claim(path: Path, fold: int, granularity: str, per_article: int, extract: Extract) -> list[str]:
    """Add the rows of one claim file; return the stances of related articles that had no rationale."""
    try:
        claim = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        extract.reject(path, 1, "invalid UTF-8")
        return []
    except json.JSONDecodeError as error:
        extract.reject(path, error.lineno, f"invalid JSON ({error.msg})")
        return []
    fields = ("id", "claim", "article", "stance", "rationale")
    if not isinstance(claim, dict) or any(name not in claim for name in fields):
        extract.reject(path, 1, f"a claim file needs the fields {', '.join(fields)}")
        return []
    articles, stances, rationales = claim["article"], claim["stance"], claim["rationale"]
    if not (
        isinstance(articles, list)
        and isinstance(stances, list)
        and isinstance(rationales, list)
        and len(articles) == len(stances) == len(rationales)
    ):
        extract.reject(path, 1, "article, stance and rationale are not lists of one length")
        return []
    claim_id, target = str(claim["id"]), str(claim["claim"]).strip()
    if not target:
        extract.reject(path, 1, "empty claim")
        return []
    no_rationale = []
    for index, (article, stance, rationale) in enumerate(zip(articles, stances, rationales)):
        where = f"article {index}"
        indices = parse_rationale(rationale)
        # The rationale indexes lines of article.split("\n"), counted from 0 (checked on the corpus).
        lines = article.split("\n") if isinstance(article, str) else []
        problem = (
            (None if isinstance(article, str) and article.strip() else "empty article")
            or (None if isinstance(stance, str) else f"stance {stance!r} is not a string")
            or label_problem("stance", stance, STANCES)
            or (None if indices is not None else f"unreadable rationale {rationale!r}")
            or next(
                (
                    f"rationale line {i} is out of range (the article has {len(lines)} lines)"
                    for i in indices
                    if i >= len(lines)
                ),
                None,
            )
            or next((f"rationale line {i} is empty" for i in indices if not lines[i].strip()), None)
        )
        if problem:
            extract.reject(path, where, problem)
            continue
        row = {"target": target, "news_claim": stance, "group": claim_id, "source": "baly", "fold": fold}
        if granularity == "articles":
            extract.keep(path, where, {"text": article.strip(), **row, "id": f"baly:{claim_id}:{index}"})
            continue
        if stance == "unrelated":
            chosen = closest_lines(target, lines, per_article)
        else:  # the other lines of a related article may or may not carry the stance: leave them out
            chosen = sorted(set(indices))
            if not chosen:
                # Every "discuss" article (and only those) comes without rationale: the lines that share
                # most words with the claim are where an article discusses it.
                no_rationale.append(stance)
                chosen = closest_lines(target, lines, per_article)
        for line in chosen:
            extract.keep(
                path,
                f"{where} line {line}",
                {"text": lines[line].strip(), **row, "id": f"baly:{claim_id}:{index}:{line}"},
            )
    return no_rationale

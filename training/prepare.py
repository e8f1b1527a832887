"""`rasid prepare`: run a dataset recipe on original files and write rasid's data format (JSONL or CSV)."""

from __future__ import annotations

import argparse
import csv
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from serving.data_files import report_bad_rows
from serving.errors import DataError, RasidError
from serving.files import atomic_file
from serving.options import add_command, add_skip_bad_rows
from training.recipes import RECIPES, get_recipe
from training.recipes.common import BadRow

COUNTED_EXTRAS = ("split", "fold")  # extra columns worth a count in the summary


@dataclass
class PrepareReport:
    """What one prepare run wrote and skipped."""

    name: str
    out: Path
    rows: int
    labels: dict[str, Counter] = field(default_factory=dict)  # task or split column -> label -> rows
    bad: list[BadRow] = field(default_factory=list)
    info: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"{self.name}: wrote {self.rows} rows to {self.out}"]
        for column, counts in self.labels.items():
            lines.append(f"  {column}: " + ", ".join(f"{label} {n}" for label, n in counts.most_common()))
        lines += [f"  note: {note}" for note in self.info]
        lines.append(f"  bad rows skipped: {len(self.bad)}")
        return "\n".join(lines)


def prepare(name: str, source: Path, out: Path, skip_bad_rows: bool = False, **options) -> PrepareReport:
    """Read dataset `name` from its original files in `source` and write its rows to `out` (.jsonl or .csv).

    Any bad row fails the run (nothing is written) unless `skip_bad_rows`; `options` go to the recipe.
    """
    recipe = get_recipe(name)
    source, out = Path(source), Path(out)
    if out.suffix not in (".jsonl", ".csv"):
        raise RasidError(f"--out must end in .jsonl or .csv, not {out.name!r}")
    unknown = sorted(set(options) - set(recipe.options))
    if unknown:
        raise RasidError(f"recipe {name} takes no option {', '.join(unknown)}; it takes {recipe.options or 'none'}")
    if not source.is_dir():
        raise DataError(f"{source} is not a folder; --source names the dataset's folder of original files")
    extract = recipe.read(source, **options)
    rows, bad = _drop_duplicate_ids(extract.rows, extract.bad)
    bad.sort(key=lambda row: (row.file, [int(n) for n in re.findall(r"\d+", str(row.line))]))
    report_bad_rows([str(row) for row in bad], skip_bad_rows, where=f" in {source}")
    if not rows:
        raise DataError(f"recipe {name} found no usable rows in {source}")
    _write_atomically(out, rows, recipe.columns)
    counted = [*recipe.tasks, *(column for column in COUNTED_EXTRAS if column in recipe.columns)]
    labels = {column: Counter(str(row[column]) for row in rows if row.get(column) is not None) for column in counted}
    return PrepareReport(name, out, len(rows), labels, bad, extract.info)


def _drop_duplicate_ids(rows: list[tuple[tuple, dict]], bad: list[BadRow]) -> tuple[list[dict], list[BadRow]]:
    """Keep the first row of each id; a repeat is bad, and so is the first when the two disagree."""
    first: dict[str, tuple[tuple, dict]] = {}
    conflicted: set[str] = set()
    bad = list(bad)
    for (file, line), row in rows:
        if row["id"] not in first:
            first[row["id"]] = ((file, line), row)
            continue
        (first_file, first_line), first_row = first[row["id"]]
        if row == first_row:
            bad.append(BadRow(file, line, f"repeats line {first_line} exactly"))
        else:
            changed = ", ".join(key for key in row if row[key] != first_row.get(key))
            bad.append(BadRow(file, line, f"same id {row['id']} as {first_file}:{first_line} but another {changed}"))
            conflicted.add(row["id"])
    for (file, line), row in first.values():
        if row["id"] in conflicted:  # two rows of one id contradict each other: neither can be trusted
            bad.append(BadRow(file, line, f"id {row['id']} appears again later with different values"))
    kept = [row for _, row in first.values() if row["id"] not in conflicted]
    return kept, bad


def _write_atomically(out: Path, rows: list[dict], columns: tuple[str, ...]) -> None:
    """A crash never leaves a half-written file (serving/files.py)."""
    with atomic_file(out, newline="") as stream:
        if out.suffix == ".csv":
            writer = csv.DictWriter(stream, fieldnames=columns)
            writer.writeheader()
            writer.writerows({key: "" if row.get(key) is None else row[key] for key in columns} for row in rows)
        else:
            for row in rows:
                stream.write(json.dumps({key: row.get(key) for key in columns}, ensure_ascii=False) + "\n")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(
        subparsers,
        "prepare",
        "turn a public dataset's original files into rasid's data format",
        "rasid prepare mawqif --source ../shared/data/mawqif --out data/mawqif.jsonl",
    )
    parser.add_argument("name", choices=sorted(RECIPES), help="dataset recipe")
    parser.add_argument(
        "--source", type=Path, required=True, metavar="DIR", help="folder holding the dataset's original files"
    )
    parser.add_argument("--out", type=Path, required=True, metavar="FILE", help="output file, .jsonl or .csv")
    add_skip_bad_rows(parser)
    baly = parser.add_argument_group("baly options")
    baly.add_argument(
        "--granularity",
        choices=["paragraphs", "articles"],
        help="paragraphs (default): claim + rationale line pairs; articles: claim + whole article",
    )
    baly.add_argument("--folds", help="comma-separated folds to keep, e.g. 1,2,3,4 (default: all present)")
    baly.add_argument(
        "--lines-per-article",
        type=int,
        metavar="N",
        help="lines taken from an article with no rationale line (unrelated: the hard negatives; "
        "discuss: its lines closest to the claim) (default: 2)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    options = {
        key: getattr(args, key)
        for key in ("granularity", "folds", "lines_per_article")
        if getattr(args, key) is not None
    }
    report = prepare(args.name, args.source, args.out, skip_bad_rows=args.skip_bad_rows, **options)
    print(report.summary())
    return 0

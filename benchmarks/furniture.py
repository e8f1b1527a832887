"""Precision and recall of the page-furniture filter (serving/documents.py) on hand-labelled Baly paragraphs.

    python benchmarks/furniture.py [--source ../shared/data/unifiedfc_baly2018] [--labels docs/furniture_labels.tsv]
    python benchmarks/furniture.py --print-sample     # the sampled paragraphs with their hashes, to (re)label

The label file holds no text: one line per labelled paragraph, `sha256<TAB>label<TAB>stratum`, where sha256 is
the hex digest of the paragraph with its whitespace collapsed (`" ".join(text.split())`, UTF-8), label is
`furniture` or `content`, and stratum says where in its article the paragraph was drawn (below). This script
reads the articles again with rasid's own recipe (training/recipes/baly.py), finds each labelled paragraph by
its hash, runs the filter as `rasid predict --documents` would over the whole corpus (the line rules and the
rule for lines recurring across documents), and prints precision and recall.

How the sample was drawn (so that it can be drawn again, and why it is weighted):
- documents: the distinct article texts of every fold the copy holds (the recipe's `granularity=articles`);
  only "evaluation" documents are sampled, those whose text's sha256 starts with 0-7. The filter's rules
  were written while reading the other half, so the labelled half was not used to tune them.
- units: the paragraphs `split_paragraphs` makes (lines, long lines cut at sentence ends), as the filter sees them.
- strata: "edge" paragraphs (the first 2 and last 3 of an article, where menus and footers sit) and
  "middle" ones. Furniture is rare in the middle, so edges are over-sampled to label about as much furniture
  as content; the population figures weight each stratum by its share of the paragraphs.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from serving.documents import DEFAULT_MAX_CHARS, split_paragraphs  # noqa: E402

HEAD, TAIL = 2, 3  # edge paragraphs: the first HEAD and the last TAIL of each article
# Drawn in this order with one random generator: 220 edge and 80 middle paragraphs, then 150 more last
# paragraphs (the first draw held too little furniture: footers sit in the last paragraph).
DRAWS = (("edge", 220), ("middle", 80), ("last", 150))
STRATA = ("head", "tail", "last", "middle")  # what the label file records: where the paragraph was drawn
SEED = 14


def key(text: str) -> str:
    return hashlib.sha256(" ".join(text.split()).encode("utf-8")).hexdigest()


def read_documents(source: Path) -> list[str]:
    """Distinct article texts, in the recipe's order (the same page retrieved for two claims counts once)."""
    from training.recipes import baly

    extract = baly.read(source, granularity="articles")
    return list(dict.fromkeys(row["text"] for _, row in extract.rows))


def is_evaluation(document: str) -> bool:
    return hashlib.sha256(document.encode("utf-8")).hexdigest()[0] in "01234567"


def stratum_of(position: int, count: int) -> str:
    if position == count - 1:
        return "last"
    if position >= count - TAIL:
        return "tail"
    return "head" if position < HEAD else "middle"


def occurrences(documents: list[str]):
    """(document index, paragraph, stratum) for every paragraph of the evaluation documents."""
    for index, document in enumerate(documents):
        if not is_evaluation(document):
            continue
        paragraphs = split_paragraphs(document, DEFAULT_MAX_CHARS)
        for position, paragraph in enumerate(paragraphs):
            yield index, paragraph, stratum_of(position, len(paragraphs))


def draw_sample(documents: list[str]) -> list[tuple[str, str, str]]:
    """(hash, stratum, text) of distinct paragraphs drawn as DRAWS says, with SEED."""
    pools: dict[str, list] = {"edge": [], "middle": [], "last": []}
    for _, paragraph, stratum in occurrences(documents):
        pools["middle" if stratum == "middle" else "edge"].append((paragraph.text, stratum))
        if stratum == "last":
            pools["last"].append((paragraph.text, stratum))
    rng, seen, sample = random.Random(SEED), set(), []
    for pool_name, wanted in DRAWS:
        pool, taken = pools[pool_name], 0
        for position in rng.sample(range(len(pool)), len(pool)):
            if taken == wanted:
                break
            text, stratum = pool[position]
            digest = key(text)
            if digest not in seen:
                seen.add(digest)
                sample.append((digest, stratum, text))
                taken += 1
    return sample


def read_labels(path: Path) -> dict[str, tuple[str, str]]:
    labels = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != 3 or fields[1] not in ("furniture", "content") or fields[2] not in STRATA:
            raise SystemExit(f"{path}:{number}: expected 'sha256<TAB>furniture|content<TAB>' + '|'.join(STRATA)")
        labels[fields[0]] = (fields[1], fields[2])
    return labels


def decisions(documents: list[str], wanted: set[str]) -> tuple[dict[str, tuple[str | None, bool]], Counter]:
    """For each wanted paragraph, at its first occurrence: the line rules' reason (None: kept) and whether its
    line recurs across the input, with the rules as `analyze_documents` applies them to this whole corpus;
    and the paragraph count per stratum."""
    from serving.documents import furniture_reason, line_key, paragraph_line, recurring_lines

    recurring = recurring_lines(documents)
    found, population = {}, Counter()
    for index, paragraph, stratum in occurrences(documents):
        population[stratum] += 1
        digest = key(paragraph.text)
        if digest in wanted and digest not in found:
            line = line_key(paragraph_line(documents[index], paragraph))
            found[digest] = (furniture_reason(paragraph.text), line in recurring)
    return found, population


def scores(rows: list[tuple[bool, bool, float]]) -> tuple[float, float, int, int, int]:
    """Precision and recall of (flagged, furniture, weight) rows; and the unweighted tp, fp, fn."""
    tp = sum(w for f, g, w in rows if f and g)
    fp = sum(w for f, g, w in rows if f and not g)
    fn = sum(w for f, g, w in rows if g and not f)
    counts = [
        sum(1 for f, g, _ in rows if c(f, g))
        for c in (lambda f, g: f and g, lambda f, g: f and not g, lambda f, g: g and not f)
    ]
    return tp / (tp + fp) if tp + fp else float("nan"), tp / (tp + fn) if tp + fn else float("nan"), *counts


def load_module(path: Path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("baseline_documents", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=REPO.parent / "shared/data/unifiedfc_baly2018")
    parser.add_argument("--labels", type=Path, default=REPO / "docs/furniture_labels.tsv")
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="FILE",
        help="also score the is_boilerplate of another version of serving/documents.py (e.g. "
        "`git show 3c381f0:serving/documents.py > /tmp/old_documents.py`)",
    )
    parser.add_argument(
        "--print-sample",
        action="store_true",
        help="print the sampled paragraphs (hash, stratum, text) instead of scoring",
    )
    args = parser.parse_args(argv)
    documents = read_documents(args.source)
    if args.print_sample:
        for digest, stratum, text in draw_sample(documents):
            print(f"{digest}\t{stratum}\t{text}")
        return 0
    labels = read_labels(args.labels)
    found, population = decisions(documents, set(labels))
    missing = sorted(set(labels) - set(found))
    if missing:
        raise SystemExit(
            f"{len(missing)} labelled paragraph(s) are not in {args.source} (first {missing[0]}): "
            "is it the same copy of the corpus?"
        )
    sampled = Counter(stratum for _, stratum in labels.values())
    weight = {s: population[s] / sampled[s] for s in sampled}
    furniture = sum(label == "furniture" for label, _ in labels.values())
    print(
        f"{len(documents)} distinct articles; {sum(population.values())} paragraphs in the evaluation half ("
        + ", ".join(f"{s} {population[s]}" for s in STRATA)
        + ")"
    )
    print(
        f"labelled: {len(labels)} paragraphs, {furniture} furniture and {len(labels) - furniture} content ("
        + ", ".join(f"{s} {sampled[s]}" for s in STRATA)
        + ")"
    )
    print("sample: the labelled paragraphs as drawn; population: each stratum weighted by its share of paragraphs")
    print("| rules | sample precision | sample recall | tp | fp | fn | population precision | population recall |")
    print("|---|---|---|---|---|---|---|---|")
    for name, flagged in (
        ("line rules (furniture_reason)", lambda reason, recurs: reason is not None),
        ("recurring lines (recurring_lines)", lambda reason, recurs: recurs),
        ("both: what rasid does", lambda reason, recurs: reason is not None or recurs),
    ):
        rows = [(flagged(*found[d]), label == "furniture", weight[s]) for d, (label, s) in labels.items()]
        p, r, tp, fp, fn = scores([(f, g, 1.0) for f, g, _ in rows])
        wp, wr, *_ = scores(rows)
        print(f"| {name} | {p:.3f} | {r:.3f} | {tp} | {fp} | {fn} | {wp:.3f} | {wr:.3f} |")
    if args.baseline:
        old = load_module(args.baseline)
        texts = {key(p.text): p.text for _, p, _ in occurrences(documents)}
        rows = [(old.is_boilerplate(texts[d]), label == "furniture", weight[s]) for d, (label, s) in labels.items()]
        p, r, tp, fp, fn = scores([(f, g, 1.0) for f, g, _ in rows])
        wp, wr, *_ = scores(rows)
        print(
            f"| {args.baseline.name}: is_boilerplate | {p:.3f} | {r:.3f} | {tp} | {fp} | {fn} | {wp:.3f} | {wr:.3f} |"
        )
    reasons = Counter(found[d][0] or ("recurring" if found[d][1] else "kept") for d in labels)
    wrong = Counter(
        found[d][0] or "recurring"
        for d, (label, _) in labels.items()
        if label == "content" and (found[d][0] or found[d][1])
    )
    print("decisions on the labelled paragraphs: " + ", ".join(f"{r} {n}" for r, n in reasons.most_common()))
    print("content paragraphs dropped, by reason: " + (", ".join(f"{r} {n}" for r, n in wrong.most_common()) or "none"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

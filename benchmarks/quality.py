"""The experiment loop: train one recipe on `make data`'s files over several seeds, score every validation set
beside the TF-IDF baseline (and, with --plain, the plain Hugging Face Trainer recipe), print mean ± spread.

    .venv/bin/python benchmarks/quality.py --seeds 13 14 --proxy          # screening: minutes per seed
    .venv/bin/python benchmarks/quality.py --seeds 13 14                  # the full recipe (make's)
    .venv/bin/python benchmarks/quality.py --seeds 13 14 --recipe "--epochs 3 --no-fusion" --name no-fusion

Each set's main metric: StanceEval score for Mawqif, macro-F1 for the others; Baly articles are scored at
article level (`rasid evaluate --documents`). The spread is the sample standard deviation over seeds (0
for the deterministic baseline). With every run, the encoder alone (`--no-fusion`) is scored too, so the
effect of late fusion is measured on the same weights. Baly articles' fused score is the learned verdict's
cross-fitted macro-F1 (it is fitted on those validation articles; training/verdict_model.py). Results go to
reports/quality/NAME/results.json.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

RASID = [sys.executable, "-m", "training"]
# set -> (task, metric, scored as whole articles)
SETS = {
    "mawqif": ("stance", "stanceeval", False),
    "asnd": ("topic", "macro_f1", False),
    "ans": ("claim", "macro_f1", False),
    "austr": ("claim", "macro_f1", False),
    "baly": ("news_claim", "macro_f1", False),
    "baly_articles": ("news_claim", "macro_f1", True),
}
TRAIN_SETS = ["mawqif", "asnd", "ans", "austr", "baly"]
# make's recipe (Makefile TRAIN_OPTIONS for PRESET=full); --proxy shortens it for screening
RECIPE = (
    "--tasks topic,stance,claim,news_claim --epochs 2 --max-length 128 --batch-size 16 "
    "--lr 5e-5 --freeze-embeddings --freeze-layers 3"
)
PROXY = "--epochs 1 --max-length 96"


def run(command: list[str]) -> None:
    print("$", " ".join(shlex.quote(str(c)) for c in command), flush=True)
    subprocess.run(command, check=True)


def metric_of(report: Path, task: str, metric: str, model: str = "rasid") -> float:
    scores = json.loads((report / "report.json").read_text())["models"][model]["tasks"][task]
    return 100 * (scores["stanceeval"]["score"] if metric == "stanceeval" else scores[metric])


def evaluate(model: Path, data: Path, out: Path, fusion: bool, reuse: bool = False, skip=()) -> dict[str, float]:
    scores = {}
    for name, (task, metric, documents) in SETS.items():
        if name in skip:
            continue
        report = out / name
        written = report / "report.json"
        if reuse and written.is_file() and written.stat().st_mtime > (model / "rasid.json").stat().st_mtime:
            scores[name] = metric_of(report, task, metric)  # scored after the bundle's last change: still valid
            continue
        command = [
            *RASID,
            "evaluate",
            "--model",
            model,
            "--data",
            data / f"{name}.val.jsonl",
            "--tasks",
            task,
            "--report",
            report,
            *(["--documents"] if documents else []),
            *([] if fusion else ["--no-fusion"]),
        ]
        run(command)
        scores[name] = metric_of(report, task, metric)
    return scores


def baseline(data: Path, out: Path) -> dict[str, float]:
    """The TF-IDF baseline per set. It is deterministic, so a report written after its data files, on the same
    validation file, is reused (another --data folder gets its own fit)."""
    scores = {}
    for name, (task, metric, _) in SETS.items():
        report = out / "baseline" / name
        files = [data / f"{name}.train.jsonl", data / f"{name}.val.jsonl"]
        if not _baseline_current(report / "report.json", files):
            # whole articles too: the n-gram baseline reads each article as one text, its strongest form
            run([*RASID, "baseline", "--train", files[0], "--data", files[1], "--tasks", task, "--report", report])
        scores[name] = metric_of(report, task, metric, model="baseline")
    return scores


def _baseline_current(written: Path, files: list[Path]) -> bool:
    """A baseline report newer than its training and validation files, and written for this validation file."""
    if not (written.is_file() and all(written.stat().st_mtime > f.stat().st_mtime for f in files)):
        return False
    return json.loads(written.read_text()).get("data") == [str(files[1])]


def train(args, model: Path, seed: int, recipe: list[str], timing: Path) -> None:
    """One seed of the recipe, then the learned article verdict; the training time goes to `timing`."""
    start = time.monotonic()
    run(
        [
            *RASID,
            "train",
            "--data",
            *[args.data / f"{s}.train.jsonl" for s in TRAIN_SETS],
            "--val-data",
            *[args.data / f"{s}.val.jsonl" for s in TRAIN_SETS],
            "--out",
            model,
            "--seed",
            str(seed),
            "--no-int8-check",
            *recipe,
        ]
    )
    timing.write_text(f"{time.monotonic() - start:.0f}\n")
    if "--no-fusion" not in recipe:
        run(
            [
                *RASID,
                "fuse",
                "--documents",
                "--model",
                model,
                "--data",
                args.data / "baly_articles.train.jsonl",
                "--val-data",
                args.data / "baly_articles.val.jsonl",
                "--tasks",
                "news_claim",
            ]
        )


def summary(values: list[float]) -> str:
    if not values:
        return "—"
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.1f} ± {spread:.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("data"), metavar="DIR", help="`make data`'s folder")
    parser.add_argument("--seeds", type=int, nargs="+", default=[13, 14])
    parser.add_argument("--recipe", default=RECIPE, help="rasid train options (default: make's recipe)")
    parser.add_argument("--proxy", action="store_true", help=f"screening: append {PROXY!r} to the recipe")
    parser.add_argument("--plain", action="store_true", help="also train the plain Trainer recipe per set and seed")
    parser.add_argument(
        "--plain-sets", nargs="+", choices=TRAIN_SETS, default=TRAIN_SETS, help="the sets --plain trains on"
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="keep a seed's bundle already in models/quality/NAME-SEED instead of retraining, and its plain "
        "results and reports written since",
    )
    parser.add_argument(
        "--fused-only",
        action="store_true",
        help="score only what the bundle serves, not also its encoder alone (--no-fusion): half the evaluation",
    )
    parser.add_argument("--name", default=None, help="results folder name (default: full or proxy)")
    parser.add_argument("--out", type=Path, default=Path("reports/quality"), metavar="DIR")
    args = parser.parse_args()
    name = args.name or ("proxy" if args.proxy else "full")
    out = args.out / name
    recipe = shlex.split(args.recipe) + (shlex.split(PROXY) if args.proxy else [])
    results = {"recipe": recipe, "seeds": args.seeds, "runs": []}
    for seed in args.seeds:
        model = Path("models") / "quality" / f"{name}-{seed}"
        timing = model.with_name(model.name + ".seconds")  # the training time, kept beside the bundle
        if args.reuse and (model / "rasid.json").is_file() and timing.is_file():
            print(f"reusing {model} (trained in {float(timing.read_text()):.0f} s)", flush=True)
        else:
            train(args, model, seed, recipe, timing)
        seconds = float(timing.read_text())
        # the article verdict was fitted on these validation articles: its honest score is the cross-fitted one
        documents = json.loads((model / "rasid.json").read_text())["metrics"].get("documents", {})
        learned = "news_claim" in documents
        fused = evaluate(
            model, args.data, out / str(seed) / "fused", True, args.reuse, skip={"baly_articles"} if learned else ()
        )
        if learned:
            fused["baly_articles"] = 100 * documents["news_claim"]["cross_fitted_macro_f1"]
        alone = {} if args.fused_only else evaluate(model, args.data, out / str(seed) / "encoder", False, args.reuse)
        results["runs"].append({"seed": seed, "train_seconds": seconds, "fused": fused, "encoder": alone})
        if args.plain:
            results["runs"][-1]["plain"] = {}
            for plain_set in args.plain_sets:
                plain = out / str(seed) / f"plain-{plain_set}.json"
                if not (args.reuse and plain.is_file()):
                    command = ["benchmarks/plain_trainer.py", "--data", args.data, "--seed", str(seed)]
                    run([sys.executable, *command, "--sets", plain_set, "--out", plain, *(["--proxy"] * args.proxy)])
                results["runs"][-1]["plain"].update(json.loads(plain.read_text()))
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(results, indent=2))
    results["baseline"] = baseline(args.data, args.out)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    print_table(results)
    return 0


def print_table(results: dict) -> None:
    runs = results["runs"]
    print(
        f"\nrecipe: {' '.join(results['recipe'])}; seeds {results['seeds']}; "
        f"training {summary([r['train_seconds'] for r in runs])} s per seed"
    )
    print("| validation set | metric | rasid (fused) | encoder alone | TF-IDF + LR | plain Trainer |")
    print("|---|---|---|---|---|---|")
    for name, (_, metric, _) in SETS.items():
        plain = [r["plain"][name] for r in runs if name in r.get("plain", {})]
        alone = [r["encoder"][name] for r in runs if name in r["encoder"]]  # none with --fused-only
        print(
            f"| {name} | {'StanceEval' if metric == 'stanceeval' else 'macro-F1'} | "
            f"{summary([r['fused'][name] for r in runs])} | {summary(alone)} | "
            f"{results['baseline'][name]:.1f} | {summary(plain)} |"
        )


if __name__ == "__main__":
    raise SystemExit(main())

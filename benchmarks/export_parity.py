"""Does an hf export answer like `rasid predict` on raw text? Label agreement and the largest score gap.

    python benchmarks/export_parity.py --data data/mawqif.val.jsonl --limit 300 [--model MODELS/BUNDLE]

Exports the bundle (`rasid export --format hf`), then scores the same raw rows two ways: the Predictor
(fp32 torch, what `rasid predict --no-fast` runs) and `transformers.pipeline` on the exported folders, fed the
raw text, and, for comparison, what raw text un-normalised gives (an export without the baked normalisation).
Without --model it builds an untrained bundle from the offline base (models/base/e5-small-ar, its
real tokenizer and encoder) with random topic and stance heads: no training needed, and parity is about the
inputs and arithmetic, not about accuracy. Also prints how many rows normalisation changes at all.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import read_rows  # noqa: E402


def untrained_bundle(base: Path, out: Path) -> Path:
    import torch
    from transformers import AutoModel, AutoTokenizer

    from serving.bundle import Manifest, TaskSpec, save_bundle
    from serving.model import MultiTaskModel

    specs = [
        TaskSpec("topic", ("a", "b", "c", "d"), "single"),
        TaskSpec("stance", ("Against", "Favor", "None"), "pair"),
    ]
    torch.manual_seed(0)
    encoder = AutoModel.from_pretrained(base, add_pooling_layer=False)
    model = MultiTaskModel(encoder, {s.name: len(s.labels) for s in specs}, pooling="mean")
    with torch.no_grad():
        for head in model.heads.values():
            head.weight.mul_(20)  # random heads are nearly uniform; sharper ones make label flips visible
    return save_bundle(
        out, model, AutoTokenizer.from_pretrained(base), Manifest(specs, max_length=128, base_model=str(base))
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="JSONL rows with raw 'text' (and 'target')")
    parser.add_argument("--limit", type=int, default=300)
    parser.add_argument("--model", type=Path, help="a bundle (default: an untrained one on the offline base)")
    parser.add_argument("--base", type=Path, default=Path("models/base/e5-small-ar"))
    args = parser.parse_args()

    from transformers import pipeline

    from serving.normalize import normalize
    from serving.predictor import Predictor
    from training.cli import main as rasid

    rows = read_rows(args.data)[: args.limit]
    with tempfile.TemporaryDirectory() as folder:
        bundle = args.model or untrained_bundle(args.base, Path(folder) / "bundle")
        assert rasid(["export", "--model", str(bundle), "--format", "hf", "--out", f"{folder}/hf"]) == 0
        predictor = Predictor.from_bundle(bundle, precision="fp32")
        settings = predictor.manifest.normalization
        changed = sum(normalize(r["text"], settings) != r["text"] for r in rows)
        print(f"{len(rows)} rows of {args.data}; normalisation changes {changed} of them")
        for spec in predictor.manifest.tasks:
            pair = spec.input == "pair"
            usable = [r for r in rows if r.get("target")] if pair else rows
            mine = predictor.predict(
                [r["text"] for r in usable],
                targets=[r.get("target") for r in usable] if pair else None,
                tasks=[spec.name],
            )
            classify = pipeline(
                "text-classification",
                model=f"{folder}/hf/{spec.name}",
                device="cpu",
                trust_remote_code=predictor.manifest.pooling == "mean",
            )
            inputs = [{"text": r["target"], "text_pair": r["text"]} if pair else r["text"] for r in usable]
            theirs = [
                {a["label"]: a["score"] for a in answer} for answer in classify(inputs, top_k=None, truncation=True)
            ]
            agree = sum(max(t, key=t.get) == m[spec.name]["label"] for t, m in zip(theirs, mine))
            gap = max(abs(t[l] - m[spec.name]["scores"][l]) for t, m in zip(theirs, mine) for l in spec.labels)
            # what an export without the baked normalisation would answer: raw text straight into the tokenizer
            raw = predictor.probabilities(
                [(r["target"], r["text"]) if pair else (r["text"],) for r in usable], [spec.name]
            )[spec.name]
            unbaked = sum(spec.labels[int(p.argmax())] == m[spec.name]["label"] for p, m in zip(raw, mine))
            print(
                f"{spec.name}: pipeline on raw text agrees with rasid on {agree}/{len(usable)} labels "
                f"({100 * agree / len(usable):.1f}%; largest score gap {gap:.2e}); without the baked "
                f"normalisation {unbaked}/{len(usable)} ({100 * unbaked / len(usable):.1f}%)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())

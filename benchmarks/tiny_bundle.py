"""Build a tiny bundle like the test suite's (a BERT trained a few steps on tests/samples.py, WordPiece vocabulary
learnt from them) into a folder, for runs of the serving benchmarks without the real model:

    python benchmarks/tiny_bundle.py --out /tmp/rasid-tiny                              # the tests' 2 x 32 model
    python benchmarks/tiny_bundle.py --out /tmp/rasid-small --hidden 256 --layers 4     # model time dominates

Its answers mean nothing. At the tests' size its speed is mostly Python and HTTP overhead; a few layers of 256
make the model the bottleneck, as the real one is, while staying quick to build: use it to see how the server
behaves (fairness, admission, limits), not how fast the real model is.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def resize(folder: Path, hidden: int, layers: int, max_length: int) -> None:
    """Replace the tests' base model in `folder` by a fresh one of this size (same tokenizer)."""
    import torch
    from transformers import BertConfig, BertModel

    config = BertConfig.from_pretrained(folder)
    torch.manual_seed(0)
    config.update(
        {
            "hidden_size": hidden,
            "num_hidden_layers": layers,
            "num_attention_heads": max(1, hidden // 64),
            "intermediate_size": 4 * hidden,
            "max_position_embeddings": max(128, max_length + 2),
        }
    )
    BertModel(config, add_pooling_layer=False).save_pretrained(folder)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="bundle folder to write")
    parser.add_argument("--hidden", type=int, default=32, help="hidden size (the tests': 32)")
    parser.add_argument("--layers", type=int, default=2, help="encoder layers (the tests': 2)")
    parser.add_argument("--max-length", type=int, default=64, help="model window in tokens (the tests': 64)")
    args = parser.parse_args(argv)
    from tests.conftest import build_tiny_base, sample_rows, write_jsonl
    from training.train import TrainConfig, train

    with tempfile.TemporaryDirectory(prefix="rasid-tiny-") as scratch:
        base = build_tiny_base(Path(scratch) / "base")
        if (args.hidden, args.layers) != (32, 2):
            resize(Path(scratch) / "base", args.hidden, args.layers, args.max_length)
        data = write_jsonl(Path(scratch) / "samples.jsonl", sample_rows())
        train(
            TrainConfig(
                data=[data],
                out=args.out,
                base=str(base),
                epochs=2,
                batch_size=8,
                val_fraction=0.25,
                lr=1e-3,
                max_length=args.max_length,
            )
        )
    print(f"tiny bundle written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

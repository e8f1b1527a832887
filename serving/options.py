"""Command-line options shared by the commands that run a bundle (serving's and training's alike)."""

from __future__ import annotations

import argparse

from serving.precision import PRECISIONS


def add_precision_option(parser: argparse.ArgumentParser, env: bool = False) -> None:
    """--precision (and its alias --no-fast), for every command that runs a bundle. env (serve): unset, the
    RASID_PRECISION and RASID_FAST variables decide."""
    parser.add_argument("--precision", choices=PRECISIONS, default=None if env else "auto",
                        help="arithmetic of the encoder: auto is the bundle's fast path (int8 where its measured "
                             "cost is small, else fp32); int8 and bf16 are faster at a measured accuracy cost "
                             "(benchmarks/fast_path_accuracy.py measures both)" + (" (RASID_PRECISION, default auto)" if env else ""))
    parser.add_argument("--no-fast", dest="precision", action="store_const", const="fp32",
                        help="the same as --precision fp32: exactly the trained model"
                             + (" (RASID_FAST=false)" if env else ""))

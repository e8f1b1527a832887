"""Command-line options shared by the commands that run a bundle (serving's and training's alike)."""

from __future__ import annotations

import argparse

PRECISIONS = ("fp32", "bf16", "int8")  # serving.predictor.PRECISIONS, repeated so the parser imports no torch


def add_arithmetic_options(parser: argparse.ArgumentParser, env: bool = False) -> None:
    """--no-fast and --precision, for every command that runs a bundle. env (serve): unset flags leave the
    decision to the RASID_ variables, which the help names."""
    parser.add_argument("--no-fast", dest="fast", action="store_false", default=None if env else True,
                        help="exact fp32 instead of the fast path (see README, Performance)"
                             + (" (RASID_FAST=false)" if env else ""))
    parser.add_argument("--precision", choices=PRECISIONS, default=None,
                        help="arithmetic of the encoder, overriding the fast path: int8 is faster at a measured "
                             "accuracy cost (README, Performance)" + (" (RASID_PRECISION)" if env else ""))

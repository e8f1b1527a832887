"""The `rasid` command: one subcommand per module, each module registers its own parser."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from serving import __version__, threads
from serving.errors import RasidError

# Each module exposes `register(subparsers)`, which adds its parser and sets `func(args) -> int`.
# Heavy imports (torch, transformers, scikit-learn) stay inside the command functions so that
# `rasid --help` answers at once.
COMMAND_MODULES = [
    "training.prepare",
    "training.split",
    "training.base_encoder",
    "training.train",
    "training.fuse",
    "training.predict",
    "training.evaluate",
    "training.baseline",
    "training.export",
    "training.precision_check",
    "training.serve_command",
]


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rasid", description="Arabic news topic and stance: train, evaluate, serve.")
    parser.add_argument("--version", action="version", version=f"rasid {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as error:
            if error.name != name:  # a real missing dependency, not a command still to be written
                raise
            continue
        module.register(subparsers)
    for command in subparsers.choices.values():
        command.add_argument("--threads", type=int, default=None, metavar="N",
                             help="torch threads (default: RASID_THREADS, else the CPUs this process may use: "
                                  "affinity and cgroup quota)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s")
    try:
        threads.configure(args.threads)
    except ValueError as error:
        print(f"rasid {args.command}: error: {error}.", file=sys.stderr)
        return 2
    try:
        code = args.func(args)
    except RasidError as error:
        print(f"rasid {args.command}: error: {error}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        print(f"rasid {args.command}: interrupted", file=sys.stderr)
        code = 130
    return code or 0

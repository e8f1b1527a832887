"""The `rasid` command: one subcommand per module, each module registers its own parser."""

from __future__ import annotations

import argparse
import logging
import sys

from serving import __version__, export, predict, serve, threads
from serving.errors import RasidError
from serving.options import HelpFormatter
from training import adapt, base, baseline, check_int8, evaluate, fuse, prepare, split, train

# Every command, in the order `rasid --help` lists them. Each module's `register(subparsers)` adds its parser
# and sets `func(args) -> int`; heavy imports (torch, transformers, scikit-learn) stay inside the command
# functions so that `rasid --help` answers at once. A command whose module is missing fails here, loudly.
COMMANDS = (prepare, split, base, adapt, train, fuse, predict, evaluate, baseline, export, check_int8, serve)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rasid",
        description="Arabic news topic and stance: train, evaluate, serve.",
        epilog="example:\n  rasid train --help",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"rasid {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.register(subparsers)
    for command in subparsers.choices.values():
        command.add_argument(
            "--threads",
            type=int,
            default=None,
            metavar="N",
            help="torch threads (default: RASID_THREADS, else the CPUs this process may use: "
            "affinity and cgroup quota)",
        )
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

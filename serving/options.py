"""Command-line options shared by the commands that run a bundle (serving's and training's alike)."""

from __future__ import annotations

import argparse

from serving.precision import PRECISIONS


def add_precision_option(parser: argparse.ArgumentParser, env: bool = False) -> None:
    """--precision (and its alias --no-fast), for every command that runs a bundle. env (serve): unset, the
    RASID_PRECISION and RASID_FAST variables decide."""
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=None if env else "auto",
        help="arithmetic of the encoder: auto is the bundle's fast path (int8 where its measured "
        "cost is small, else fp32); int8 and bf16 are faster at a measured accuracy cost "
        "(benchmarks/fast_path_accuracy.py measures both)" + (" (RASID_PRECISION, default auto)" if env else ""),
    )
    parser.add_argument(
        "--no-fast",
        dest="precision",
        action="store_const",
        const="fp32",
        help="the same as --precision fp32: exactly the trained model" + (" (RASID_FAST=false)" if env else ""),
    )


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Every option's help ends with its default, and descriptions and examples keep their line breaks. Left as
    written: flags (off unless given), and options whose help already says in words what happens by default."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default is None or isinstance(action.default, bool) or "default" in text.lower():
            return text
        return super()._get_help_string(action)


def add_command(subparsers, name: str, summary: str, example: str, description: str = "") -> argparse.ArgumentParser:
    """A command's parser: its one-line summary for `rasid --help`, a description (the summary, unless a longer
    one is given) and one example, for `rasid NAME --help`."""
    return subparsers.add_parser(
        name,
        help=summary,
        description=description or summary[:1].upper() + summary[1:] + ".",
        epilog=f"example:\n  {example}",
        formatter_class=HelpFormatter,
    )


def add_skip_bad_rows(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--skip-bad-rows",
        action="store_true",
        help="warn about bad rows (named by file:line) and go on without them, instead of stopping",
    )


def add_numeric_options(parser: argparse.ArgumentParser, defaults, helps: dict[str, str]) -> None:
    """One --name-with-dashes option per field of the `defaults` dataclass named in `helps`, typed and defaulted
    by that field's value, so a command's options and its config cannot disagree."""
    for name, text in helps.items():
        value = getattr(defaults, name)
        parser.add_argument(
            "--" + name.replace("_", "-"),
            type=type(value),
            default=value,
            metavar="N" if isinstance(value, int) else "X",
            help=text,
        )

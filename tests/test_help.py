"""`rasid COMMAND --help` teaches: every option says what it does and its default, and each command shows one
example."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from training.cli import build_parser

COMMANDS = build_parser()._subparsers._group_actions[0].choices


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_command_has_a_description_an_example_and_explains_every_option(name):
    parser = COMMANDS[name]
    assert issubclass(parser.formatter_class, argparse.ArgumentDefaultsHelpFormatter)
    assert parser.description and "example:\n  " in parser.epilog and f"rasid {name}" in parser.epilog
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        where = f"rasid {name} {'/'.join(action.option_strings) or action.dest}"
        assert action.help and len(action.help) > 10, f"{where} has no help"
        flag = action.nargs == 0
        if action.option_strings and not flag and not action.required:
            shown = action.default is not None or "default" in action.help.lower()
            assert shown, f"{where}: its help does not say what happens when it is not given"
        if action.type is Path:
            assert action.metavar in ("FILE", "DIR"), f"{where}: metavar {action.metavar}"
        if action.type is int:
            assert action.metavar == "N", f"{where}: metavar {action.metavar}"
    text = parser.format_help()
    assert "README" not in text and "(default: None)" not in text


def test_defaults_are_printed_by_the_formatter(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: 3.0)" in text and "passes over the training data" in text
    assert "example: rasid train --data" in text

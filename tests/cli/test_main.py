"""The entry point loads commands lazily: `rdcompress --help` imports no command and no torch."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest

from rdcompress.cli.main import COMMANDS, build_parser, chosen_command

PROBE = """\
import json, sys
import rdcompress.cli.main as m
try:
    code = m.main({argv!r})
except SystemExit as exit:
    code = exit.code
loaded = sorted(n for n in sys.modules if n == "torch" or n.startswith("rdcompress.cli."))
print(json.dumps({{"code": code, "loaded": loaded}}))
"""


def _imports_after(argv: list[str]) -> tuple[int, list[str]]:
    """Run ``main(argv)`` in a fresh interpreter: (exit code, torch / rdcompress.cli modules)."""
    done = subprocess.run([sys.executable, "-c", PROBE.format(argv=argv)], capture_output=True,
                          text=True, timeout=120, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result["code"] or 0, result["loaded"]


@pytest.mark.parametrize("argv", [["--help"], [], ["--version"]])
def test_top_level_help_imports_no_command_and_no_torch(argv):
    code, loaded = _imports_after(argv)
    assert code == 0
    assert "torch" not in loaded
    assert loaded == ["rdcompress.cli.main"]


def test_a_command_loads_its_own_module_only():
    code, loaded = _imports_after(["models", "--help"])
    assert code == 0
    assert "rdcompress.cli.models" in loaded  # the probe sees imports: it can fail
    others = {f"rdcompress.cli.{name}" for name in COMMANDS if name != "models"}
    assert not others & set(loaded)


@pytest.mark.parametrize("command", list(COMMANDS))
def test_the_table_agrees_with_each_command_module(command):
    """The top-level help is the same whether or not ``command``'s module is loaded: its module
    registers the help line of the table, in the table's order."""
    parser = build_parser(command)
    assert parser.format_help() == build_parser().format_help()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    registered = sub.choices[command]  # the module's parser, not the bare placeholder
    assert registered.prog == f"rdcompress {command}" and registered.get_default("func")


@pytest.mark.parametrize(("argv", "command"), [
    (["sweep", "--help"], "sweep"), (["--help"], None), ([], None), (["--version"], None),
    (["nope"], None), (["-h", "models"], "models"), (["--", "sweep"], None),
])
def test_chosen_command_is_the_first_word(argv, command):
    assert chosen_command(argv) == command


def test_an_unknown_command_names_the_choices(capsys):
    from rdcompress.cli.main import main

    with pytest.raises(SystemExit) as info:
        main(["nope"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'nope'" in err and "sweep" in err and "models" in err

"""One name per idea across commands (old spellings kept as hidden aliases), every choice checked
before any work, and no default output inside the source tree."""

from __future__ import annotations

import argparse
import re

import pytest

import rdcompress.api
import rdcompress.greedy.width
import rdcompress.models
import rdcompress.sweep
import rdcompress.vary  # imported (binding rdcompress.sweep's functions) before no_work patches
from rdcompress.cli.main import COMMANDS, build_parser, main
from rdcompress.cli.sweep import sweep_config
from rdcompress.cli.width import width_config
from rdcompress.errors import ConfigError
from rdcompress.sweep import SweepConfig


def _parse(command: str, argv: list[str]) -> argparse.Namespace:
    return build_parser(command).parse_args([command, *argv])


def _subparser(command: str) -> argparse.ArgumentParser:
    """``command``'s own parser, as the entry point builds it."""
    parser = build_parser(command)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[command]


# ---------------------------------------------------------------- one name per idea, aliases

SWEEP_NEW = ["--keep", "0.1,0.2", "--lowrank-keep", "0.3", "--keep-prob", "0.4,0.6",
             "--grid-k", "3", "--alpha", "0.5"]
SWEEP_OLD = ["--kept", "0.1,0.2", "--ranks", "0.3", "--greedy-p", "0.4,0.6", "--greedy-k", "3",
             "--greedy-alpha", "0.5"]


def test_sweep_old_and_new_spellings_give_the_same_config(tmp_path):
    out = ["-o", str(tmp_path / "s")]
    new = sweep_config(_parse("sweep", [*SWEEP_NEW, *out]))
    assert new == sweep_config(_parse("sweep", [*SWEEP_OLD, *out]))
    assert new == sweep_config(_parse("sweep", [*SWEEP_NEW[:4], "-p", "0.4,0.6",
                                                *SWEEP_NEW[6:], *out]))
    assert new.methods == SweepConfig().methods == ("prune", "quantize")  # the default
    every = ["--methods", "prune,lowrank,greedy-prune,greedy-quantize"]
    new = sweep_config(_parse("sweep", [*SWEEP_NEW, *every, *out]))
    assert new == sweep_config(_parse("sweep", [*SWEEP_OLD, *every, *out]))
    assert (new.grid["prune"], new.grid["lowrank"], new.grid["greedy-prune"],
            new.grid["greedy-quantize"], new.options["greedy-prune"]["alpha"]) == (
        (0.1, 0.2), (0.3,), (0.4, 0.6), (3,), 0.5)  # not the defaults: the flags were read
    defaults = sweep_config(_parse("sweep", out))
    assert defaults == SweepConfig(output_dir=str(tmp_path / "s"))  # defaults from the config


def test_width_old_and_new_spellings_give_the_same_config(tmp_path):
    out = ["-o", str(tmp_path)]
    new = width_config(_parse("width", ["--keep-prob", "0.2", "--grid-k", "3",
                                        "--calibration-samples", "64", *out]))
    assert new == width_config(_parse("width", ["-p", "0.2", "-k", "3", "--calibration", "64",
                                                *out]))
    assert (new.p, new.k, new.calibration_samples) == (0.2, 3, 64)


def test_compress_takes_keep_for_the_kept_fraction():
    """--keep must not be read as an abbreviation of --keep-prob (argparse allows prefixes)."""
    args = _parse("compress", ["m.safetensors", "--method", "prune", "--keep", "0.25", "-o",
                               "x.rdz"])
    assert args.m_keep == 0.25
    assert args.m_keep_prob is None  # untouched: the config's default applies


@pytest.mark.parametrize(("command", "shown", "hidden"), [
    ("sweep", ["--keep", "--lowrank-keep", "-p", "--keep-prob", "--grid-k", "--alpha"],
     ["--kept", "--ranks", "--greedy-p", "--greedy-k", "--greedy-alpha"]),
    ("width", ["-p", "--keep-prob", "--grid-k", "--calibration-samples"],
     ["-k", "--calibration"]),
    ("compress", ["--lowrank-metric", "--lowrank-storage"], ["--metric", "--factor-storage"]),
])
def test_old_spellings_are_hidden_from_the_help(command, shown, hidden):
    actions = _subparser(command)._actions
    visible = {o for a in actions if a.help != argparse.SUPPRESS for o in a.option_strings}
    every = {o for a in actions for o in a.option_strings}
    assert set(shown) <= visible
    assert set(hidden) <= every - visible


# ------------------------------------------------------- every choice checked before any work

@pytest.fixture
def no_work(monkeypatch):
    """Any step past validation fails the test: training, model loading, sweeps, width runs."""
    def started(*args, **kwargs):
        raise AssertionError("work started before the settings were checked")

    for module, name in [(rdcompress.sweep, "prepare_model"), (rdcompress.sweep, "run_sweep"),
                         (rdcompress.vary, "run_vary"), (rdcompress.api, "open_model"),
                         (rdcompress.greedy.width, "run_width")]:
        monkeypatch.setattr(module, name, started)


SWEEP_CASES = [
    (["--algorithm", "foo"], "invalid choice: 'foo' .*'lloyd'.*'entropy'"),
    (["--coder", "zip"], "invalid choice: 'zip'"),
    (["--methods", "prune,foo"], "'foo' in 'prune,foo': choose from prune, quantize"),
    (["--objectives", "magic"], "'magic': choose from baseline, fisher"),
    (["--lowrank-metric", "x"], "invalid choice: 'x'"),
    (["--lowrank-storage", "int3"], "invalid choice: 'int3'"),
    (["--temperature", "abc"], "'abc' is not a number or 'auto'"),
    (["--temperature", "-1"], "temperature=-1.0 must be a finite number > 0"),
    (["--mu", "-1"], "mu=-1.0 must be a finite number >= 0"),
    (["--methods", "greedy-prune", "--keep-prob", "2"], "p=2.0"),
    (["--methods", "greedy-quantize", "--grid-k", "0"], "k=0"),
    (["--methods", "greedy-prune", "--alpha", "0"], "alpha=0.0"),
    (["--methods", "lowrank", "--lowrank-keep", "2"], "ratio=2.0"),
    (["--methods", "prune+quantize", "--combine-clusters", "0"], "clusters=0"),
    (["--methods", "lowrank+quantize", "--combine-clusters", "-1"], "clusters=-1"),
    (["--keep", "1.5"], "kept_fraction=1.5 is outside"),
    (["--model", "foo"], "unknown zoo model 'foo'"),
    (["--data", "foo"], "--data 'foo' is not a known dataset"),
    (["--vary", "temp=1"], "--vary 'temp=1'"),
]


@pytest.mark.parametrize(("argv", "message"), SWEEP_CASES,
                         ids=[" ".join(argv) for argv, _ in SWEEP_CASES])
def test_sweep_refuses_a_bad_setting_before_any_work(argv, message, tmp_path, capsys, no_work):
    out = tmp_path / "sweep"
    try:
        code = main(["sweep", "-o", str(out), *argv])
    except SystemExit as info:  # argparse: a usage error
        code = info.code
    assert code == 2
    err = capsys.readouterr().err
    assert re.search(message, err), err
    assert not out.exists()  # nothing written: the corrected command starts clean


@pytest.mark.parametrize(("fields", "message"), [
    ({"methods": ("quantize",), "options": {"quantize": {"algorithm": "foo"}}},
     "algorithm='foo'"), ({"coder": "zip"}, "coder 'zip'"),
    ({"eval_split": "dev"}, "eval_split 'dev'"), ({"calibration_samples": 0}, "calibration"),
    ({"methods": ("greedy-quantize",), "grid": {"greedy-quantize": (0,)}}, "k=0"),
    ({"options": {"quantize": {"colour": "red"}}}, "quantize has no setting 'colour'"),
    ({"methods": ("nope",)}, "method 'nope' is unknown"),
    ({"temperature": "hot"}, "temperature='hot'"),
])
def test_sweep_config_checks_what_the_runs_will_build(fields, message):
    with pytest.raises(ConfigError, match=message):
        SweepConfig(**fields)


def test_sweep_config_checks_only_the_grids_it_runs():
    SweepConfig(methods=("prune",), grid={"greedy-quantize": (0,)},
                options={"prune+quantize": {"clusters": 0}})  # unused: fine


WIDTH_CASES = [
    (["--modes", "cut"], "'cut': choose from prune, quantize"),
    (["--datasets", "mnist"], "'mnist': choose from digits, diabetes"),
    (["--layers", "first"], "'first': choose from all, hidden"),
    (["--keep-prob", "0"], "p=0.0"), (["--alpha", "2"], "alpha=2.0"),
    (["--grid-k", "0"], "k=0"), (["--widths", ","], "--widths and --seeds"),
]


@pytest.mark.parametrize(("argv", "message"), WIDTH_CASES,
                         ids=[" ".join(argv) for argv, _ in WIDTH_CASES])
def test_width_refuses_a_bad_setting_before_any_work(argv, message, tmp_path, capsys, no_work):
    try:
        code = main(["width", "-o", str(tmp_path / "w"), *argv])
    except SystemExit as info:
        code = info.code
    assert code == 2
    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "w").exists()


@pytest.mark.parametrize("argv", [
    ["evaluate", "digits-mlp", "--data", "foo"],
    ["importance", "digits-mlp", "--data", "foo", "-o", "i.safetensors"],
])
def test_evaluate_and_importance_check_the_dataset_first(argv, capsys, no_work):
    assert main(argv) == 2
    assert "--data 'foo' is not a known dataset" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [
    ["importance", "digits-mlp", "--temperature", "-2", "-o", "i.safetensors"],
    ["importance", "digits-mlp", "--mc-samples", "0", "-o", "i.safetensors"],
    ["train", "--model", "foo"],
    ["train", "--lr", "0"],
])
def test_importance_and_train_settings_are_checked_first(argv, capsys, no_work, monkeypatch):
    import rdcompress.train

    monkeypatch.setattr(rdcompress.train, "train", lambda config: pytest.fail("trained"))
    assert main(argv) == 2
    assert capsys.readouterr().err.count("\n") == 1


# ------------------------------------------------------------- nothing into the source tree

def _output_defaults(command: str) -> list[str]:
    return [action.default for action in _subparser(command)._actions
            if set(action.option_strings) & {"-o", "--output", "--output-dir"}
            and action.default is not None]


@pytest.mark.parametrize("command", list(COMMANDS))
def test_default_outputs_are_under_runs(command):
    for default in _output_defaults(command):
        assert str(default).startswith("runs/"), (command, default)


def test_width_writes_to_runs_by_default(tmp_path):
    assert _output_defaults("width") == ["runs/width"]
    assert width_config(_parse("width", [])).output_dir == "runs/width"

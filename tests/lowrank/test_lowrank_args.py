"""The low-rank CLI flags build the config they describe, alone or beside shared flags."""

from __future__ import annotations

import argparse

import pytest

from rdcompress.cli._lowrank_args import add_lowrank_arguments, lowrank_config_from_args
from rdcompress.compress.lowrank import LowRankConfig
from rdcompress.errors import ConfigError


def _parse(argv, shared=False):
    parser = argparse.ArgumentParser()
    if shared:  # as in `rdcompress compress`, which already owns these
        parser.add_argument("--ratio", type=float)
        parser.add_argument("--bits", type=int)
        parser.add_argument("--clusters", type=int)
        parser.add_argument("--algorithm", default="lloyd")
    add_lowrank_arguments(parser)
    return parser.parse_args(argv)


@pytest.mark.parametrize("shared", [False, True])
def test_flags_make_the_config(shared):
    args = _parse(["--ratio", "0.2", "--allocation", "global", "--metric", "fwsvd",
                   "--factor-storage", "quantized", "--bits", "5"], shared)
    assert lowrank_config_from_args(args) == LowRankConfig(
        metric="fwsvd", ratio=0.2, allocation="global", storage="quantized", bits=5)
    assert lowrank_config_from_args(_parse(["--rank", "8"], shared)) == LowRankConfig(rank=8)


def test_bits_are_ignored_unless_the_factors_are_quantized():
    # --bits belongs to quantization too; with float storage it must not reach the config
    args = _parse(["--rank", "4", "--bits", "3"], shared=True)
    assert lowrank_config_from_args(args).bits is None


def test_bad_combinations_are_config_errors():
    with pytest.raises(ConfigError, match="exactly one of rank or ratio"):
        lowrank_config_from_args(_parse([]))
    with pytest.raises(ConfigError, match="give ratio"):
        lowrank_config_from_args(_parse(["--rank", "3", "--allocation", "global"]))

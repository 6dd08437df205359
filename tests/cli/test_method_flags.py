"""The compress command's method flags are generated from the registry: each builds the config
it describes, old spellings stay, and every wrong combination is refused before any work."""

from __future__ import annotations

import argparse

import pytest

from rdcompress.cli.compress import build_config
from rdcompress.cli.main import build_parser
from rdcompress.compress import LowRankConfig, PruneConfig, QuantizeConfig
from rdcompress.errors import ConfigError
from rdcompress.greedy import GreedyConfig


def _args(argv: list[str]) -> argparse.Namespace:
    return build_parser("compress").parse_args(["compress", "m.safetensors", *argv, "-o", "x.rdz"])


def _config(argv: list[str]):
    return build_config(_args(argv))


def test_lowrank_flags_make_the_config():
    argv = ["--method", "lowrank", "--ratio", "0.2", "--allocation", "global", "--metric",
            "fwsvd", "--factor-storage", "quantized", "--bits", "5"]
    assert _config(argv) == LowRankConfig(metric="fwsvd", ratio=0.2, allocation="global",
                                          storage="quantized", bits=5)
    assert _config(["--method", "lowrank", "--rank", "8"]) == LowRankConfig(rank=8)
    # the quantized-factor method fixes the storage itself
    assert _config(["--method", "lowrank+quantize", "--rank", "8", "--bits", "3"]) == \
        LowRankConfig(rank=8, storage="quantized", bits=3)


def test_lowrank_old_and_new_spellings_give_the_same_config():
    base = ["--method", "lowrank", "--bits", "4"]
    new = _config([*base, "--lowrank-metric", "whiten", "--keep", "0.2",
                   "--lowrank-storage", "quantized"])
    old = _config([*base, "--metric", "whiten", "--ratio", "0.2", "--factor-storage",
                   "quantized"])
    assert new == old
    assert (new.metric, new.ratio, new.storage, new.bits) == ("whiten", 0.2, "quantized", 4)


def test_one_flag_name_sets_each_methods_own_field():
    assert _config(["--method", "prune", "--keep", "0.25"]) == PruneConfig(0.25)
    assert _config(["--method", "lowrank", "--keep", "0.25"]).ratio == 0.25
    assert _config(["--method", "greedy-prune", "-p", "0.4", "--alpha", "0.5"]) == \
        GreedyConfig(mode="prune", p=0.4, alpha=0.5)
    assert _config(["--method", "greedy-quantize", "--grid-k", "3"]) == \
        GreedyConfig(mode="quantize", k=3)
    assert _config(["--method", "quantize", "--bits", "3", "--algorithm", "optimal"]) == \
        QuantizeConfig(bits=3, algorithm="optimal")


def test_a_target_implies_allocation():
    args = _args(["--target-size", "2KB"])
    config = build_config(args)
    assert args.method == "allocate" and config.target_bytes == 2000


@pytest.mark.parametrize(("argv", "message"), [
    (["--method", "lowrank", "--rank", "4", "--bits", "3"],
     "--bits with --method lowrank needs --lowrank-storage quantized"),
    (["--method", "lowrank"], "exactly one of rank or ratio"),
    (["--method", "lowrank", "--rank", "3", "--allocation", "global"], "give ratio"),
    (["--method", "quantize", "--keep", "0.5", "--bits", "2"], "--keep is for pruning"),
    (["--method", "greedy-quantize", "-p", "0.5"], "--keep-prob is for greedy pruning"),
    (["--method", "lowrank+quantize", "--rank", "2"], "needs --clusters K or --bits B"),
    (["--method", "allocate"], "needs a target"),
    (["--method", "prune", "--keep", "nan"], "--keep nan is outside"),
])
def test_bad_combinations_are_config_errors(argv, message):
    with pytest.raises(ConfigError, match=message):
        _config(argv)


def test_recover_flags_wrap_any_method():
    from rdcompress.compress.recovered import RecoveredConfig
    from rdcompress.recover import RecoverConfig

    config = _config(["--method", "prune", "--keep", "0.5", "--recover-epochs", "2",
                      "--recover-loss", "task"])
    assert config == RecoveredConfig(base=PruneConfig(0.5),
                                     recover=RecoverConfig(epochs=2, loss="task"))
    with pytest.raises(ConfigError, match="need --recover-epochs"):
        _config(["--method", "prune", "--keep", "0.5", "--recover-lr", "0.1"])


def test_compress_then_recover_writes_a_file_that_loads_exactly(tmp_path):
    import torch

    from rdcompress.cli.main import main
    from rdcompress.compress import load

    trained = tmp_path / "digits.safetensors"
    assert main(["train", "--model", "digits-mlp", "--epochs", "2", "-o", str(trained)]) == 0
    out = tmp_path / "r.rdz"
    assert main(["compress", str(trained), "--method", "quantize", "--clusters", "2",
                 "--recover-epochs", "1", "--recover-lr", "0.003", "--data", "digits",
                 "--limit", "256", "-o", str(out)]) == 0
    module, manifest = load(out, return_manifest=True)
    assert manifest["method"] == "recovered"
    assert manifest["settings"]["base"]["clusters"] == 2 and "recovery" in manifest
    plain = tmp_path / "q.rdz"
    assert main(["compress", str(trained), "--method", "quantize", "--clusters", "2",
                 "-o", str(plain)]) == 0
    before, after = load(plain).state_dict(), module.state_dict()
    changed = [n for n in after if not torch.equal(after[n], before[n])]
    assert changed  # the codebooks (or biases) moved
    for name in ("layers.1.weight", "layers.4.weight"):  # two values each: indices kept
        assert torch.unique(after[name]).numel() <= 2

"""Equal-file-size comparison: Pareto fronts, the table read off them, the written files."""

import csv
import math

import pytest

from rdcompress.frontier import (
    best_at_ratio,
    default_targets,
    equal_size_table,
    frontiers,
    pareto_front,
    write_frontier,
)


def _row(method, ratio, accuracy, kl, objective="baseline", setting="s"):
    return {"method": method, "objective": objective, "setting": setting, "file_ratio": ratio,
            "file_bytes": int(1000 / ratio), "bits_per_weight": 32 / ratio,
            "accuracy": accuracy, "cross_entropy": kl + 0.1, "kl": kl, "agreement": accuracy}


ROWS = [
    _row("quantize", 4.0, 0.95, 0.01, setting="k=16"),
    _row("quantize", 8.0, 0.90, 0.05, setting="k=4"),
    _row("quantize", 6.0, 0.80, 0.30, objective="fisher", setting="k=8"),  # dominated by 8×
    _row("quantize", 8.0, 0.92, 0.04, objective="fisher", setting="k=4"),  # beats the 8× tie
    _row("prune", 2.0, 0.97, 0.001, setting="kept=0.5"),
    _row("prune", 10.0, 0.30, 3.0, setting="kept=0.05"),
    _row("prune", 3.0, float("nan"), 0.5, setting="kept=0.3"),  # ignored: not finite
]


def _brute_front(rows, metric, higher):
    """Rows that no other row beats on metric at an equal or larger file ratio."""
    def better(a, b):
        return a[metric] > b[metric] if higher else a[metric] < b[metric]

    valid = [r for r in rows if math.isfinite(r[metric])]
    return {id(r) for r in valid
            if not any(o is not r and o["file_ratio"] >= r["file_ratio"]
                       and (better(o, r) or (o[metric] == r[metric]
                                              and o["file_ratio"] > r["file_ratio"]))
                       for o in valid)}


@pytest.mark.parametrize(("metric", "higher"), [("accuracy", True), ("kl", False)])
def test_pareto_front_matches_brute_force(metric, higher):
    for method in ("quantize", "prune"):
        rows = [r for r in ROWS if r["method"] == method]
        front = pareto_front(rows, metric)
        assert {id(r) for r in front} == _brute_front(rows, metric, higher)
        ratios = [r["file_ratio"] for r in front]
        assert ratios == sorted(ratios)
        values = [r[metric] for r in front]  # smaller files, worse metric
        assert values == sorted(values, reverse=higher)


def test_front_and_table_on_a_hand_case():
    fronts = frontiers(ROWS)
    assert list(fronts) == ["prune", "quantize"]  # the fixed method order
    assert [(r["file_ratio"], r["accuracy"]) for r in fronts["quantize"]] == [
        (4.0, 0.95), (8.0, 0.92)]
    assert best_at_ratio(fronts["quantize"], 5.0)["accuracy"] == 0.92
    assert best_at_ratio(fronts["quantize"], 9.0) is None
    assert best_at_ratio(fronts["prune"], 1.0)["setting"] == "kept=0.5"
    assert default_targets(ROWS) == [2.0, 4.0, 8.0]
    table = equal_size_table(ROWS)
    assert table[0] == "| file ratio ≥ | prune | quantize |"
    assert table[3] == ("| 4 | 30.0% (baseline, kept=0.05, 10.0×) | "
                        "95.0% (baseline, k=16, 4.0×) |")
    assert table[4].endswith("| 92.0% (fisher, k=4, 8.0×) |")
    kl_table = equal_size_table(ROWS, targets=[8.0], metric="kl")
    assert kl_table[2] == "| 8 | 3 (baseline, kept=0.05, 10.0×) | 0.04 (fisher, k=4, 8.0×) |"


def test_unknown_metric_is_refused():
    with pytest.raises(ValueError, match="metric 'size'"):
        pareto_front(ROWS, "size")


def test_write_frontier_files(tmp_path):
    written = write_frontier(ROWS, tmp_path, title="toy", reference={"accuracy": 0.98})
    assert [p.name for p in written] == ["frontier.csv", "frontier.png"]
    assert (tmp_path / "frontier.png").stat().st_size > 1000
    with open(tmp_path / "frontier.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["method"], float(r["file_ratio"])) for r in rows] == [
        ("prune", 2.0), ("prune", 10.0), ("quantize", 4.0), ("quantize", 8.0)]


def test_labelled_methods_sort_with_their_base_method():
    rows = [_row("b/quantize", 4.0, 0.9, 0.1), _row("lowrank", 3.0, 0.8, 0.2),
            _row("a/quantize", 8.0, 0.7, 0.3), _row("prune", 2.0, 0.6, 0.4)]
    assert list(frontiers(rows)) == ["prune", "a/quantize", "b/quantize", "lowrank"]


def test_plot_takes_more_compared_sweeps_than_dash_styles(tmp_path):
    rows = [_row(f"s{i}/quantize", 2.0 + i, 0.9 - 0.01 * i, 0.1) for i in range(6)]
    write_frontier(rows, tmp_path)
    assert (tmp_path / "frontier.png").is_file()

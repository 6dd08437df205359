"""``rdcompress bound``: print Theorem 2's R̲(D) for a linear model and optionally plot it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from rdcompress.errors import ConfigError
from rdcompress.theory.gaussian import UNITS
from rdcompress.theory.plots import curve_rows, plot_bound_curve, write_curve_csv
from rdcompress.theory.waterfilling import LinearRegressionBound

EPILOG = """\
examples:
  rdcompress bound --sigma-w 3,2,1 --sigma-x 3,2,1            # Figure 6 of the paper
  rdcompress bound --sigma-w cov.npy --sigma-x 1,2,4 --plot rd.png --csv rd.csv
  rdcompress bound --sigma-w 3,2,1 --sigma-x 3,2,1 --distortion 5 --rate 1.5

A comma list is a diagonal covariance; a .npy or .csv file holds a full (m, m) matrix (or a
vector). With a correlated Σ_W the bound keeps the paper's log-det term and is not tight.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bound", help="rate-distortion lower bound of a linear model (Theorem 2)",
        description="Weighted water-filling bound R(D) >= 1/2 log det S_W - sum 1/2 log D_i "
                    "for f_w(x) = w'x, W ~ N(0, S_W), E[xx'] = S_X.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sigma-w", required=True, metavar="V1,V2,..|FILE",
                        help="covariance of the weights: diagonal as a comma list, or .npy/.csv")
    parser.add_argument("--sigma-x", required=True, metavar="L1,L2,..|FILE",
                        help="input covariance: diagonal as a comma list, or .npy/.csv")
    parser.add_argument("--points", type=int, default=12, help="rows in the table (default 12)")
    parser.add_argument("--units", choices=UNITS, default="bits", help="rate units")
    parser.add_argument("--distortion", type=float, action="append", default=[],
                        help="also solve at this distortion (repeatable)")
    parser.add_argument("--rate", type=float, action="append", default=[],
                        help="also solve the inverse D(R) at this total rate (repeatable)")
    parser.add_argument("--csv", type=Path, help="write the curve (200+ points) as CSV")
    parser.add_argument("--plot", type=Path, help="write the curve as a PNG")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rdcompress.cli._common import check_outputs

    if args.points < 2:
        raise ConfigError(f"--points={args.points} must be >= 2")
    check_outputs({"--csv": args.csv, "--plot": args.plot},
                  {"--sigma-w": _input_file(args.sigma_w), "--sigma-x": _input_file(args.sigma_x)})
    bound = LinearRegressionBound(_read_covariance(args.sigma_w, "--sigma-w"),
                                  _read_covariance(args.sigma_x, "--sigma-x"))
    rows = curve_rows(bound, args.points, args.units)
    queries = [bound.levels(d, args.units) for d in args.distortion]
    queries += [bound.levels_at_rate(r, args.units) for r in args.rate]
    if args.json:
        print(json.dumps({"dim": bound.dim, "max_distortion": bound.max_distortion,
                          "tight": bound.is_tight, "units": args.units, "curve": rows,
                          "queries": [q.to_dict() for q in queries]}, indent=1))
    else:
        _print_table(bound, rows, queries, args.units)
    if args.csv:
        write_curve_csv(args.csv, curve_rows(bound, 200, args.units))
        print(f"wrote {args.csv}")
    if args.plot:
        plot_bound_curve(bound, args.plot, units=args.units)
        print(f"wrote {args.plot}")
    return 0


def _print_table(bound: LinearRegressionBound, rows: list[dict], queries: list,
                 units: str) -> None:
    print(f"m = {bound.dim} weights, D_max = {bound.max_distortion:.6g} (R = 0 beyond), "
          f"breakpoints lambda_i E[W_i^2] = {np.round(bound.breakpoints, 6).tolist()}"
          + ("" if bound.is_tight else "\nnote: correlated Sigma_W: a lower bound, not tight"))
    header = f"{'D':>12} {'R (' + units + ')':>14} {'R/weight':>10} {'mu':>12} {'active':>6}"
    print(header)
    for row in rows + [_row(q) for q in queries]:
        mark = "  <- kink" if row.get("kink") else ("  <- query" if row.get("query") else "")
        print(f"{row['distortion']:12.6g} {row['rate']:14.6g} {row['rate_per_weight']:10.5g} "
              f"{row['mu']:12.6g} {row['active']:6d}{mark}")


def _row(solution) -> dict:
    return {"distortion": solution.distortion, "rate": solution.rate,
            "rate_per_weight": solution.rate_per_weight, "mu": solution.mu,
            "active": int(solution.active.sum()), "query": True}


def _input_file(text: str) -> str | None:
    """``text`` when it names a file (not a comma list), for the overwrite check."""
    return text if Path(text).suffix.lower() in (".npy", ".csv") or Path(text).exists() else None


def _read_covariance(text: str, flag: str) -> np.ndarray:
    path = Path(text)
    if path.suffix.lower() in (".npy", ".csv") or path.exists():
        if not path.is_file():
            raise ConfigError(f"{flag} {text}: no such file; give a comma list like 3,2,1 "
                              "or an existing .npy/.csv file")
        try:
            if path.suffix.lower() == ".npy":
                return np.load(path, allow_pickle=False).astype(np.float64)
            return np.atleast_1d(np.loadtxt(path, delimiter=",", dtype=np.float64))
        except (ValueError, OSError) as error:
            raise ConfigError(f"{flag} {text}: cannot read a numeric matrix ({error})") from None
    try:
        return np.array([float(part) for part in text.split(",")])
    except ValueError:
        raise ConfigError(f"{flag} {text!r}: expected comma-separated numbers like 3,2,1 "
                          "or a .npy/.csv file") from None

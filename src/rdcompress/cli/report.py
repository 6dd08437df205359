"""``rdcompress report``: finished sweeps as one self-contained HTML page."""

from __future__ import annotations

import argparse
import shlex
import sys

from rdcompress.cli._common import comma_list

DESCRIPTION = """\
Write one HTML file (plotly.js, data and script inline: it opens without network) that shows
every compressed model of the given sweeps on the rate-distortion plane (axes switchable, each
method's Pareto front, the original), one selected model in detail (per-layer bytes, bits per
weight, share of the file and of the distortion; a second model beside it), where it disagrees
with its original (confusion matrix, accuracy per class, the test inputs whose prediction
changed, sorted by KL) and the provenance of every number (settings, versions, data, seed,
sha256 of every file). Evaluating models needs the sweep's original model and data; the
Pareto-front models are evaluated first.
"""

EPILOG = """\
examples:
  rdcompress sweep -o runs/sweep-digits && rdcompress report runs/sweep-digits -o report.html
  rdcompress report runs/sweep-a runs/sweep-b --labels a,b -o report.html
  rdcompress report runs/big-sweep --evaluate 0 -o report.html   # the plane and layers only
Open the file in any browser (file://); nothing is fetched.
"""


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "report", help="one self-contained HTML page comparing the models of finished sweeps",
        description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", metavar="RUN",
                        help="output directory of 'rdcompress sweep' (with sweep.json)")
    parser.add_argument("-o", "--output", default="runs/report.html",
                        help="the HTML file to write (default: runs/report.html)")
    parser.add_argument("--labels", type=comma_list(str),
                        help="one name per RUN, comma-separated (default: directory names)")
    parser.add_argument("--evaluate", type=int, default=50, metavar="N",
                        help="evaluate at most N models per sweep sample by sample (Pareto "
                        "fronts first; default 50); 0: skip, no model or data needed")
    parser.add_argument("--gallery", type=int, default=24, metavar="N",
                        help="changed test inputs shown per model (default 24)")
    parser.add_argument("--title", help="the page title (default: model and dataset)")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from rdcompress.report import ReportConfig, build_report

    command = "rdcompress " + " ".join(shlex.quote(a) for a in sys.argv[1:]) \
        if sys.argv[1:2] == ["report"] else None
    config = ReportConfig(runs=args.runs, output=args.output, labels=args.labels,
                          evaluate=args.evaluate, gallery=args.gallery, title=args.title,
                          command=command)
    result = build_report(config)
    print(f"wrote {result.path} ({result.bytes / 1e6:.1f} MB): {result.models} models, "
          f"{result.evaluated} evaluated ({result.seconds:.1f} s)")
    return 0

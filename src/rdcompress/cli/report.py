"""``rdcompress report``: finished sweeps as one self-contained HTML page."""

from __future__ import annotations

import argparse
import shlex
import sys

from rdcompress.cli._common import add_trust_argument, comma_list, positive_int

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
  rdcompress report a.rdz b.rdz --original runs/mnist-mlp.safetensors --data-dir ../shared/data
Open the file in any browser (file://); nothing is fetched.
"""


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "report", help="one self-contained HTML page comparing the models of finished sweeps",
        description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", metavar="RUN",
                        help="output directory of 'rdcompress sweep' (with sweep.json), or a "
                        ".rdz file (then --original, and --data unless the original names it)")
    parser.add_argument("-o", "--output", default="runs/report.html",
                        help="the HTML file to write (default: runs/report.html)")
    parser.add_argument("--labels", type=comma_list(str),
                        help="one name per RUN, comma-separated (default: directory names)")
    parser.add_argument("--evaluate", type=int, default=50, metavar="N",
                        help="evaluate at most N models per sweep sample by sample (Pareto "
                        "fronts first; default 50); 0: skip, no model or data needed")
    parser.add_argument("--gallery", type=int, default=16, metavar="N",
                        help="changed test inputs shown per model (default 16)")
    parser.add_argument("--title", help="the page title (default: model and dataset)")
    single = parser.add_argument_group("a .rdz RUN", "measured here against its original")
    single.add_argument("--original", metavar="MODEL",
                        help="the model the .rdz files were compressed from (a .safetensors "
                        "with its sidecar from 'rdcompress train', or a zoo name)")
    single.add_argument("--data", help="dataset to measure on (default: the original's)")
    single.add_argument("--data-dir", help="where the dataset's files are")
    single.add_argument("--eval-limit", type=positive_int, metavar="N",
                        help="measure on N test samples, evenly spaced (default: all)")
    add_trust_argument(single)
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from rdcompress.report import ReportConfig, build_report

    command = "rdcompress " + " ".join(shlex.quote(a) for a in sys.argv[1:]) \
        if sys.argv[1:2] == ["report"] else None
    config = ReportConfig(runs=args.runs, output=args.output, labels=args.labels,
                          evaluate=args.evaluate, gallery=args.gallery, title=args.title,
                          command=command, original=args.original, data=args.data,
                          data_dir=args.data_dir, eval_limit=args.eval_limit,
                          trust_code=args.trust_code)
    result = build_report(config)
    print(f"wrote {result.path} ({result.bytes / 1e6:.1f} MB): {result.models} models, "
          f"{result.evaluated} evaluated ({result.seconds:.1f} s)")
    return 0

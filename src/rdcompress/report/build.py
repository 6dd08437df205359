"""``build_report``: finished runs in, one self-contained HTML file out."""

from __future__ import annotations

import platform
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rdcompress._io import atomic_write_text
from rdcompress.errors import ConfigError


@dataclass
class ReportConfig:
    runs: Sequence[str]  # sweep directories (each with sweep.json and models/) or .rdz files
    output: str = "runs/report.html"  # the HTML file to write
    labels: Sequence[str] | None = None  # one name per run (default: directory names)
    evaluate: int = 50  # evaluate at most this many models per sweep (Pareto fronts first);
    #                     0: no disagreement section (no model or data needed)
    gallery: int = 16  # changed test inputs shown per model (each a thumbnail:
    #                    CIFAR about 3 KB; 50 models x 16 stays under 2.5 MB)
    title: str | None = None  # the page title (default: from the model and dataset)
    command: str | None = None  # the command line recorded in the provenance
    # for .rdz RUNs only: the model each was compressed from, and the data to measure it on
    original: str | None = None  # a model source as 'rdcompress evaluate' reads MODEL
    data: str | None = None  # dataset name (default: the original's)
    data_dir: str | None = None
    eval_limit: int | None = None  # test samples, evenly spaced (default: all)
    trust_code: bool = False  # let the original's sidecar run the factory it names
    extra: dict[str, Any] = field(default_factory=dict)  # more provenance (name: value)

    def __post_init__(self) -> None:
        self.runs = [str(r) for r in self.runs]
        if not self.runs:
            raise ConfigError("a report needs at least one RUN (a sweep directory)")
        if self.labels is not None and len(self.labels) != len(self.runs):
            raise ConfigError(f"{len(self.labels)} labels for {len(self.runs)} runs; give one "
                              "label per RUN")
        for name in ("evaluate", "gallery"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"{name}={value!r} must be an integer >= 0")
        if not str(self.output).endswith((".html", ".htm")):
            raise ConfigError(f"output {self.output!r} must end in .html")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ReportResult:
    path: Path
    bytes: int
    models: int
    evaluated: int
    seconds: float


def build_document(config: ReportConfig) -> dict[str, Any]:
    """The report's data: sweeps, models, fronts, evaluations, thumbnails and provenance."""
    from rdcompress.report.collect import collect, read_run
    from rdcompress.report.disagree import choose, evaluate_sweep

    labels = list(config.labels) if config.labels else [None] * len(config.runs)
    single = {"original": config.original, "data": config.data, "data_dir": config.data_dir,
              "eval_limit": config.eval_limit, "trust_code": config.trust_code}
    sweeps = [read_run(run, label, **single)
              for run, label in zip(config.runs, labels, strict=True)]
    collected = collect(sweeps)
    evaluation: dict[int, Any] = {}
    thumbnails: dict[int, dict[int, str]] = {}
    for index, sweep in enumerate(collected.sweeps):
        models = [m for m in collected.models if m["sweep"] == index]
        sweep["num_samples"] = sweep["reference"].get("num_samples")
        if not config.evaluate or not models:
            continue
        front = [i for ids in collected.fronts["accuracy"].values() for i in ids]
        chosen = choose(models, front, config.evaluate)
        result = evaluate_sweep(sweep, models, chosen, config.gallery)
        sweep.update(classes=result.classes, num_samples=result.num_samples,
                     weights_match=result.weights_match)
        evaluation.update(result.by_model)
        thumbnails[index] = result.thumbnails
    for model in collected.models:
        model.pop("path", None)  # a local path: provenance shows the directory once
    strings = intern_strings(collected.models, STRING_COLUMNS)
    first = collected.sweeps[0]
    dataset = first["model"].get("dataset") or first["config"].get("data")
    spec = first["model"].get("spec") or {}
    name = spec.get("zoo") or spec.get("factory") or first["config"].get("model")
    total = len(collected.models)
    note = None
    if config.evaluate and len(evaluation) < total:
        note = (f"{len(evaluation)} of {total} models were evaluated (report --evaluate "
                f"{config.evaluate}; the Pareto fronts first)")
    elif not config.evaluate:
        note = "no model was evaluated (report --evaluate 0)"
    return {
        "title": config.title or f"rdcompress report: {name} on {dataset}",
        "subtitle": (f"{total} compressed models from {len(sweeps)} sweep"
                     f"{'s' if len(sweeps) > 1 else ''} ({', '.join(s.label for s in sweeps)});"
                     f" {len(evaluation)} evaluated sample by sample."),
        "sweeps": collected.sweeps, "models": collected.models, "fronts": collected.fronts,
        "styles": series_styles(collected.models), "evaluation": evaluation,
        "evaluation_note": note, "thumbnails": thumbnails, "build": _build_info(config),
        "strings": strings,
    }


STRING_COLUMNS = ("name", "shape", "kind")  # per-layer columns stored as indices into strings


def intern_strings(models: Sequence[dict[str, Any]], columns: Sequence[str]) -> list[str]:
    """Replace, in place, each model's layer ``columns`` by indices into the returned list.

    Models of one network repeat the same names and shapes (ResNet-20: 116 tensors each), so
    200 models carry them once instead of 200 times; the page's script maps them back."""
    table: dict[str, int] = {}
    for model in models:
        layers = model.get("layers")
        if layers:
            for column in columns:
                layers[column] = [table.setdefault(v, len(table)) for v in layers[column]]
    return list(table)


def build_report(config: ReportConfig) -> ReportResult:
    """Write ``config.output``: one HTML file that opens without network."""
    from rdcompress.report.page import render

    start = time.perf_counter()
    document = build_document(config)
    text = render(document, plotly_js())
    path = Path(config.output)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text)
    return ReportResult(path, len(text.encode("utf-8")), len(document["models"]),
                        len(document["evaluation"]), time.perf_counter() - start)


def plotly_js() -> str:
    """The full plotly.js bundle shipped inside the plotly Python package."""
    try:
        from plotly.offline import get_plotlyjs
    except ImportError as error:  # a declared dependency; absent only in a broken install
        raise ConfigError("the report needs the plotly package: pip install plotly") from error
    return str(get_plotlyjs())


def series_styles(models: Sequence[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """{series: {"color": hex, "dash": plotly dash}} from each method's registered style."""
    from matplotlib.colors import to_hex

    from rdcompress.compress.registry import style

    fallback = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                "#7f7f7f", "#bcbd22", "#17becf"]
    out: dict[str, dict[str, str]] = {}
    for i, series in enumerate(dict.fromkeys(m["series"] for m in models)):
        registered = style(series)
        color = registered.get("color")
        out[series] = {"color": to_hex(color) if color else fallback[i % len(fallback)],
                       "dash": plotly_dash(registered.get("linestyle", "-"))}
    return out


def plotly_dash(linestyle: Any) -> str:
    """A matplotlib linestyle ('--', ':', (0, (5, 1, 1, 1)), ...) as a plotly ``line.dash``."""
    named = {"-": "solid", "solid": "solid", "--": "dash", "dashed": "dash", "-.": "dashdot",
             "dashdot": "dashdot", ":": "dot", "dotted": "dot"}
    if isinstance(linestyle, str):
        return named.get(linestyle, "solid")
    if isinstance(linestyle, (tuple, list)) and len(linestyle) == 2:
        return ",".join(f"{2 * float(v):g}px" for v in linestyle[1])  # lengths in line widths
    return "solid"


def _build_info(config: ReportConfig) -> dict[str, Any]:
    import numpy
    import torch

    from rdcompress import __version__

    try:
        import plotly

        plotly_version = plotly.__version__
    except ImportError:
        plotly_version = "absent"
    command = config.command or "rdcompress report " + " ".join(map(shlex.quote, config.runs))
    return {"command": command, "created": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
            "versions": {"rdcompress": __version__, "python": platform.python_version(),
                         "torch": torch.__version__, "numpy": numpy.__version__,
                         "plotly": plotly_version, "platform": sys.platform},
            "report_config": {k: v for k, v in config.to_dict().items() if k != "extra"},
            **config.extra}

"""Rate–distortion sweeps: compress one model with every (method, objective, setting) of a grid.

For each run: compress -> write a real ``.rdz`` file -> load it back -> evaluate against the
original on held-out data. One row per run (``results.SweepRow``) goes to ``results.jsonl`` as soon
as it finishes, so an interrupted sweep resumes without redoing finished runs. Trained models and
importance estimates are cached in the output directory and computed once per objective.
At the end: ``sweep.json`` (results.py: settings, model, original's metrics, documented columns
and rows), ``results.csv``, ``results.json``, plots (``plots.py``) and ``summary.md``.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from rdcompress._io import atomic_write_text, state_dict_sha256
from rdcompress.api import open_model
from rdcompress.compress.registry import config_fields, default_sweep, get, names, specs
from rdcompress.errors import ConfigError
from rdcompress.importance.config import OBJECTIVES as IMPORTANCE_OBJECTIVES
from rdcompress.models import is_zoo_spec
from rdcompress.progress import progress
from rdcompress.results import ROW_FIELDS, SweepRow, write_rows, write_sweep_file
from rdcompress.sweep_inputs import RunInputs

# SweepConfig fields that only choose WHICH runs exist (or where they go): a sweep resumes into
# a directory made with other values of these; every other field must agree.
NOT_RESULT_FIELDS = ("output_dir", "trust_code", "methods", "objectives", "grid")
GREEDY_OBJECTIVE = "loss"  # methods that do not use importance run once, under this name
OBJECTIVES = tuple(IMPORTANCE_OBJECTIVES)  # every importance objective can be swept
PAPER_OBJECTIVES = ("baseline", "fisher", "gradient", "hessian", "gradient+hessian")  # default


@dataclass
class SweepConfig:
    model: str = "digits-mlp"  # zoo name (trained here if no weights), or a trained .safetensors
    weights: str | None = None  # weights for a zoo MODEL (skips training)
    data: str | None = None  # dataset name (default: the model's)
    data_dir: str | None = None
    output_dir: str = "runs/sweep-digits-mlp"
    methods: tuple[str, ...] = field(default_factory=default_sweep)  # registered, with an axis
    objectives: tuple[str, ...] = PAPER_OBJECTIVES
    grid: dict[str, tuple] = field(default_factory=dict)  # {method: values of its sweep axis};
    #   a method left out gets its axis's default values
    options: dict[str, dict[str, Any]] = field(default_factory=dict)  # {method: {field: value}}
    #   fixed for every run of the method, over the method's sweep defaults
    coder: str | None = None  # entropy coder of the .rdz files (None: each method's own)
    calibration_samples: int = 1024  # training samples for importance and calibration
    temperature: float | str = 1.0  # importance temperature, or "auto" (fit on val)
    hessian_mu: float = 0.0  # regularizer added to Hessian estimates (App. C.3.2)
    eval_split: str = "test"
    eval_limit: int | None = None  # evaluate on this many test samples, evenly spaced
    train_epochs: int | None = None  # when the model must be trained first
    seed: int = 0
    trust_code: bool = False  # let the model's sidecar run the package.module:factory it names

    def __post_init__(self) -> None:
        self.methods = tuple(self.methods)
        for method in self.methods:
            if get(method).sweep is None:
                raise ConfigError(f"method {method!r} has no sweep axis; sweep one of "
                                  f"{[s.name for s in specs() if s.sweep is not None]}")
        for objective in self.objectives:
            if objective not in OBJECTIVES:
                raise ConfigError(f"objective {objective!r} must be one of {OBJECTIVES}")
        unknown = sorted((set(self.grid) | set(self.options)) - set(names()))
        if unknown:
            raise ConfigError(f"grid/options name unknown methods {unknown}; registered: "
                              f"{list(names())}")
        # normalized to the methods that run, so that equal sweeps compare equal
        axes = {m: get(m).sweep for m in self.methods}
        self.grid = {m: tuple(self.grid.get(m, axis.values)) for m, axis in axes.items() if axis}
        self.options = {m: {**get(m).sweep_defaults, **self.options.get(m, {})}
                        for m in self.methods}
        _check_before_work(self)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SweepResult:
    rows: list[dict[str, Any]]
    output_dir: Path
    reference: dict[str, Any] = field(default_factory=dict)  # the original model's metrics
    seconds: float = 0.0


def _run_key(method: str, objective: str, value: float) -> str:
    return f"{method}|{objective}|{value:g}"


def prepare_model(config: SweepConfig, out: Path) -> tuple[str, str | None]:
    """(model, weights) to load: as given, or a zoo model trained once into ``out``."""
    path = Path(config.model)
    if path.suffix in (".safetensors", ".rdz") or path.is_file() or config.weights:
        return config.model, config.weights
    trained = out / f"{config.model}.safetensors"
    if not trained.is_file():
        from rdcompress.train import TrainConfig, save_trained, train

        epochs = config.train_epochs or (40 if config.model == "digits-mlp" else 10)
        result = train(TrainConfig(model=config.model, dataset=config.data,
                                   data_dir=config.data_dir, epochs=epochs, seed=config.seed))
        save_trained(result, trained)
    return str(trained), None


def run_sweep(config: SweepConfig) -> SweepResult:
    from rdcompress.data import load_dataset
    from rdcompress.evaluate import classification_metrics, collect_outputs
    from rdcompress.pipeline import check_model_fits_data, make_loader

    start = time.perf_counter()
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    _check_resumable(config, out)
    atomic_write_text(out / "config.json", json.dumps(config.to_dict(), indent=2) + "\n")
    model_file, weights = prepare_model(config, out)
    loaded = open_model(model_file, weights=weights, trust_code=config.trust_code)
    dataset = config.data or loaded.dataset
    if dataset is None:
        raise ConfigError("no dataset known for this model: set data")
    test = evenly_spaced(load_dataset(dataset, split=config.eval_split,
                                       data_dir=config.data_dir), config.eval_limit)
    test_loader = make_loader(test, loaded.preprocessing, 512)
    check_model_fits_data(loaded.module, test_loader, config.model, dataset)
    reference_logits, labels = collect_outputs(loaded.module, test_loader)
    reference = classification_metrics(reference_logits, labels).to_dict()
    atomic_write_text(out / "reference.json", json.dumps(reference, indent=2) + "\n")

    results_path = out / "results.jsonl"
    done = _read_rows(results_path)
    grid = _grid(config)
    todo = [g for g in grid if _run_key(*g) not in done]
    if done:
        print(f"resumed {len(grid) - len(todo)}/{len(grid)} runs from {results_path}")
    inputs = RunInputs(config, loaded, dataset, out)
    evaluation = _Evaluation(test_loader, reference_logits, labels)
    for method, objective, value in progress(todo, desc="sweep", unit="run"):
        row = _one_run(config, inputs, method, objective, value, evaluation)
        done[_run_key(method, objective, value)] = row
        with open(results_path, "a") as handle:  # append-only log: resumable
            handle.write(json.dumps(row) + "\n")
    rows = [done[_run_key(*g)] for g in grid]
    _write_tables(rows, out)
    write_sweep_file(out, config=config.to_dict(), reference=reference, rows=rows, model={
        "source": model_file, "weights": config.weights, "spec": loaded.spec,
        "weights_sha256": state_dict_sha256(dict(loaded.module.named_parameters())),
        "dataset": dataset})
    from rdcompress.plots import plot_sweep
    from rdcompress.summary import write_summary

    title = f"{Path(config.model).name.removesuffix('.safetensors')} on {dataset}"
    plot_sweep(rows, out, title=title, reference=reference)
    if len({row["method"] for row in rows}) > 1:
        from rdcompress.frontier import write_frontier

        write_frontier(rows, out, title=title, reference=reference)
    write_summary(rows, out / "summary.md", config=config.to_dict(), reference=reference,
                  dataset=dataset)
    return SweepResult(rows, out, reference, time.perf_counter() - start)


def _grid(config: SweepConfig) -> list[tuple[str, str, float]]:
    """Every (method, objective, setting value) the sweep runs, in order."""
    return [(m, o, v) for m in config.methods
            for o in (config.objectives if get(m).uses_importance else (GREEDY_OBJECTIVE,))
            for v in config.grid[m]]


def _check_before_work(config: SweepConfig) -> None:
    """Every choice of ``config`` checked by building what the runs will build (cheap), so that
    a bad one fails before training, importance or any compression writes a row."""
    from rdcompress.codec import CODERS
    from rdcompress.data import SPLITS
    from rdcompress.importance.config import ImportanceConfig
    from rdcompress.models.zoo import get_entry

    path = Path(config.model)
    if not (path.suffix in (".safetensors", ".rdz") or path.is_file() or config.weights):
        get_entry(config.model)  # as prepare_model would train it: ModelError naming the zoo
    if config.coder is not None and config.coder not in CODERS:
        raise ConfigError(f"coder {config.coder!r} must be one of {CODERS}")
    if config.eval_split not in SPLITS:
        raise ConfigError(f"eval_split {config.eval_split!r} must be one of {SPLITS}")
    for name in ("calibration_samples", "eval_limit", "train_epochs"):
        value = getattr(config, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < 1):
            raise ConfigError(f"{name}={value!r} must be an integer >= 1"
                              + ("" if name == "calibration_samples" else " or None"))
    grid = _grid(config)
    for objective in dict.fromkeys(o for _, o, _ in grid if o != GREEDY_OBJECTIVE):
        ImportanceConfig(objective=objective, temperature=config.temperature,
                         mu=config.hessian_mu)
    for method, objective, value in grid:
        _method_config(config, method, objective, value)


def evenly_spaced(dataset: Any, limit: int | None) -> Any:
    """``limit`` samples spread evenly over the split (not its first ``limit``: files sorted by
    class, as image folders are, would leave whole classes out)."""
    if limit is None or limit >= len(dataset):
        return dataset
    import numpy as np

    indices = np.unique(np.linspace(0, len(dataset) - 1, limit).round().astype(np.int64))
    return dataset.subset(indices, dataset.split)


def _check_resumable(config: SweepConfig, out: Path) -> None:
    """A sweep resumes only into a directory made with the same result-changing settings."""
    previous_path = out / "config.json"
    if not (out / "results.jsonl").is_file() or not previous_path.is_file():
        return
    try:
        previous = json.loads(previous_path.read_text())
    except json.JSONDecodeError:
        return  # a config.json cut by an interruption: written again below
    current = config.to_dict()
    if set(previous) - set(current):  # written by an older rdcompress: settings not comparable
        raise ConfigError(
            f"{out} holds a sweep written by an older rdcompress (settings "
            f"{sorted(set(previous) - set(current))}); its rows may differ from this version's. "
            "Choose another output directory (-o).")
    changed = [f"{key}: {previous.get(key)!r} -> {current[key]!r}" for key in current
               if key not in (*NOT_RESULT_FIELDS, "options") and key in previous
               and previous[key] != current[key]]
    for method in set(previous.get("options", {})) & set(current["options"]):
        if previous["options"][method] != current["options"][method]:
            changed.append(f"options of {method}: {previous['options'][method]!r} -> "
                           f"{current['options'][method]!r}")
    if changed:
        raise ConfigError(
            f"{out} holds a sweep made with other settings ({'; '.join(changed)}); its results "
            "and cached importances do not apply. Choose another output directory (-o)."
        )


@dataclass
class _Evaluation:
    """The held-out set and the original model's outputs on it."""

    loader: Any
    reference_logits: torch.Tensor
    labels: torch.Tensor


def _one_run(config: SweepConfig, inputs: RunInputs, method: str, objective: str, value: float,
             evaluation: _Evaluation) -> dict[str, Any]:
    from rdcompress.compress import compress, load
    from rdcompress.evaluate import classification_metrics, collect_outputs

    start = time.perf_counter()
    spec = get(method)
    method_config, setting = _method_config(config, method, objective, value)
    wants_data = spec.needs_of(method_config) & {"calibration", "input_moments"}
    loaded = inputs.loaded
    compressed = compress(
        loaded.module, method_config,
        inputs.importance(objective) if spec.uses_importance else None,
        model_spec=loaded.spec, coder=config.coder, cache=inputs.cache,
        calibration=inputs.calibration() if wants_data else None)
    path = inputs.out / "models" / (f"{method}-{objective}-{value:g}".replace("+", "-") + ".rdz")
    path.parent.mkdir(parents=True, exist_ok=True)
    summary = compressed.save(path)
    # the file's own spec rebuilds zoo models; other architectures are the one already loaded
    module = load(path, model=None if is_zoo_spec(loaded.spec) else _fresh_copy(loaded.module))
    logits, _ = collect_outputs(module, evaluation.loader)
    metrics = classification_metrics(logits, evaluation.labels, evaluation.reference_logits)
    # the paper's ratio: kept fraction (pruning), Huffman bits / 32 (quantization), ...: the
    # method says (MethodSpec.paper_ratio); the file's formula otherwise
    paper_ratio = (spec.paper_ratio(method_config, compressed, summary) if spec.paper_ratio
                   else summary.paper_ratio)
    return SweepRow(
        method=method, objective=objective, setting=setting, value=float(value),
        paper_ratio=paper_ratio,
        # the summary's sizes are those of the file just written, everything counted
        file_ratio=summary.ratio, file_bytes=summary.file_bytes,
        bits_per_weight=summary.bits_per_weight,
        accuracy=metrics.accuracy, cross_entropy=metrics.cross_entropy,
        kl=metrics.kl, reverse_kl=metrics.reverse_kl, agreement=metrics.agreement,
        seconds=round(time.perf_counter() - start, 3), seed=config.seed,
        temperature=config.temperature, hessian_mu=config.hessian_mu,
        config=method_config.to_dict(),
    ).to_dict()


def _method_config(config: SweepConfig, method: str, objective: str,
                   value: float) -> tuple[Any, str]:
    """(the method's config, the row's setting label) of one run; ConfigError if invalid."""
    spec = get(method)
    assert spec.sweep is not None  # SweepConfig checked it
    fields = {**config.options[method], spec.sweep.field: spec.sweep.type(value)}
    if "seed" in config_fields(spec.config):
        fields.setdefault("seed", config.seed)
    method_config = spec.build(**spec.adapt(fields, objective))
    return method_config, spec.describe(method_config)


def _fresh_copy(module: torch.nn.Module) -> torch.nn.Module:
    import copy

    return copy.deepcopy(module)


def _read_rows(path: Path) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    if not path.is_file():
        return rows
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by an interruption: that run is redone
        rows[_run_key(row["method"], row["objective"], row["value"])] = row
    return rows


def _write_tables(rows: list[dict[str, Any]], out: Path) -> None:
    write_rows(rows, out / "results.csv", ROW_FIELDS, out / "results.json")

"""rdcompress against NNCodec (the MPEG-7 Part 17 NNC reference codec) on the same trained weights.

NNCodec quantizes every tensor uniformly with one step size per model (its QP), optionally with
dependent (trellis) quantization "DQ", and codes the integer levels with DeepCABAC. The bench
measures both codecs side by side in one run and never asserts:

(a) Coding alone. Every conv/linear weight is quantized to integer levels by NNCodec's own
    quantizer (``deepCABAC.Encoder.quantLayer``; without NNCodec: q = round(w / step), which is
    what it does without DQ) at a few QPs, and the SAME integer tensors are coded by DeepCABAC,
    by rdcompress's coders (``encode_stream`` "ans", "huffman"; "ctx" through
    ``encode_index_stream`` once it exists), zstd (if installed) and lzma (raw LZMA2, no
    container). Each coder codes each tensor on its own; sizes are summed over the model and
    shown as bytes / order-0 empirical entropy of the levels (offset and step not counted for
    anyone).
(b) The whole codec: accuracy against file ratio (fp32 bytes of the state_dict / file bytes, all
    bytes of the file counted) for NNCodec over a range of QPs with and without DQ, with its
    default handling of every other parameter (``nncodec.nnc.compress`` on the state dict, as
    ``compress_model`` does), and for ``rdcompress.compress.compress(model,
    QuantizeConfig(clusters=k, algorithm="optimal"))`` saved as .rdz (plus the "ctx" coder and
    ``AllocateConfig`` at NNCodec's byte sizes once they exist). Encode and decode times are
    given as ratios to one forward pass of the original model over the evaluation set.

Outputs in --out: coding.csv, codec.csv, summary.json and <model>.png (accuracy vs ratio).

    bash bench/nncodec_env.sh                       # once: bench/.venv-nncodec with nncodec
    bench/.venv-nncodec/bin/python bench/vs_nncodec.py --models mnist-mlp resnet20 \\
        --eval-limit 2000 --out runs/vs-nncodec

Run with the plain interpreter it still measures rdcompress and quotes NNCodec's published
figures (PUBLISHED, measured earlier by the team) instead of running NNCodec.
"""

from __future__ import annotations

import argparse
import copy
import csv
import importlib.util
import json
import lzma
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import nn

import rdcompress.codec as rdcodec
import rdcompress.compress as rdcompress_api
from rdcompress.codec import empirical_entropy_bits, encode_stream
from rdcompress.compress import QuantizeConfig
from rdcompress.data import load_dataset
from rdcompress.errors import ConfigError
from rdcompress.evaluate import collect_outputs
from rdcompress.models import load_model
from rdcompress.pipeline import dataset_tensors, tensor_loader

HERE = Path(__file__).resolve().parent
SHARED_DATA = HERE.parents[1] / "shared" / "data"
STUB = HERE / "_torchvision_stub"
TOLERANCES = (0.1, 0.5, 1.0)  # accuracy points below the original
# NNCodec uniform + DQ on the same weights, measured earlier by the team: largest file ratio
# within 0.1 / 0.5 / 1.0 accuracy points of the original.
PUBLISHED = {"mnist-mlp": (20.5, 30.2, 41.6), "resnet20": (8.4, 10.2, 10.2)}
MODELS = {  # name -> (MODEL argument of load_model, weights, dataset)
    "mnist-mlp": ("runs/mnist-mlp.safetensors", None, "mnist"),
    "lenet5": ("lenet5", SHARED_DATA / "checkpoints" / "lenet5-mnist.pth", "mnist"),
    "resnet20": ("resnet20", SHARED_DATA / "checkpoints" / "resnet20-12fca82f.th",
                 "cifar10-jpeg"),
}
QP_DENSITY = 2  # NNCodec's default: 2**2 steps per octave
CABAC_UNARY_LENGTH_MINUS1 = 10  # NNCodec's default


# ---------------------------------------------------------------- NNCodec access (optional)

@dataclass
class NNCodec:
    nnc: ModuleType | None = None  # nncodec.nnc
    cabac: ModuleType | None = None  # nncodec.extensions.deepCABAC
    pytorch_model: Any = None  # nncodec.framework.pytorch_model.PytorchModel
    why_missing: str = ""


def import_nncodec() -> NNCodec:
    """NNCodec's modules, or the reason they cannot be imported (torchvision, cv2 stubbed)."""
    if str(STUB) not in sys.path:  # last: only torchvision/cv2 missing here are stubbed
        sys.path.append(str(STUB))  # nncodec imports them; its codec never uses them
    try:
        from nncodec import nnc
        from nncodec.extensions import deepCABAC
        from nncodec.framework.pytorch_model import PytorchModel
    except Exception as error:  # any import failure: say why, measure rdcompress only
        return NNCodec(why_missing=f"{type(error).__name__}: {error}")
    return NNCodec(nnc, deepCABAC, PytorchModel)


def qp_step(qp: int, qp_density: int = QP_DENSITY) -> float:
    """NNCodec's step size for ``qp``: (2**d + qp mod 2**d) * 2**(floor(qp / 2**d) - d)."""
    k = 1 << qp_density
    return (k + (qp & (k - 1))) * 2.0 ** ((qp >> qp_density) - qp_density)


def nncodec_levels(weight: np.ndarray, qp: int, dq: bool, cabac: ModuleType | None) -> np.ndarray:
    """(shape) float32 weight -> (shape) int32 levels from NNCodec's quantizer at ``qp``."""
    weight = np.ascontiguousarray(weight, dtype=np.float32)
    if cabac is None:
        if dq:
            raise RuntimeError("dependent quantization needs NNCodec's trellis quantizer")
        return np.round(weight / np.float32(qp_step(qp))).astype(np.int32)
    levels = np.zeros(weight.shape, dtype=np.int32)  # not zeros_like: see nncodec's baseline.py
    encoder = cabac.Encoder()
    encoder.initCtxModels(CABAC_UNARY_LENGTH_MINUS1, 0)
    used = encoder.quantLayer(weight, levels, int(dq), QP_DENSITY, qp, 0.0,
                              CABAC_UNARY_LENGTH_MINUS1, 0, 0)
    if used != qp:
        raise RuntimeError(f"NNCodec clipped qp {qp} to {used} (int32 overflow); use a larger qp")
    return levels


def _cabac_opts(cabac: ModuleType, rows: int) -> tuple:
    """encodeLayer/decodeLayer's trailing arguments: no row skipping, no history, no codebook."""
    return (np.zeros(rows, dtype=np.int32), cabac.HdspMode.AlwaysOff,
            np.array((0, 0), dtype=np.int8), 0, 0)


def deepcabac_encode(levels: np.ndarray, dq: bool, cabac: ModuleType) -> bytes:
    """One tensor's levels -> DeepCABAC bytes, as NNCodec's coder writes a tensor's payload."""
    encoder = cabac.Encoder()
    encoder.initCtxModels(CABAC_UNARY_LENGTH_MINUS1 + 1, 1)  # param_opt on, NNCodec's default
    rows_opts = _cabac_opts(cabac, levels.shape[0])
    encoder.encodeLayer(np.ascontiguousarray(levels, dtype=np.int32), int(dq), 0, 0, 0, 0,
                        *rows_opts)
    return encoder.finish().tobytes()


def deepcabac_decode(data: bytes, shape: tuple, dq: bool, cabac: ModuleType) -> np.ndarray:
    decoder = cabac.Decoder()
    stream = np.frombuffer(data, dtype=np.uint8).copy()
    decoder.setStream(stream)
    decoder.initCtxModels(CABAC_UNARY_LENGTH_MINUS1 + 1)
    levels = np.zeros(shape, dtype=np.int32)
    _, mode, hist, size, offset = _cabac_opts(cabac, shape[0])
    decoder.decodeLayer(levels, int(dq), 0, 0, 0, mode, hist, size, offset)
    decoder.finish()
    return levels


# ---------------------------------------------------------------- (a) coding alone

def rdcompress_coders() -> list[str]:
    return ["ans", "huffman"] + (["ctx"] if "ctx" in getattr(rdcodec, "CODERS", ()) else [])


def rdcompress_stream_bytes(levels: np.ndarray, coder: str) -> int:
    """Bytes of one tensor's levels as an rdcompress index stream (symbols = level - min)."""
    symbols = (levels.astype(np.int64) - int(levels.min()))
    k = int(symbols.max()) + 1
    if coder == "ctx":
        return len(rdcodec.encode_index_stream(symbols, k, "ctx"))
    return len(encode_stream(symbols.reshape(-1), k, coder))


def general_purpose_bytes(levels: np.ndarray) -> dict[str, int]:
    """zstd (level 19, if installed) and lzma (raw LZMA2 preset 9e) of the int8/int16 array."""
    small = levels.astype(np.int8 if np.abs(levels).max() < 128 else np.int16).tobytes()
    out = {"lzma": len(lzma.compress(small, format=lzma.FORMAT_RAW, filters=[
        {"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME}]))}
    if importlib.util.find_spec("zstandard") is not None:
        import zstandard

        out["zstd"] = len(zstandard.ZstdCompressor(level=19).compress(small))
    return out


def coding_rows(name: str, weights: dict[str, np.ndarray], qps: list[int],
                codec: NNCodec) -> list[dict]:
    """One row per (quantizer, qp): bytes of every coder for all weights of the model."""
    rows = []
    for dq in (False, True):
        if dq and codec.cabac is None:
            continue
        for qp in qps:
            row: dict[str, Any] = {"model": name, "quantizer": "nncodec-dq" if dq else
                                   ("nncodec-uniform" if codec.cabac else "round(w/step)"),
                                   "qp": qp, "step": qp_step(qp), "weights": 0, "zeros": 0,
                                   "entropy_bytes": 0.0,
                                   "roundtrip_ok": True if codec.cabac else None}
            sizes: dict[str, int] = {}
            for weight in weights.values():
                levels = nncodec_levels(weight, qp, dq, codec.cabac)
                symbols = levels.reshape(-1).astype(np.int64) - int(levels.min())
                row["weights"] += levels.size
                row["zeros"] += int((levels == 0).sum())
                row["entropy_bytes"] += empirical_entropy_bits(symbols) / 8
                if codec.cabac is not None:
                    data = deepcabac_encode(levels, dq, codec.cabac)
                    decoded = deepcabac_decode(data, levels.shape, dq, codec.cabac)
                    row["roundtrip_ok"] &= bool(np.array_equal(decoded, levels))
                    sizes["deepcabac"] = sizes.get("deepcabac", 0) + len(data)
                for coder in rdcompress_coders():
                    sizes[coder] = sizes.get(coder, 0) + rdcompress_stream_bytes(levels, coder)
                for coder, size in general_purpose_bytes(levels).items():
                    sizes[coder] = sizes.get(coder, 0) + size
            row.update({f"{c}_bytes": s for c, s in sizes.items()})
            row.update({f"{c}/H": s / row["entropy_bytes"] for c, s in sizes.items()})
            rows.append(row)
    return rows


# ---------------------------------------------------------------- (b) the whole codec

@dataclass
class Case:
    """A model and its evaluation data, preprocessed once."""

    name: str
    module: nn.Module
    inputs: torch.Tensor  # (N, ...) model inputs
    labels: torch.Tensor  # (N,)
    fp32_bytes: int = 0
    accuracy: float = 0.0  # of the original, on this evaluation set
    forward_s: float = 0.0  # one forward pass of the original over the evaluation set

    def evaluate(self, module: nn.Module) -> float:
        logits, labels = collect_outputs(module, tensor_loader(self.inputs, self.labels, 500))
        return float((logits.argmax(1) == labels).double().mean())


def load_case(name: str, data_dir: Path, eval_limit: int | None) -> Case:
    source, weights, dataset_name = MODELS[name]
    loaded = load_model(source, weights=weights)
    dataset = load_dataset(dataset_name, split="test", data_dir=str(data_dir))
    images, labels = dataset_tensors(dataset)
    if eval_limit is not None and eval_limit < len(labels):  # evenly spaced subset
        index = torch.from_numpy(np.unique(np.linspace(0, len(labels) - 1, eval_limit).round()
                                           .astype(np.int64)))
        images, labels = images[index], labels[index]
    case = Case(name, loaded.module.eval(), loaded.preprocessing(images), labels)
    case.fp32_bytes = sum(t.numel() * (4 if t.is_floating_point() else t.element_size())
                          for t in case.module.state_dict().values())  # as the .rdz manifest
    case.evaluate(case.module)  # warm-up
    start = time.perf_counter()
    case.accuracy = case.evaluate(case.module)
    case.forward_s = time.perf_counter() - start
    return case


@dataclass
class Point:
    model: str
    curve: str
    setting: str
    file_bytes: int
    ratio: float
    accuracy: float
    encode_s: float
    decode_s: float
    extra: dict = field(default_factory=dict)


def timed(function: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    result = function()
    return result, time.perf_counter() - start


def nncodec_point(case: Case, codec: NNCodec, qp: int, dq: bool, path: Path) -> Point:
    """NNCodec with its defaults (non-weights at nonweight_qp=-75) at ``qp``, DQ on or off."""
    nnc = codec.nnc
    if nnc is None:
        raise RuntimeError(f"NNCodec is not importable: {codec.why_missing}")
    state = case.module.state_dict()

    def encode() -> None:
        nnc_model = codec.pytorch_model()
        parameters = nnc_model.init_model_from_dict(state)  # drops num_batches_tracked
        nnc.compress(parameters, bitstream_path=str(path), qp=qp, use_dq=dq,
                           model=nnc_model, verbose=False)

    def decode() -> nn.Module:
        decoded = nnc.decompress(str(path))
        module = copy.deepcopy(case.module)
        missing = module.load_state_dict(
            {k: torch.from_numpy(np.asarray(v)).reshape(state[k].shape).to(state[k].dtype)
             for k, v in decoded.items()}, strict=False).missing_keys
        if any(not key.endswith("num_batches_tracked") for key in missing):
            raise RuntimeError(f"NNCodec's file lacks {missing}")
        return module.eval()

    _, encode_s = timed(encode)
    module, decode_s = timed(decode)
    size = path.stat().st_size
    return Point(case.name, "nncodec+dq" if dq else "nncodec", f"qp={qp}", size,
                 case.fp32_bytes / size, case.evaluate(module), encode_s, decode_s,
                 {"qp": qp, "step": qp_step(qp), "dq": dq})


def rdcompress_point(case: Case, config: Any, importance: Any, coder: str, curve: str,
                     setting: str, path: Path) -> Point:
    compressed, compress_s = timed(lambda: rdcompress_api.compress(case.module, config,
                                                                   importance, coder=coder))
    summary, save_s = timed(lambda: compressed.save(path))
    module, decode_s = timed(lambda: rdcompress_api.load(path, model=case.module))
    size = path.stat().st_size
    parts = {"header_bytes": summary.header_bytes, "manifest_bytes": summary.manifest_bytes}
    for part in ("codebook_bytes", "index_bytes", "position_bytes", "raw_bytes"):
        parts[part] = sum(getattr(tensor, part) for tensor in summary.tensors)
    return Point(case.name, curve, setting, size, case.fp32_bytes / size,
                 case.evaluate(module), compress_s + save_s, decode_s,
                 {**config.to_dict(), "coder": coder, **parts})


class Recorder:
    """Collects the points, prints each and rewrites codec.csv after each (a long run that is
    stopped keeps what it measured)."""

    def __init__(self, out: Path) -> None:
        self.path = out / "codec.csv"
        self.points: list[Point] = []

    def add(self, point: Point) -> None:
        self.points.append(point)
        print(_point_line(point), flush=True)
        write_csv(self.path, [{**asdict(p), "extra": json.dumps(p.extra)} for p in self.points])

    def of(self, model: str) -> list[Point]:
        return [p for p in self.points if p.model == model]


def allocate_points(case: Case, targets: list[int], args: argparse.Namespace, workdir: Path,
                    recorder: Recorder) -> None:
    """``AllocateConfig(target_bytes=B)`` points at NNCodec's file sizes, once it exists."""
    allocate_config = getattr(rdcompress_api, "AllocateConfig", None)
    if allocate_config is None or args.skip_allocate:
        print(f"# {case.name}: allocation points skipped (" + (
            "--skip-allocate)" if allocate_config else
            "rdcompress.compress.AllocateConfig does not exist yet)"))
        return
    for objective in args.importance:
        importance = None if objective == "none" else _importance(case, objective, args)
        for target in targets:
            config = allocate_config(target_bytes=int(target))
            try:
                point = rdcompress_point(case, config, importance, "ans",
                                         f"rdcompress-allocate-{objective}", f"B={target}",
                                         workdir / f"alloc-{target}.rdz")
            except ConfigError as error:  # e.g. a target below the smallest possible file
                print(f"# {case.name}: AllocateConfig(target_bytes={target}) skipped: {error}")
                continue
            recorder.add(point)


def _importance(case: Case, objective: str, args: argparse.Namespace) -> Any:
    """``objective`` importance of the original over the first validation images (a carve-out
    of the training set, never the test images the accuracy is measured on)."""
    from rdcompress.importance import compute_importance

    source, weights, dataset_name = MODELS[case.name]
    loaded = load_model(source, weights=weights)
    data = load_dataset(dataset_name, split="val", data_dir=str(args.data_dir))
    images, labels = dataset_tensors(data, args.importance_samples)
    loader = tensor_loader(loaded.preprocessing(images), labels, 250)
    importance, seconds = timed(lambda: compute_importance(case.module, loader, objective))
    print(f"# {case.name}: {objective} importance on {len(labels)} val images in "
          f"{seconds:.0f} s", flush=True)
    return importance


def codec_points(case: Case, codec: NNCodec, args: argparse.Namespace,
                 recorder: Recorder) -> list[Point]:
    """Every curve of (b) for ``case``; returns its points (also in ``recorder``)."""
    with tempfile.TemporaryDirectory(prefix="vs-nncodec-") as tmp:
        workdir = Path(tmp)
        if codec.nnc is not None:
            for dq in (False, True):
                for qp in args.qps or range(args.qp_start, args.qp_stop + 1, args.qp_step):
                    point = nncodec_point(case, codec, qp, dq, workdir / f"{qp}-{dq}.nnc")
                    recorder.add(point)
                    if not args.qps and 100 * (case.accuracy - point.accuracy) > args.stop_drop:
                        break  # the default sweep ends where the accuracy has collapsed
        coders = ["ans"] + (["ctx"] if "ctx" in getattr(rdcodec, "CODERS", ()) else [])
        for coder in coders:
            for k in args.clusters:
                config = QuantizeConfig(clusters=k, algorithm="optimal")
                try:
                    point = rdcompress_point(case, config, None, coder,
                                             f"rdcompress-optimal-{coder}", f"k={k}",
                                             workdir / f"k{k}.rdz")
                except Exception as error:  # a coder the file writer does not take yet
                    print(f"# {case.name}: coder {coder!r} failed: {error}; curve skipped")
                    break
                recorder.add(point)
        targets = sorted({p.file_bytes for p in recorder.of(case.name)
                          if p.curve == "nncodec+dq"
                          and 100 * (case.accuracy - p.accuracy) <= args.stop_drop})
        if len(targets) > args.allocate_points:  # evenly spaced in sorted order
            picks = np.linspace(0, len(targets) - 1, args.allocate_points).round().astype(int)
            targets = [targets[i] for i in sorted(set(picks.tolist()))]
        allocate_points(case, targets, args, workdir, recorder)
    return recorder.of(case.name)


def _point_line(point: Point) -> str:
    return (f"  {point.model:10s} {point.curve:26s} {point.setting:10s} "
            f"{point.file_bytes:9d} B  {point.ratio:6.2f}x  {100 * point.accuracy:6.2f}%")


# ---------------------------------------------------------------- tables, files, plots

def best_ratios(points: list[Point], original: float) -> dict[str, list[float | None]]:
    """Per curve: the largest ratio within each tolerance (accuracy points) of ``original``."""
    out: dict[str, list[float | None]] = {}
    for curve in dict.fromkeys(p.curve for p in points):
        mine = [p for p in points if p.curve == curve]
        out[curve] = [max((p.ratio for p in mine if 100 * (original - p.accuracy) <= tol + 1e-9),
                          default=None) for tol in TOLERANCES]
    return out


def print_coding_table(rows: list[dict]) -> None:
    coders = [key[:-6] for key in rows[0] if key.endswith("_bytes") and key != "entropy_bytes"]
    print(f"\n(a) coding alone, {rows[0]['model']}: bytes (bytes / order-0 entropy)")
    print(f"  {'quantizer':16s} {'qp':>4s} {'zeros':>6s} {'H bytes':>9s}" +
          "".join(f" {c:>17s}" for c in coders) + "  roundtrip")
    for row in rows:
        cells = "".join(f" {row[f'{c}_bytes']:9d} ({row[f'{c}/H']:5.3f})" for c in coders)
        print(f"  {row['quantizer']:16s} {row['qp']:4d} {row['zeros'] / row['weights']:6.1%} "
              f"{row['entropy_bytes']:9.0f}{cells}  {_dash(row['roundtrip_ok'])}")


def _dash(value: Any) -> str:
    return "-" if value is None else str(value)


def print_codec_table(case: Case, points: list[Point], published: bool) -> dict:
    best = best_ratios(points, case.accuracy)
    print(f"\n(b) {case.name}: original {100 * case.accuracy:.2f}% on {len(case.labels)} "
          f"test images, {case.fp32_bytes} fp32 bytes, forward pass {case.forward_s:.2f} s")
    print(f"  {'curve':34s}" + "".join(f" {'<=' + str(t) + ' pt':>9s}" for t in TOLERANCES) +
          f" {'enc/fwd':>8s} {'dec/fwd':>8s}  (largest file ratio; median time ratios)")
    for curve, ratios in best.items():
        mine = [p for p in points if p.curve == curve]
        enc = float(np.median([p.encode_s for p in mine])) / case.forward_s
        dec = float(np.median([p.decode_s for p in mine])) / case.forward_s
        print(f"  {curve:34s}" + "".join(f" {r:8.1f}x" if r else f" {'-':>9s}" for r in ratios)
              + f" {enc:8.1f} {dec:8.1f}")
    if published and case.name in PUBLISHED:
        print(f"  {'nncodec+dq (published, team)':34s}" +
              "".join(f" {r:8.1f}x" for r in PUBLISHED[case.name]) +
              "   (10k JPEG test images, 81.03%)" * (case.name == "resnet20"))
    return best


def plot(case: Case, points: list[Point], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import ScalarFormatter

    figure, axes = plt.subplots(figsize=(7, 4.5))
    for curve in dict.fromkeys(p.curve for p in points):
        mine = sorted((p for p in points if p.curve == curve), key=lambda p: p.ratio)
        axes.plot([p.ratio for p in mine], [100 * p.accuracy for p in mine], "o-", ms=3,
                  label=curve)
    for tol in (0.0, *TOLERANCES):
        axes.axhline(100 * case.accuracy - tol, color="gray", lw=0.6, ls="-" if tol == 0 else ":")
    axes.set_xscale("log")
    axes.xaxis.set_major_formatter(ScalarFormatter())
    axes.xaxis.set_minor_formatter(ScalarFormatter())
    top = max([100 * case.accuracy + 1] + [100 * p.accuracy + 0.3 for p in points])
    axes.set_ylim(100 * case.accuracy - 5, top)
    axes.set_xlabel("file ratio (fp32 state_dict bytes / file bytes)")
    axes.set_ylabel(f"test accuracy (%), {len(case.labels)} images")
    axes.set_title(f"{case.name}: rdcompress vs NNCodec")
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write_csv(path: Path, rows: list[dict]) -> None:
    keys = list(dict.fromkeys(key for row in rows for key in row))
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)


# ---------------------------------------------------------------- driver

def parse_ints(text: str) -> list[int]:
    """'-40:-20:4' (start:stop:step, stop included) or '-38,-30' -> list of ints."""
    if ":" in text:
        start, stop, step = (int(part) for part in text.split(":"))
        return list(range(start, stop + (1 if step > 0 else -1), step))
    return [int(part) for part in text.split(",") if part]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--out", type=Path, default=Path("runs/vs-nncodec"))
    parser.add_argument("--data-dir", type=Path, default=SHARED_DATA)
    parser.add_argument("--eval-limit", type=int, default=None,
                        help="evaluate on N evenly spaced test images (default: all)")
    parser.add_argument("--qps", type=parse_ints, default=None,
                        help="NNCodec QPs for (b), e.g. --qps=-40:-10:2 (qp_density 2: +4 "
                        "doubles the step); default every QP from --qp-start up to the first "
                        "whose accuracy is more than --stop-drop points below the original")
    parser.add_argument("--qp-start", type=int, default=-44)
    parser.add_argument("--qp-stop", type=int, default=8)
    parser.add_argument("--qp-step", type=int, default=1)
    parser.add_argument("--stop-drop", type=float, default=2.0)
    parser.add_argument("--allocate-points", type=int, default=8,
                        help="AllocateConfig targets: at most this many NNCodec+DQ file sizes")
    parser.add_argument("--coding-qps", type=parse_ints, default=parse_ints("-38,-32,-26,-20"),
                        help="QPs for (a), coding alone")
    parser.add_argument("--clusters", type=parse_ints,
                        default=parse_ints("4,5,6,8,10,12,16,24,32,48,64"))
    parser.add_argument("--importance", type=lambda text: text.split(","),
                        default=["none", "fisher"],
                        help="importance objectives for the AllocateConfig curves, one curve "
                        "each; 'none' is the baseline (I = 1) (default: none,fisher)")
    parser.add_argument("--importance-samples", type=int, default=2000,
                        help="validation images for that importance")
    parser.add_argument("--skip-coding", action="store_true", help="skip (a)")
    parser.add_argument("--skip-codec", action="store_true", help="skip (b)")
    parser.add_argument("--skip-allocate", action="store_true", help="no AllocateConfig points")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    codec = import_nncodec()
    if codec.nnc is None:
        print(f"# NNCodec unavailable ({codec.why_missing}); run bash bench/nncodec_env.sh and "
              "use bench/.venv-nncodec/bin/python. Quoting its published figures instead.")
    coding: list[dict] = []
    recorder = Recorder(args.out)
    summary: dict[str, Any] = {"settings": {k: str(v) if isinstance(v, Path) else v
                                            for k, v in vars(args).items()},
                               "nncodec": None if codec.nnc is None else _version("nncodec"),
                               "nncodec_missing": codec.why_missing or None,
                               "torch": torch.__version__, "models": {}}
    for name in args.models:
        if name == "mnist-mlp" and not Path(MODELS[name][0]).exists():
            print(f"# {name}: {MODELS[name][0]} does not exist (train it first); skipped")
            continue
        case = load_case(name, args.data_dir, args.eval_limit)
        weights = {key: value.detach().numpy() for key, value in case.module.named_parameters()
                   if value.ndim >= 2}
        info: dict[str, Any] = {"accuracy": case.accuracy, "eval_images": len(case.labels),
                                "fp32_bytes": case.fp32_bytes, "forward_s": case.forward_s}
        if not args.skip_coding:
            rows = coding_rows(name, weights, args.coding_qps, codec)
            print_coding_table(rows)
            coding += rows
        if not args.skip_codec:
            print(f"\n(b) {name}: points")
            mine = codec_points(case, codec, args, recorder)
            info["best_ratios"] = print_codec_table(case, mine, published=True)
            plot(case, mine, args.out / f"{name}.png")
        if codec.nnc is None and name in PUBLISHED:
            info["published_nncodec_dq"] = PUBLISHED[name]
        summary["models"][name] = info
    written = ["summary.json"]
    if coding:
        write_csv(args.out / "coding.csv", coding)
        written.append("coding.csv")
    if recorder.points:
        written += ["codec.csv", *(f"{name}.png" for name in summary["models"])]
    summary["tolerances_points"] = TOLERANCES
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    print(f"\nwrote {args.out}/: {', '.join(written)}")
    return 0


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


if __name__ == "__main__":
    sys.exit(main())

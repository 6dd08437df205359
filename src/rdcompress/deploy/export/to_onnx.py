"""Export target ``onnx``: a graph whose compressed weights stay compressed in the file.

How: the dense model (``rdcompress.compress.load``) is exported with torch's TorchScript-based
exporter (``dynamo=False``, constant folding off), which names every weight initializer by its
state_dict key; then each compressed weight's initializer is replaced by a small subgraph that
rebuilds it at run time from what the ``.rdz`` stores (``onnx.helper``):

- quantized: ``Gather(codebook (k,), Cast(indices))``; the indices are a uint8 initializer
  (k ≤ 256; uint16 / int32 above), and for k ≤ 2, 4, 16 packed 8, 4, 2 per byte, unpacked
  with ``BitShift`` + ``BitwiseAnd``;
- pruned (and pruned + quantized): the kept values (or their indices + codebook) and a bit
  mask (8 positions per byte) → ``NonZero`` → ``ScatterElements`` into zeros;
- low-rank / sum composites: the parts as above, combined in float64 (``MatMul`` / ``Sum``)
  and cast once to the weight's dtype, as ``compress.compose`` does.

Why not the torch.export-based exporter (torch 2.13's default): it needs ``onnxscript`` (not
installed with onnx/onnxruntime) and its optimizer folds constants, so a decoding step traced
from ``deploy.modules`` would be folded back into a dense float initializer. Exporting dense
and replacing initializers by name keeps the exporter's job to what it does for any model.
"""

from __future__ import annotations

import inspect
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rdcompress._io import atomic_write_bytes
from rdcompress.codec import PrunedTensor, QuantizedTensor, RawTensor, read_rdz_tensors
from rdcompress.codec.tensors import cast_codebook, decode_tensor
from rdcompress.compress.compose import LOWRANK
from rdcompress.deploy.export.options import ExportOptions, ExportResult
from rdcompress.deploy.packing import palette_of
from rdcompress.errors import ConfigError, ModelError

INPUT_NAME, OUTPUT_NAME = "input", "output"


def _onnx() -> Any:
    try:
        import onnx
    except ImportError as error:
        raise ConfigError("ONNX export needs the onnx package: pip install "
                          "'rdcompress[export]' (or pip install onnx onnxruntime).") from error
    return onnx


class GraphPieces:
    """Nodes and initializers added to a graph, with unique names under a prefix."""

    def __init__(self, onnx: Any) -> None:
        self.onnx = onnx
        self.nodes: list[Any] = []  # onnx.NodeProto, in execution order
        self.initializers: list[Any] = []  # onnx.TensorProto
        self.count = 0
        self.shared_names: set[str] = set()

    def constant(self, name: str, array: np.ndarray) -> str:
        self.initializers.append(self.onnx.numpy_helper.from_array(np.asarray(array), name))
        return name

    def shared(self, key: str, array: np.ndarray) -> str:
        """A constant used by many decoders, stored once (named ``rdz::KEY``)."""
        name = f"rdz::{key}"
        if name not in self.shared_names:
            self.shared_names.add(name)
            self.constant(name, array)
        return name

    def node(self, op: str, inputs: list[str], output: str | None = None, **attrs) -> str:
        self.count += 1
        output = output or f"rdz/{op}_{self.count}"
        self.nodes.append(self.onnx.helper.make_node(op, inputs, [output],
                                                     name=f"rdz/{op}_{self.count}", **attrs))
        return output

    def unpack(self, packed: str, bits: int, count: int, prefix: str) -> str:
        """(ceil(count·bits/8),) uint8 -> (count,) uint8 fields of ``bits`` bits, LSB first."""
        shifts = self.shared(f"shifts{bits}", np.arange(0, 8, bits, dtype=np.uint8))
        field = self.shared(f"field{bits}", np.array((1 << bits) - 1, dtype=np.uint8))
        column = self.shared("column", np.array([-1, 1], dtype=np.int64))
        flat = self.shared("flat", np.array([-1], dtype=np.int64))
        start = self.shared("start", np.array([0], dtype=np.int64))
        end = self.constant(f"{prefix}::end", np.array([count], dtype=np.int64))
        shifted = self.node("BitShift", [self.node("Reshape", [packed, column]), shifts],
                            direction="RIGHT")  # (bytes, per_byte)
        fields = self.node("BitwiseAnd", [shifted, field])
        return self.node("Slice", [self.node("Reshape", [fields, flat]), start, end])


def _onnx_dtype(onnx: Any, dtype: str) -> int:
    table = {"float32": onnx.TensorProto.FLOAT, "float16": onnx.TensorProto.FLOAT16,
             "float64": onnx.TensorProto.DOUBLE}
    if dtype not in table:
        raise ConfigError(f"ONNX export supports float32, float16 and float64 weights, not "
                          f"{dtype}; convert the model before compressing it.")
    return table[dtype]


def _indices(pieces: GraphPieces, name: str, indices: np.ndarray, k: int) -> str:
    """(n,) int32 codebook indices in the graph, from their narrowest initializer."""
    onnx = pieces.onnx
    bits = next((b for b in (1, 2, 4) if k <= 1 << b), None)
    if bits is not None:  # 8 / bits indices per byte, the first in the lowest bits
        per_byte = 8 // bits
        padded = np.zeros(-(-indices.size // per_byte) * per_byte, dtype=np.uint8)
        padded[:indices.size] = indices
        fields = padded.reshape(-1, per_byte) << np.arange(0, 8, bits, dtype=np.uint8)
        packed = np.bitwise_or.reduce(fields, axis=1).astype(np.uint8)
        stored = pieces.unpack(pieces.constant(f"{name}::indices{bits}", packed), bits,
                               indices.size, name)
    else:
        dtype = np.uint8 if k <= 256 else np.uint16 if k <= 65536 else np.int32
        stored = pieces.constant(f"{name}::indices", indices.astype(dtype))
    return pieces.node("Cast", [stored], to=onnx.TensorProto.INT32)


def _scatter(pieces: GraphPieces, name: str, values: str, mask: np.ndarray, dtype: str) -> str:
    """(numel,) dense tensor: ``values`` at the mask's True positions (row-major), 0 else."""
    onnx = pieces.onnx
    bits = np.packbits(mask.astype(np.uint8), bitorder="little")
    kept = pieces.node("Cast", [pieces.unpack(pieces.constant(f"{name}::mask", bits), 1,
                                              mask.size, f"{name}::mask")],
                       to=onnx.TensorProto.BOOL)
    flat = pieces.shared("flat", np.array([-1], dtype=np.int64))
    positions = pieces.node("Reshape", [pieces.node("NonZero", [kept]), flat])  # (kept,)
    numel = pieces.constant(f"{name}::numel", np.array([mask.size], dtype=np.int64))
    zero = onnx.helper.make_tensor("zero", _onnx_dtype(onnx, dtype), [1], [0])
    zeros = pieces.node("ConstantOfShape", [numel], value=zero)
    return pieces.node("ScatterElements", [zeros, positions, values], axis=0)


def _entry_subgraph(pieces: GraphPieces, entry: Any, output: str) -> None:
    """Nodes computing the dense tensor of a codec entry into ``output``."""
    if isinstance(entry, RawTensor):
        pieces.node("Identity", [pieces.constant(f"{entry.name}::raw", entry.array)], output)
        return
    shape = pieces.constant(f"{entry.name}::shape", np.array(entry.shape, dtype=np.int64))
    if isinstance(entry, QuantizedTensor):
        codebook = cast_codebook(entry.codebook, entry.dtype)
        _onnx_dtype(pieces.onnx, entry.dtype)
        values = pieces.node("Gather", [
            pieces.constant(f"{entry.name}::codebook", codebook),
            _indices(pieces, entry.name, entry.indices, codebook.size)], axis=0)
    elif isinstance(entry, PrunedTensor):
        _onnx_dtype(pieces.onnx, entry.dtype)
        values = pieces.constant(f"{entry.name}::values", entry.values)
    else:  # another kind (e.g. dependent quantization): a palette of its distinct values
        dense = decode_tensor(entry)
        palette = palette_of(torch.from_numpy(dense.copy())) if dense.dtype.kind == "f" \
            and dense.size else None
        if palette is None:
            pieces.node("Identity", [pieces.constant(f"{entry.name}::dense", dense)], output)
            return
        codebook, indices = (t.numpy() for t in palette)
        values = pieces.node("Gather", [
            pieces.constant(f"{entry.name}::codebook", codebook),
            _indices(pieces, entry.name, indices, codebook.size)], axis=0)
    mask = getattr(entry, "mask", None)
    if mask is not None:
        values = _scatter(pieces, entry.name, values, mask, entry.dtype)
    pieces.node("Reshape", [values, shape], output)


def _composite_subgraph(pieces: GraphPieces, name: str, recipe: dict, by_name: dict) -> None:
    """Parts rebuilt, combined in float64, cast once to the weight's dtype, into ``name``."""
    onnx = pieces.onnx
    parts = []
    for part in recipe["parts"]:
        _entry_subgraph(pieces, by_name[part], part)
        parts.append(pieces.node("Cast", [part], to=onnx.TensorProto.DOUBLE))
    combined = pieces.node("MatMul", parts) if recipe["op"] == LOWRANK else \
        pieces.node("Sum", parts)
    shape = pieces.constant(f"{name}::shape", np.array(recipe["shape"], dtype=np.int64))
    cast = pieces.node("Cast", [combined], to=_onnx_dtype(onnx, recipe["dtype"]))
    pieces.node("Reshape", [cast, shape], name)


def example_shape(manifest: dict, options: ExportOptions) -> tuple[int, ...]:
    """One example's input shape: ``options.input_shape`` or the zoo model's dataset's."""
    if options.input_shape is not None:
        return tuple(options.input_shape)
    spec = manifest.get("model") if isinstance(manifest, dict) else None
    if isinstance(spec, dict) and isinstance(spec.get("zoo"), str):
        from rdcompress.data.registry import DATASETS
        from rdcompress.models.zoo import ZOO

        entry = ZOO.get(spec["zoo"])
        if entry is not None and entry.dataset in DATASETS:
            return tuple(DATASETS[entry.dataset].input_shape)
    raise ConfigError("the input shape of this model is unknown (not a zoo model): give it, "
                      "e.g. input_shape=(3, 32, 32) / --input-shape 3,32,32.")


def dense_onnx_bytes(module: torch.nn.Module, shape: tuple[int, ...], opset: int) -> bytes:
    """The dense module as ONNX (TorchScript exporter, no constant folding, dynamic batch)."""
    dtype = next((p.dtype for p in module.parameters() if p.is_floating_point()), torch.float32)
    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter's notice
        # and its note that a Slice with steps > 1 is not folded (we asked for no folding)
        warnings.filterwarnings("ignore", message="Constant folding", category=UserWarning)
        path = Path(folder) / "dense.onnx"
        # ``dynamo`` exists from torch 2.5 on (and defaults to True from 2.9); before, the
        # TorchScript exporter is the only one
        choice: dict[str, Any] = {"dynamo": False} if "dynamo" in inspect.signature(
            torch.onnx.export).parameters else {}
        torch.onnx.export(module, (torch.zeros(1, *shape, dtype=dtype),), path, **choice,
                          do_constant_folding=False, opset_version=opset,
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}})
        return path.read_bytes()


def export_onnx(rdz_path: str | os.PathLike[str], out_path: str | os.PathLike[str],
                options: ExportOptions) -> ExportResult:
    """Write the ``.rdz`` model as ONNX (see the module docstring); input ``"input"``
    (batch, *input_shape), output ``"output"``. ``details["compressed"]``: the weights
    rebuilt in the graph; ``details["input_shape"]``: one example's shape."""
    onnx = _onnx()
    from rdcompress.compress import load

    module = load(rdz_path, options.model, trust_code=options.trust_code)
    manifest, entries = read_rdz_tensors(rdz_path)
    shape = example_shape(manifest, options)
    graph_model = onnx.load_model_from_string(dense_onnx_bytes(module, shape, options.opset))
    compressed: list[str] = []
    if options.compressed:
        compressed = _replace_weights(onnx, graph_model, manifest, entries)
    onnx.checker.check_model(graph_model)
    atomic_write_bytes(out_path, graph_model.SerializeToString())
    path = Path(out_path)
    return ExportResult(path, "onnx", path.stat().st_size,
                        {"compressed": compressed, "input_shape": list(shape),
                         "opset": options.opset})


def _replace_weights(onnx: Any, graph_model: Any, manifest: dict, entries: list) -> list[str]:
    """Replace the initializer of every compressed weight by its decoding subgraph."""
    graph = graph_model.graph
    by_name = {entry.name: entry for entry in entries}
    composites = manifest.get("composites") or {}
    parts = {part for recipe in composites.values() for part in recipe["parts"]}
    targets = [e.name for e in entries if not isinstance(e, RawTensor) and e.name not in parts]
    targets += list(composites)
    initializers = {init.name: init for init in graph.initializer}
    missing = [name for name in targets if name not in initializers]
    if missing:
        raise ModelError(f"the exported graph has no initializer named {missing[:5]}: the "
                         "exporter fused or renamed these weights, so they cannot be kept "
                         "compressed; export with ExportOptions(compressed=False) for a dense "
                         "graph.")
    pieces = GraphPieces(onnx)
    for name in targets:
        if name in composites:
            _composite_subgraph(pieces, name, composites[name], by_name)
        else:
            _entry_subgraph(pieces, by_name[name], name)
        graph.initializer.remove(initializers[name])
    inputs = [i for i in graph.input if i.name in set(targets)]
    for graph_input in inputs:  # older IRs list initializers as inputs too
        graph.input.remove(graph_input)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend([*pieces.nodes, *nodes])  # the decoders read initializers only
    graph.initializer.extend(pieces.initializers)
    return targets


def run_onnxruntime(path: str | os.PathLike[str], inputs: torch.Tensor) -> torch.Tensor:
    """The exported graph's output for ``inputs`` (batch, *input_shape) under onnxruntime."""
    try:
        import onnxruntime
    except ImportError as error:
        raise ConfigError("running an ONNX file needs onnxruntime: pip install "
                          "'rdcompress[export]'.") from error
    session = onnxruntime.InferenceSession(os.fspath(path),
                                           providers=["CPUExecutionProvider"])
    (output,) = session.run([OUTPUT_NAME], {INPUT_NAME: inputs.numpy()})
    return torch.from_numpy(output)

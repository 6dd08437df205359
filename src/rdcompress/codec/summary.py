"""What a ``.rdz`` file spends its bytes on: per tensor and in total, beside the entropy bound
and the paper's formula.

Definitions (also in docs/rdz-format.md):
- original bytes: the fp32 state_dict size, numel * 4 for floating tensors (whatever their
  stored dtype) and numel * itemsize for integer/bool buffers.
- ratio = original bytes / file bytes, everything counted (preamble, header, checksums).
- bits per weight = 8 * bytes / numel (per tensor: its sections; total: the whole file).
- entropy bound = sum over coded streams of their empirical order-0 entropy (index stream:
  n_kept * H(cluster histogram); positions: numel * h(kept fraction)) + codebook bytes + raw
  bytes + manifest JSON bytes. ``coding_overhead`` = file bytes / entropy bound.
- paper bits (§5.3): quantized layer sum_j m_j ceil(log2(m / m_j)) + 32 k over the kept weights
  (pruned positions free, as in the authors' code); pruned-only layer 32 bits per kept weight;
  raw tensor its original bits. paper ratio = original bits / paper bits.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from rdcompress.codec.entropy import (
    entropy_bits_from_counts,
    mask_entropy_bits,
    paper_huffman_bits,
)
from rdcompress.codec.tensors import (
    FLOAT_DTYPES,
    STORAGE_DTYPES,
    DQTensor,
    PrunedTensor,
    QuantizedTensor,
    RawTensor,
    Tensor,
)


@dataclass
class TensorSummary:
    name: str
    kind: str  # "raw" | "quantized" | "pruned" | "dq"
    shape: tuple[int, ...]
    dtype: str
    numel: int
    n_kept: int
    k: int | None  # codebook size (quantized only)
    position_method: str | None  # None when dense
    index_coder: str | None  # "ctx" | "ans" | "huffman" | "constant" (quantized only)
    codebook_bytes: int = 0
    index_bytes: int = 0
    position_bytes: int = 0
    raw_bytes: int = 0  # raw data, or the kept values of a pruned tensor
    index_entropy_bits: float = 0.0
    position_entropy_bits: float = 0.0
    paper_bits: int = 0
    original_bytes: int = 0

    @property
    def bytes(self) -> int:
        return self.codebook_bytes + self.index_bytes + self.position_bytes + self.raw_bytes

    @property
    def bits_per_weight(self) -> float:
        return 8.0 * self.bytes / self.numel if self.numel else 0.0

    @property
    def entropy_bound_bytes(self) -> float:
        bits = self.index_entropy_bits + self.position_entropy_bits
        return bits / 8.0 + self.codebook_bytes + self.raw_bytes

    @property
    def kept_fraction(self) -> float:
        return self.n_kept / self.numel if self.numel else 1.0

    def to_dict(self) -> dict:
        out = asdict(self)
        out.update(bytes=self.bytes, bits_per_weight=self.bits_per_weight,
                   entropy_bound_bytes=self.entropy_bound_bytes, shape=list(self.shape))
        return out


@dataclass
class RdzSummary:
    file_bytes: int
    header_bytes: int  # preamble + stored (possibly deflated) JSON header
    manifest_bytes: int  # compact JSON of the manifest alone (part of the entropy bound)
    format_version: int
    tensors: list[TensorSummary] = field(default_factory=list)
    # the manifest's "composites" (rdcompress.compress.compose): a parameter stored as parts
    # counts once, at its own shape and dtype, in numel and original_bytes, not per part
    composites: dict = field(default_factory=dict)

    def _whole(self) -> list[tuple[int, int]]:
        """(numel, original bytes) of each parameter: plain tensors and whole composites."""
        parts = {part for recipe in self.composites.values() for part in recipe["parts"]}
        out = [(t.numel, t.original_bytes) for t in self.tensors if t.name not in parts]
        for recipe in self.composites.values():
            numel = int(np.prod(recipe["shape"], dtype=np.int64))
            out.append((numel, original_bytes_of(numel, recipe["dtype"])))
        return out

    def layer_bytes(self, name: str) -> int:
        """Bytes of parameter ``name``: its tensor's, or the sum of its parts'."""
        recipe = self.composites.get(name)
        names = set(recipe["parts"]) if recipe else {name}
        return sum(t.bytes for t in self.tensors if t.name in names)

    @property
    def original_bytes(self) -> int:
        return sum(original for _, original in self._whole())

    @property
    def numel(self) -> int:
        return sum(numel for numel, _ in self._whole())

    @property
    def ratio(self) -> float:
        return self.original_bytes / self.file_bytes

    @property
    def bits_per_weight(self) -> float:
        return 8.0 * self.file_bytes / self.numel if self.numel else 0.0

    @property
    def paper_bits(self) -> int:
        return sum(t.paper_bits for t in self.tensors)

    @property
    def paper_ratio(self) -> float:
        return 8.0 * self.original_bytes / self.paper_bits if self.paper_bits else 0.0

    @property
    def entropy_bound_bytes(self) -> float:
        return sum(t.entropy_bound_bytes for t in self.tensors) + self.manifest_bytes

    @property
    def coding_overhead(self) -> float:
        """file bytes / entropy bound; 1.0 = the file is as small as order-0 entropy allows."""
        return self.file_bytes / self.entropy_bound_bytes if self.entropy_bound_bytes else 0.0

    def to_dict(self) -> dict:
        return {
            "file_bytes": self.file_bytes, "header_bytes": self.header_bytes,
            "manifest_bytes": self.manifest_bytes, "format_version": self.format_version,
            "original_bytes": self.original_bytes, "numel": self.numel, "ratio": self.ratio,
            "bits_per_weight": self.bits_per_weight, "paper_bits": self.paper_bits,
            "paper_ratio": self.paper_ratio, "entropy_bound_bytes": self.entropy_bound_bytes,
            "coding_overhead": self.coding_overhead,
            "tensors": [t.to_dict() for t in self.tensors],
        }

    def format_table(self) -> str:
        """A per-layer text table with totals (what ``rdcompress info`` prints)."""
        head = (f"{'name':<28} {'shape':<16} {'kind':<9} {'k':>4} {'kept%':>6} {'bits/w':>7} "
                f"{'bytes':>9} {'entropy B':>10} {'overhead':>8} {'coder':<8} {'positions':<11}")
        lines = [head, "-" * len(head)]
        for t in self.tensors:
            bound = t.entropy_bound_bytes
            overhead = f"{t.bytes / bound:8.3f}" if bound else f"{'-':>8}"
            lines.append(
                f"{t.name[:28]:<28} {'x'.join(map(str, t.shape)) or 'scalar':<16} "
                f"{t.kind:<9} {t.k if t.k else '-':>4} {100 * t.kept_fraction:6.1f} "
                f"{t.bits_per_weight:7.3f} {t.bytes:9d} {bound:10.1f} {overhead} "
                f"{t.index_coder or '-':<8} {t.position_method or '-':<11}"
            )
        lines.append("-" * len(head))
        lines.append(
            f"header {self.header_bytes} B (manifest {self.manifest_bytes} B); file "
            f"{self.file_bytes} B; {self.numel} weights; {self.bits_per_weight:.3f} bits/weight; "
            f"entropy bound {self.entropy_bound_bytes:.1f} B (file/bound "
            f"{self.coding_overhead:.4f})"
        )
        lines.append(
            f"compression ratio (fp32 {self.original_bytes} B / file bytes): {self.ratio:.2f}x"
            f"   paper formula (Huffman bits + 32k, positions free): {self.paper_ratio:.2f}x"
        )
        return "\n".join(lines)


def original_bytes_of(numel: int, dtype: str) -> int:
    """fp32 state_dict bytes of a tensor: 4 per element if floating, else its own itemsize."""
    return numel * (4 if dtype in FLOAT_DTYPES else STORAGE_DTYPES[dtype].itemsize)


def summarize_tensor(
    tensor: Tensor, lengths: list[int], position_method: str | None, index_coder: str | None
) -> TensorSummary:
    """Summary of one tensor from its (decoded or to-be-encoded) content and section lengths."""
    if isinstance(tensor, RawTensor):
        numel = int(tensor.array.size)
        return TensorSummary(
            tensor.name, "raw", tuple(tensor.array.shape), str(tensor.dtype), numel, numel,
            None, None, None, raw_bytes=lengths[0],
            paper_bits=8 * original_bytes_of(numel, str(tensor.dtype)),
            original_bytes=original_bytes_of(numel, str(tensor.dtype)),
        )
    if isinstance(tensor, DQTensor):
        counts = np.bincount(tensor.symbols, minlength=tensor.alphabet_size)
        return TensorSummary(
            tensor.name, "dq", tensor.shape, tensor.dtype, tensor.numel, tensor.numel,
            tensor.alphabet_size, None, index_coder, codebook_bytes=lengths[0],
            index_bytes=lengths[1], index_entropy_bits=entropy_bits_from_counts(counts),
            paper_bits=paper_huffman_bits(counts, 0),
            original_bytes=original_bytes_of(tensor.numel, tensor.dtype),
        )
    position_entropy = 0.0 if tensor.mask is None else mask_entropy_bits(
        tensor.numel, tensor.n_kept
    )
    original = original_bytes_of(tensor.numel, tensor.dtype)
    if isinstance(tensor, QuantizedTensor):
        k = int(tensor.codebook.size)
        counts = np.bincount(tensor.indices, minlength=k)
        return TensorSummary(
            tensor.name, "quantized", tensor.shape, tensor.dtype, tensor.numel, tensor.n_kept,
            k, position_method, index_coder, codebook_bytes=lengths[0], index_bytes=lengths[1],
            position_bytes=lengths[2] if len(lengths) > 2 else 0,
            index_entropy_bits=entropy_bits_from_counts(counts),
            position_entropy_bits=position_entropy,
            paper_bits=paper_huffman_bits(counts, 32), original_bytes=original,
        )
    assert isinstance(tensor, PrunedTensor)
    return TensorSummary(
        tensor.name, "pruned", tensor.shape, tensor.dtype, tensor.numel, tensor.n_kept, None,
        position_method, None, position_bytes=lengths[0], raw_bytes=lengths[1],
        position_entropy_bits=position_entropy, paper_bits=32 * tensor.n_kept,
        original_bytes=original,
    )

"""The three tensor kinds a ``.rdz`` container holds, and their dtype conventions.

numpy has no bfloat16: a bfloat16 tensor travels as its uint16 bit patterns, with
``dtype="bfloat16"`` saying how to read them (``RawTensor.dtype``, ``PrunedTensor.dtype``).
``torch.Tensor`` inputs are accepted and converted (bfloat16 -> bit patterns) for convenience.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import torch

from rdcompress.codec.dq import DQTensor, dq_float_values
from rdcompress.errors import ConfigError

# dtype name -> numpy storage dtype (little-endian). bfloat16 is stored as its bit patterns.
STORAGE_DTYPES: dict[str, np.dtype] = {
    "float64": np.dtype("<f8"), "float32": np.dtype("<f4"), "float16": np.dtype("<f2"),
    "bfloat16": np.dtype("<u2"),
    "int64": np.dtype("<i8"), "int32": np.dtype("<i4"), "int16": np.dtype("<i2"),
    "int8": np.dtype("i1"), "uint8": np.dtype("u1"), "uint16": np.dtype("<u2"),
    "uint32": np.dtype("<u4"), "uint64": np.dtype("<u8"), "bool": np.dtype("?"),
}
FLOAT_DTYPES = ("float64", "float32", "float16", "bfloat16")


def _to_numpy(array, dtype: str | None) -> tuple[np.ndarray, str]:
    """Array-like (numpy or torch) -> (numpy storage array, dtype name)."""
    import torch

    if isinstance(array, torch.Tensor):
        tensor = array.detach().cpu().contiguous()
        if tensor.dtype == torch.bfloat16:
            return tensor.view(torch.int16).numpy().view(np.uint16), "bfloat16"
        array = tensor.numpy()
    array = np.asarray(array)
    name = dtype or array.dtype.name
    if name not in STORAGE_DTYPES:
        raise ConfigError(
            f"dtype {name!r} is not supported by .rdz; expected one of {sorted(STORAGE_DTYPES)}"
        )
    if name == "bfloat16" and array.dtype != np.uint16:
        raise ConfigError(
            f"a bfloat16 tensor must be given as uint16 bit patterns (or a torch tensor), "
            f"got numpy dtype {array.dtype}"
        )
    if name != "bfloat16" and array.dtype.name != name:
        raise ConfigError(
            f"array of numpy dtype {array.dtype} was declared as {name!r}; cast it first "
            f"(the codec never converts values silently)"
        )
    # ascontiguousarray would turn a 0-d array into shape (1,): keep the shape explicitly.
    return np.ascontiguousarray(array, dtype=STORAGE_DTYPES[name]).reshape(array.shape), name


def _check_mask(mask, numel: int, name: str) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.dtype != np.bool_ or mask.ndim != 1 or mask.size != numel:
        raise ConfigError(
            f"{name}: mask must be a (numel,)=({numel},) bool array, got dtype {mask.dtype} "
            f"shape {mask.shape}"
        )
    return mask


@dataclass
class RawTensor:
    """Stored as is: biases, BatchNorm statistics, uncompressed layers."""

    name: str
    array: np.ndarray  # any numeric dtype, any shape
    dtype: str | None = None  # None = the array's dtype; "bfloat16" for uint16 bit patterns

    # Written out rather than generated only to type ``array`` as what it accepts (numpy
    # array-likes or torch tensors); it is always stored as the numpy array above.
    def __init__(self, name: str, array: npt.ArrayLike | torch.Tensor,
                 dtype: str | None = None) -> None:
        self.name = name
        self.array, self.dtype = _to_numpy(array, dtype)


@dataclass
class QuantizedTensor:
    """Codebook + entropy-coded cluster indices, optionally pruned (pruned positions -> 0)."""

    name: str
    shape: tuple[int, ...]
    dtype: str  # original dtype name: float32, float16, bfloat16 or float64
    codebook: np.ndarray  # (k,) float32 (float64 if dtype is float64)
    indices: np.ndarray  # (n_kept,) integers in [0, k), kept positions in row-major order
    mask: np.ndarray | None = None  # (numel,) bool, True = kept; None = dense
    numel: int = field(init=False)

    def __post_init__(self) -> None:
        self.shape = tuple(int(d) for d in self.shape)
        self.numel = int(np.prod(self.shape, dtype=np.int64))
        if self.dtype not in FLOAT_DTYPES:
            raise ConfigError(
                f"{self.name}: QuantizedTensor dtype {self.dtype!r}; expected one of "
                f"{FLOAT_DTYPES}"
            )
        codebook = np.asarray(self.codebook)
        if codebook.ndim != 1 or codebook.size < 1 or codebook.dtype.kind != "f":
            raise ConfigError(
                f"{self.name}: codebook must be a non-empty 1-D float array, got dtype "
                f"{codebook.dtype} shape {codebook.shape}"
            )
        if not np.all(np.isfinite(codebook)):
            raise ConfigError(f"{self.name}: codebook holds NaN or inf")
        self.codebook = codebook.astype(np.float64 if self.dtype == "float64" else np.float32)
        indices = np.asarray(self.indices).reshape(-1)
        if indices.dtype.kind not in "iu":
            raise ConfigError(f"{self.name}: indices must be integers, got {indices.dtype}")
        if self.mask is not None:
            self.mask = _check_mask(self.mask, self.numel, self.name)
        kept = self.numel if self.mask is None else int(self.mask.sum())
        if indices.size != kept:
            raise ConfigError(
                f"{self.name}: {indices.size} indices for {kept} kept positions; they must match"
            )
        if indices.size and (indices.min() < 0 or indices.max() >= codebook.size):
            raise ConfigError(
                f"{self.name}: indices span [{indices.min()}, {indices.max()}], expected "
                f"[0, k={codebook.size})"
            )
        self.indices = indices.astype(np.int64)

    @property
    def n_kept(self) -> int:
        return int(self.indices.size)


@dataclass
class PrunedTensor:
    """Pruning without quantization: kept values stored exactly."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    mask: np.ndarray  # (numel,) bool, True = kept
    values: np.ndarray  # (n_kept,) original dtype (uint16 bit patterns for bfloat16)
    numel: int = field(init=False)

    def __post_init__(self) -> None:
        self.shape = tuple(int(d) for d in self.shape)
        self.numel = int(np.prod(self.shape, dtype=np.int64))
        self.mask = _check_mask(self.mask, self.numel, self.name)
        self.values, self.dtype = _to_numpy(self.values, self.dtype)
        self.values = self.values.reshape(-1)
        if self.values.size != int(self.mask.sum()):
            raise ConfigError(
                f"{self.name}: {self.values.size} values for {int(self.mask.sum())} kept "
                f"positions; they must match"
            )

    @property
    def n_kept(self) -> int:
        return int(self.values.size)


Tensor = RawTensor | QuantizedTensor | PrunedTensor | DQTensor


def decode_tensor(tensor: Tensor) -> np.ndarray:
    """The dense array a tensor stands for, in its storage dtype, shaped. Bit-exact.

    QuantizedTensor: codebook cast to the dtype, gathered by indices, scattered into the kept
    positions (zeros elsewhere). DQTensor: the state machine's values (codec.dq), cast the
    same way. bfloat16 results are uint16 bit patterns.
    """
    if isinstance(tensor, RawTensor):
        return tensor.array
    if isinstance(tensor, DQTensor):
        values = dq_float_values(tensor.step, tensor.levels, tensor.cols, tensor.dtype)
        return cast_codebook(values, tensor.dtype).reshape(tensor.shape)
    storage = STORAGE_DTYPES[tensor.dtype]
    if isinstance(tensor, QuantizedTensor):
        values = cast_codebook(tensor.codebook, tensor.dtype)[tensor.indices]
    else:
        values = tensor.values
    if tensor.mask is None:
        return values.reshape(tensor.shape)
    dense = np.zeros(tensor.numel, dtype=storage)
    dense[tensor.mask] = values
    return dense.reshape(tensor.shape)


def cast_codebook(codebook: np.ndarray, dtype: str) -> np.ndarray:
    """(k,) float codebook -> (k,) storage array of ``dtype`` (round to nearest even)."""
    if dtype == "bfloat16":
        import torch

        as_bf16 = torch.from_numpy(np.asarray(codebook, dtype=np.float32)).to(torch.bfloat16)
        return as_bf16.view(torch.int16).numpy().view(np.uint16)
    return np.asarray(codebook).astype(STORAGE_DTYPES[dtype])


def to_torch(array: np.ndarray, dtype: str):
    """Storage array -> torch tensor of ``dtype`` (bfloat16 from its bit patterns)."""
    import torch

    if dtype == "bfloat16":
        return torch.from_numpy(array.view(np.int16).copy()).view(torch.bfloat16)
    return torch.from_numpy(np.array(array, copy=True))

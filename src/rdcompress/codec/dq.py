"""Dependent-quantization tensors (entry kind ``"d"``, format version 4).

A tensor quantized with dependent (trellis-coded) quantization, as in the NNC standard and
VVC, is stored as its integer levels ``k`` and one grid step; the decoder re-runs the 4-state
machine over each row (``cols`` weights, row-major; the state is 0 at every row start):

    state < 2 (quantizer Q0):   value = cast(float64(step) · 2k)
    state ≥ 2 (quantizer Q1):   value = cast(float64(step) · (2k − sgn k))
    next state = TRANSITIONS[state][k & 1],   TRANSITIONS = [[0, 2], [2, 0], [1, 3], [3, 1]]

``cast`` rounds to float32 (identity for float64 tensors), then to the tensor's dtype, as a
grid codebook does. Section 0 ("DQ parameters"): ``step`` (float32, or float64 for float64
tensors), the zigzag varint ``low`` (the level of symbol 0), the varint alphabet size ``k`` and
the varint row length ``cols``, nothing else; section 1: the index stream of the ``numel``
symbols ``level − low`` over the alphabet ``k``. The reader requires ``1 ≤ k ≤ max(numel, 1)``,
``|low|, |low + k − 1| ≤ 2**51`` (every multiple exact in float64), ``1 ≤ cols ≤ max(numel,
1)`` dividing ``numel``, a finite step and finite values at the largest multiples.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rdcompress.codec._bytes import ByteReader, encode_signed_varint, encode_varint
from rdcompress.errors import ConfigError, FormatError

TRANSITIONS = np.array([[0, 2], [2, 0], [1, 3], [3, 1]], dtype=np.int64)
MAX_DQ_LEVEL = 1 << 51  # |2k − sgn k| ≤ 2**52: every multiple exact in float64
DQ_DTYPES = ("float64", "float32", "float16", "bfloat16")


def dq_states(levels: np.ndarray, cols: int) -> np.ndarray:
    """(n,) state in use at each level (0 at every row start of ``cols`` levels)."""
    levels = np.asarray(levels, dtype=np.int64).reshape(-1)
    if not (cols >= 1 and levels.size % cols == 0):
        raise ConfigError(f"cols={cols!r} must be a positive divisor of the {levels.size} "
                          "levels")
    matrix = levels.reshape(-1, cols)
    states = np.zeros(matrix.shape, dtype=np.int64)
    state = np.zeros(matrix.shape[0], dtype=np.int64)
    for column in range(cols):  # rows advance together
        states[:, column] = state
        state = TRANSITIONS[state, matrix[:, column] & 1]
    return states.reshape(-1)


def dq_multiples(levels: np.ndarray, cols: int) -> np.ndarray:
    """(n,) integer multiple of the step each level decodes to: 2k in Q0, 2k − sgn k in Q1."""
    levels = np.asarray(levels, dtype=np.int64).reshape(-1)
    quantizer = dq_states(levels, cols) >> 1
    return 2 * levels - quantizer * np.sign(levels)


def dq_float_values(step: float, levels: np.ndarray, cols: int, dtype: str) -> np.ndarray:
    """(n,) float64(step) · multiple, rounded to float32 unless ``dtype`` is float64 (the
    values a float32 codebook would hold; the storage cast follows)."""
    values = np.float64(step) * dq_multiples(levels, cols).astype(np.float64)
    return values if dtype == "float64" else values.astype(np.float32)


@dataclass
class DQTensor:
    """Levels of a dependent quantizer on the grid ``step · Z`` (dense; rows of ``cols``)."""

    name: str
    shape: tuple[int, ...]
    dtype: str  # float32, float16, bfloat16 or float64
    step: float  # > 0; stored as float32 (float64 for float64 tensors)
    levels: np.ndarray  # (numel,) integers, row-major
    cols: int  # the state machine's row length: it restarts at 0 every cols levels
    numel: int = field(init=False)

    def __post_init__(self) -> None:
        self.shape = tuple(int(d) for d in self.shape)
        self.numel = int(np.prod(self.shape, dtype=np.int64))
        if self.dtype not in DQ_DTYPES:
            raise ConfigError(f"{self.name}: DQTensor dtype {self.dtype!r}; expected one of "
                              f"{DQ_DTYPES}")
        step_type = np.float64 if self.dtype == "float64" else np.float32
        step = float(step_type(self.step))
        if not (np.isfinite(step) and step > 0):
            raise ConfigError(f"{self.name}: step={self.step!r} must be finite and > 0 in "
                              f"{np.dtype(step_type).name}")
        self.step = step
        levels = np.asarray(self.levels).reshape(-1)
        if levels.dtype.kind not in "iu" or levels.size != self.numel or self.numel == 0:
            raise ConfigError(f"{self.name}: levels must be {self.numel} integers (one per "
                              f"element, at least one), got {levels.size} of {levels.dtype}")
        self.levels = levels.astype(np.int64)
        if int(np.abs(self.levels).max()) > MAX_DQ_LEVEL:
            raise ConfigError(f"{self.name}: a level exceeds 2**51 in magnitude")
        if self.alphabet_size > self.numel:
            raise ConfigError(f"{self.name}: levels span {self.alphabet_size} values, more than "
                              f"the {self.numel} elements (the format's bound); use a coarser "
                              "step or store the tensor raw")
        if not (isinstance(self.cols, (int, np.integer)) and 1 <= self.cols
                and self.numel % self.cols == 0):
            raise ConfigError(f"{self.name}: cols={self.cols!r} must divide numel="
                              f"{self.numel}")
        self.cols = int(self.cols)
        if not np.all(np.isfinite(self.float_values())):
            raise ConfigError(f"{self.name}: step × level overflows {self.dtype}")

    @property
    def low(self) -> int:
        return int(self.levels.min())

    @property
    def alphabet_size(self) -> int:
        return int(self.levels.max()) - self.low + 1

    @property
    def symbols(self) -> np.ndarray:
        """(numel,) the coded symbols: level − low, in [0, alphabet_size)."""
        return self.levels - self.low

    @property
    def n_kept(self) -> int:
        return self.numel

    def float_values(self) -> np.ndarray:
        with np.errstate(over="ignore"):
            return dq_float_values(self.step, self.levels, self.cols, self.dtype)


def _step_dtype(dtype: str) -> np.dtype:
    return np.dtype("<f8") if dtype == "float64" else np.dtype("<f4")


def encode_dq_parameters(tensor: DQTensor) -> bytes:
    low = tensor.low
    return (np.array([tensor.step], dtype=_step_dtype(tensor.dtype)).tobytes()
            + encode_signed_varint(low) + encode_varint(tensor.alphabet_size)
            + encode_varint(tensor.cols))


def decode_dq_parameters(reader: ByteReader, dtype: str, numel: int) -> tuple[float, int, int,
                                                                               int]:
    """(step, low, k, cols) of a DQ parameter section (consumed to its end), all checked."""
    step_dtype = _step_dtype(dtype)
    step = float(np.frombuffer(reader.read(step_dtype.itemsize), dtype=step_dtype)[0])
    low = reader.read_signed_varint()
    count = reader.read_varint()
    cols = reader.read_varint()
    reader.expect_end()
    where = reader.where
    if not 1 <= count <= max(numel, 1):
        raise FormatError(f"{where}: DQ alphabet of {count} levels; expected 1..{max(numel, 1)} "
                          f"for this tensor")
    if abs(low) > MAX_DQ_LEVEL or abs(low + count - 1) > MAX_DQ_LEVEL:
        raise FormatError(f"{where}: DQ levels {low}..{low + count - 1} exceed 2**51 in "
                          f"magnitude")
    if not 1 <= cols <= max(numel, 1) or numel % cols:
        raise FormatError(f"{where}: DQ row length {cols} does not divide the {numel} "
                          f"elements")
    if not (np.isfinite(step) and step > 0):
        raise FormatError(f"{where}: DQ step is {step}, expected a finite number > 0")
    largest = 2 * max(abs(low), abs(low + count - 1))
    with np.errstate(over="ignore"):
        extreme = np.float64(step) * np.float64(largest)
        if dtype != "float64":
            extreme = np.float32(extreme)
    if not np.isfinite(extreme):
        raise FormatError(f"{where}: DQ step {step} times level {largest // 2} overflows "
                          f"{dtype}")
    return step, low, count, cols


__all__ = ["DQTensor", "MAX_DQ_LEVEL", "TRANSITIONS", "decode_dq_parameters", "dq_float_values",
           "dq_multiples", "dq_states", "encode_dq_parameters"]

"""Compact uniform codebooks (entry kind ``"g"``, format version 3).

A codebook of ``k`` values that equals, bit for bit,

    codebook[j] = cast(float64(step) * (j0 + j)),   j = 0 .. k-1

is stored as ``(step, j0, k)`` instead of ``k`` values: ``step`` a float32 (float64 for
float64 tensors), ``j0`` an integer, ``cast`` rounding to float32 (identity for float64). The
product is one IEEE-754 double multiplication, correctly rounded on every platform, so the
codebook decodes identically forever. Uniform grids are what NNC uses and what rate allocators
produce; this saves ~4k bytes per layer.

Section layout: ``step`` (4 or 8 bytes, little-endian), zigzag varint ``j0``, varint ``k``.
The reader requires ``|j0|, |j0 + k - 1| <= 2**52`` (exact in float64), ``1 <= k <= max(numel,
1)`` (so a tiny section cannot declare a huge codebook) and finite values.
"""

from __future__ import annotations

import numpy as np

from rdcompress.codec._bytes import ByteReader, encode_signed_varint, encode_varint
from rdcompress.errors import FormatError

MAX_GRID_INDEX = 1 << 52


def _step_dtype(dtype: str) -> np.dtype:
    return np.dtype("<f8") if dtype == "float64" else np.dtype("<f4")


def grid_values(step: float, first: int, count: int, dtype: str) -> np.ndarray:
    """(count,) ``cast(float64(step) * (first + j))``: float64 for float64 tensors, else
    float32 (the QuantizedTensor's codebook dtype)."""
    multiples = (first + np.arange(count, dtype=np.int64)).astype(np.float64)
    values = np.float64(step) * multiples
    return values if dtype == "float64" else values.astype(np.float32)


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def find_grid(codebook: np.ndarray, dtype: str) -> tuple[float, int] | None:
    """(step, j0) if ``codebook`` (float32, or float64 for float64 tensors) is exactly a grid,
    else None. A rough step (the mean spacing) gives j0 = c[0] / step rounded (and its
    neighbours); the float steps nearest c[m] / (j0 + m), at the end m of largest magnitude,
    are then checked bit for bit, so a miss only costs bytes, never exactness."""
    count = len(codebook)
    if count < 2:
        return None
    step_type = _step_dtype(dtype).type
    with np.errstate(over="ignore", invalid="ignore"):
        rough = (float(codebook[-1]) - float(codebook[0])) / (count - 1)
        if not np.isfinite(rough) or rough == 0:
            return None
        nearest = round(float(codebook[0]) / rough)
    for first in (nearest, nearest - 1, nearest + 1):
        if abs(first) > MAX_GRID_INDEX or abs(first + count - 1) > MAX_GRID_INDEX:
            continue
        end = count - 1 if abs(first + count - 1) >= abs(first) else 0
        if first + end == 0:
            continue
        centre = step_type(float(codebook[end]) / (first + end))
        for step in _neighbours(centre, step_type):
            if np.isfinite(step) and step != 0 and _same_bits(
                    grid_values(float(step), first, count, dtype), codebook):
                return float(step), first
    return None


def _neighbours(centre, step_type, reach: int = 2) -> list:
    """``centre`` and the ``reach`` floats on each side of it."""
    out = [centre]
    for direction in (np.inf, -np.inf):
        value = centre
        for _ in range(reach):
            value = np.nextafter(value, step_type(direction))
            out.append(value)
    return out


def encode_grid(step: float, first: int, count: int, dtype: str) -> bytes:
    return (np.array([step], dtype=_step_dtype(dtype)).tobytes() + encode_signed_varint(first)
            + encode_varint(count))


def decode_grid(reader: ByteReader, dtype: str, numel: int) -> np.ndarray:
    """The (k,) codebook of a grid section (consumed to its end)."""
    step_dtype = _step_dtype(dtype)
    step = float(np.frombuffer(reader.read(step_dtype.itemsize), dtype=step_dtype)[0])
    first = reader.read_signed_varint()
    count = reader.read_varint()
    reader.expect_end()
    if not 1 <= count <= max(numel, 1):
        raise FormatError(f"{reader.where}: grid codebook of {count} values; expected 1.."
                          f"{max(numel, 1)} for this tensor")
    if abs(first) > MAX_GRID_INDEX or abs(first + count - 1) > MAX_GRID_INDEX:
        raise FormatError(f"{reader.where}: grid indices {first}..{first + count - 1} exceed "
                          f"2**52 in magnitude")
    if not np.isfinite(step):
        raise FormatError(f"{reader.where}: grid step is {step}")
    with np.errstate(over="ignore", invalid="ignore"):
        values = grid_values(step, first, count, dtype)
    if not np.all(np.isfinite(values)):
        raise FormatError(f"{reader.where}: the grid codebook holds inf")
    return values


__all__ = ["decode_grid", "encode_grid", "find_grid", "grid_values"]

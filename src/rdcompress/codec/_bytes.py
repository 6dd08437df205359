"""Byte-level helpers: LEB128 varints, a bounds-checked reader, bit packing.

Every read goes through :class:`ByteReader`, which raises :class:`FormatError` naming the
section being read instead of an ``IndexError`` deep inside numpy.
"""

from __future__ import annotations

import numpy as np

from rdcompress.errors import FormatError

# A varint longer than this encodes a number >= 2**63: no honest file holds one.
_MAX_VARINT_BYTES = 9


def encode_signed_varint(value: int) -> bytes:
    """A signed integer as the varint of its zigzag fold (0, -1, 1, -2, 2 -> 0, 1, 2, 3, 4)."""
    return encode_varint(2 * value if value >= 0 else -2 * value - 1)


def encode_varint(value: int) -> bytes:
    """Unsigned LEB128: 7 bits per byte, low group first, high bit = "more bytes follow"."""
    if value < 0:
        raise ValueError(f"varint value must be >= 0, got {value}")
    out = bytearray()
    while True:
        group = value & 0x7F
        value >>= 7
        if value:
            out.append(group | 0x80)
        else:
            out.append(group)
            return bytes(out)


def encode_varints(values: np.ndarray) -> bytes:
    """Concatenated varints of a 1-D array of non-negative integers."""
    return b"".join(encode_varint(int(v)) for v in values)


class ByteReader:
    """Sequential reader over one section; ``where`` names it in error messages."""

    def __init__(self, data: bytes | memoryview, where: str) -> None:
        self.data = memoryview(data)
        self.pos = 0
        self.where = where

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos

    def read(self, size: int) -> memoryview:
        if size < 0 or self.pos + size > len(self.data):
            raise FormatError(
                f"{self.where}: needs {size} more bytes at offset {self.pos} but only "
                f"{self.remaining} remain; the file is corrupted"
            )
        chunk = self.data[self.pos:self.pos + size]
        self.pos += size
        return chunk

    def read_u8(self) -> int:
        return int(self.read(1)[0])

    def read_varint(self) -> int:
        value = 0
        for shift_index in range(_MAX_VARINT_BYTES):
            byte = self.read_u8()
            value |= (byte & 0x7F) << (7 * shift_index)
            if not byte & 0x80:
                return value
        raise FormatError(f"{self.where}: varint longer than {_MAX_VARINT_BYTES} bytes")

    def read_signed_varint(self) -> int:
        """The inverse of ``encode_signed_varint``."""
        zigzag = self.read_varint()
        return zigzag // 2 if zigzag % 2 == 0 else -(zigzag + 1) // 2

    def read_varints(self, count: int) -> np.ndarray:
        return np.array([self.read_varint() for _ in range(count)], dtype=np.int64)

    def rest(self) -> memoryview:
        return self.read(self.remaining)

    def expect_end(self) -> None:
        if self.remaining:
            raise FormatError(f"{self.where}: {self.remaining} unexpected trailing bytes")


def pack_bits(bits: np.ndarray) -> bytes:
    """(n,) bool/0-1 array -> ceil(n/8) bytes, first bit in the most significant position."""
    return np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes()


def unpack_bits(data: bytes | memoryview, count: int, where: str) -> np.ndarray:
    """Inverse of :func:`pack_bits`: (count,) uint8 of 0/1; checks the byte count exactly."""
    expected = (count + 7) // 8
    if len(data) != expected:
        raise FormatError(
            f"{where}: expected {expected} bytes for {count} bits, found {len(data)}"
        )
    return np.unpackbits(np.frombuffer(data, dtype=np.uint8), count=count)


# Rice parameters tried when coding a table of small integers (frequency / code-length tables).
_MAX_RICE_PARAMETER = 40


def _rice_bits(values: np.ndarray, parameter: int) -> str:
    low_mask = (1 << parameter) - 1
    return "".join(
        "1" * (int(v) >> parameter) + "0" + (format(int(v) & low_mask, f"0{parameter}b")
                                             if parameter else "")
        for v in values
    )


def encode_uint_table(values: np.ndarray) -> bytes:
    """A table of non-negative integers, Rice-coded with the best parameter r.

    Layout: u8 r, then per value: (v >> r) ones, a zero, the r low bits of v (MSB first); bits
    packed MSB first, zero padded to a byte. Frequency and code-length tables are short and
    smooth, so this costs a few bits per entry instead of a varint's 8 or 16.
    """
    values = np.asarray(values, dtype=np.int64)
    if values.size == 0:
        return bytes([0])
    top = int(values.max())
    best = None
    for parameter in range(0, min(top.bit_length() + 1, _MAX_RICE_PARAMETER) + 1):
        bits = int(((values >> parameter) + 1 + parameter).sum())
        if best is None or bits < best[0]:
            best = (bits, parameter)
    assert best is not None
    parameter = best[1]
    text = _rice_bits(values, parameter)
    bit_array = np.frombuffer(text.encode("ascii"), dtype=np.uint8) - ord("0")
    return bytes([parameter]) + pack_bits(bit_array)


def decode_uint_table(reader: ByteReader, count: int, max_value: int) -> np.ndarray:
    """Inverse of :func:`encode_uint_table`: (count,) int64; consumes exactly its bytes.

    Every value must be <= ``max_value``. Bounds are checked before anything is allocated:
    an entry costs at least 1 + r bits, so ``count`` entries need count * (1 + r) bits, and
    at most count * ((max_value >> r) + 1 + r) bits are ever unpacked.
    """
    parameter = reader.read_u8()
    if parameter > _MAX_RICE_PARAMETER:
        raise FormatError(f"{reader.where}: Rice parameter {parameter} is out of range")
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    if count * (1 + parameter) > 8 * reader.remaining:
        raise FormatError(
            f"{reader.where}: a table of {count} entries needs at least "
            f"{count * (1 + parameter)} bits, only {8 * reader.remaining} remain"
        )
    start = reader.pos
    most_bits = count * ((max_value >> parameter) + 1 + parameter)
    window = reader.data[start:start + min(reader.remaining, (most_bits + 7) // 8)]
    bits = np.unpackbits(np.frombuffer(window, dtype=np.uint8))
    zeros = np.flatnonzero(bits == 0)  # unary terminators are zeros
    values = np.empty(count, dtype=np.int64)
    position, zero_index = 0, 0
    low_weights = 1 << np.arange(parameter - 1, -1, -1, dtype=np.int64)
    for index in range(count):
        # Skip zeros that lie inside earlier low-bit fields.
        zero_index = int(np.searchsorted(zeros, position, side="left"))
        if zero_index == len(zeros):
            raise FormatError(f"{reader.where}: table ends after {index} of {count} entries")
        terminator = int(zeros[zero_index])
        end = terminator + 1 + parameter
        if end > len(bits):
            raise FormatError(f"{reader.where}: table ends after {index} of {count} entries")
        low = int(bits[terminator + 1:end] @ low_weights) if parameter else 0
        value = ((terminator - position) << parameter) | low
        if value > max_value:
            raise FormatError(
                f"{reader.where}: table entry {index} is {value}, above the maximum {max_value}"
            )
        values[index] = value
        position = end
    reader.pos = start + (position + 7) // 8
    return values

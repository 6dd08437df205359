"""The IDX format (MNIST, Fashion-MNIST): parse and encode, gzip-compressed or raw.

Layout (big-endian): 2 zero bytes, a dtype code (0x08 ubyte, 0x09 byte, 0x0B int16, 0x0C int32,
0x0D float32, 0x0E float64), the number of dimensions d, then d uint32 sizes, then exactly
prod(sizes) items. Anything else -- a short header, a foreign magic, a byte count that is not
exactly the one the header announces -- is a CorruptFileError naming the file.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from rdcompress.errors import CorruptFileError

IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {dtype: code for code, dtype in IDX_DTYPES.items()}  # keys are big-endian
GZIP_MAGIC = b"\x1f\x8b"
FIX = "Delete it and download it again, or replace it with an intact copy."


def parse_idx(content: bytes, source: str) -> np.ndarray:
    """Decode IDX bytes into an array of the announced dtype and shape (native byte order)."""
    if len(content) < 4:
        raise CorruptFileError(f"{source}: {len(content)} bytes is too short for an IDX "
                               f"header (4 bytes at least). {FIX}")
    zero0, zero1, code, ndim = content[0], content[1], content[2], content[3]
    if zero0 != 0 or zero1 != 0 or code not in IDX_DTYPES:
        raise CorruptFileError(
            f"{source}: not an IDX file (magic {content[:4].hex()}, expected 0000 + a dtype code "
            f"in {sorted(hex(c) for c in IDX_DTYPES)} + ndim). {FIX}"
        )
    header_bytes = 4 + 4 * ndim
    if ndim == 0 or len(content) < header_bytes:
        raise CorruptFileError(f"{source}: IDX header announces {ndim} dimensions but the file "
                               f"has {len(content)} bytes. {FIX}")
    shape = struct.unpack(f">{ndim}I", content[4:header_bytes])
    dtype = IDX_DTYPES[code]
    expected = header_bytes + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(content) != expected:
        state = "truncated" if len(content) < expected else "has trailing bytes"
        raise CorruptFileError(
            f"{source}: IDX header announces shape {shape} ({expected} bytes) but the file has "
            f"{len(content)} bytes: it {state}. {FIX}"
        )
    array = np.frombuffer(content, dtype=dtype, offset=header_bytes).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def encode_idx(array: np.ndarray) -> bytes:
    """The IDX bytes of ``array`` (inverse of ``parse_idx``)."""
    array = np.asarray(array)
    big = array.dtype.newbyteorder(">") if array.dtype.itemsize > 1 else array.dtype
    if big not in _CODES:
        raise CorruptFileError(f"IDX cannot store dtype {array.dtype}; expected one of "
                               f"uint8, int8, int16, int32, float32, float64")
    header = bytes([0, 0, _CODES[big], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(big).tobytes()


def read_bytes(path: Path) -> bytes:
    """The decompressed content of ``path`` (gzip detected by its magic, not the name)."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise CorruptFileError(f"{path}: cannot read ({error}). {FIX}") from error
    if raw[:2] != GZIP_MAGIC:
        if path.suffix == ".gz":
            raise CorruptFileError(f"{path}: named .gz but not gzip data (starts with "
                                   f"{raw[:4].hex()}). {FIX}")
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as error:  # truncated stream, bad CRC or length
        raise CorruptFileError(f"{path}: broken gzip stream ({error}). {FIX}") from error


def read_idx(path: Path) -> tuple[np.ndarray, bytes]:
    """(array, decompressed content) of an IDX file, raw or gzip-compressed."""
    content = read_bytes(path)
    return parse_idx(content, str(path)), content

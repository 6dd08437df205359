"""The ``.rdz`` preamble and JSON header: layout, limits and every structural check.

Nothing read from a file is used before it is checked here: versions, lengths, JSON depth and
number sizes, entry keys, kinds, dtypes, shapes (ndim and element counts as exact Python
integers, so nothing wraps around) and the whole file's element budget, which caps the decoded
size per byte of input. The content CRC (version 2) is defined here too (docs/rdz-format.md).
"""

from __future__ import annotations

import json
import math
import re
import struct
import zlib

import numpy as np

from rdcompress.codec.tensors import FLOAT_DTYPES, STORAGE_DTYPES
from rdcompress.errors import FormatError

MAGIC = b"\x89RDZ"
# The newest version this release reads and writes. A writer writes the lowest version able to
# express a file: 2, or 3 when it uses the context coder (stream coder 4) or grid codebooks,
# or 4 when it holds a dependent-quantization entry (kind "d").
FORMAT_VERSION = 4
BASE_VERSION = 2
CTX_VERSION = 3
DQ_VERSION = 4
SUPPORTED_VERSIONS = (1, 2, 3, 4)
# magic, version, header encoding, header length, file CRC (+ content CRC from version 2)
PREAMBLES = {1: struct.Struct("<4sBBII"), 2: struct.Struct("<4sBBIII"),
             3: struct.Struct("<4sBBIII"), 4: struct.Struct("<4sBBIII")}
PREAMBLE_SIZES = {version: preamble.size for version, preamble in PREAMBLES.items()}  # 14, 18
MIN_FILE_BYTES = PREAMBLE_SIZES[1]
MAX_HEADER_BYTES = 16 << 20  # stored header cap (a header is a few KiB in practice)
MAX_INFLATED_HEADER_BYTES = 64 << 20  # guard against deflate bombs
MAX_JSON_DEPTH = 64  # the header nests 4 deep; manifests a few more
MAX_NDIM = 32
# Decoded-size cap: the elements of all entries together may not exceed
# ELEMENT_ALLOWANCE + ELEMENTS_PER_FILE_BYTE * file bytes (checked before decoding anything).
ELEMENT_ALLOWANCE = 1 << 16
ELEMENTS_PER_FILE_BYTE = 1024
KIND_CODES = {"raw": "r", "quantized": "q", "pruned": "p", "grid": "g", "dq": "d"}
SECTION_COUNTS = {"r": (1,), "q": (2, 3), "p": (2,), "g": (2, 3), "d": (2,)}
# Entry kinds each version may use ("g": quantized with a grid codebook, version 3; "d":
# dependent quantization, version 4).
VERSION_KINDS = {1: ("r", "q", "p"), 2: ("r", "q", "p"), 3: ("r", "q", "p", "g"),
                 4: ("r", "q", "p", "g", "d")}


def element_budget(file_bytes: int) -> int:
    """The most elements a file of ``file_bytes`` bytes may decode to (all entries)."""
    return ELEMENT_ALLOWANCE + ELEMENTS_PER_FILE_BYTE * file_bytes


def check_preamble(data: bytes) -> tuple[int, int, int, int]:
    """(version, header encoding, header length, preamble size) of a plausible file."""
    if len(data) < MIN_FILE_BYTES:
        raise FormatError(
            f"truncated: the file has {len(data)} bytes, fewer than the {MIN_FILE_BYTES}-byte "
            f"preamble of an .rdz file"
        )
    magic, version, header_code, header_length, _ = PREAMBLES[1].unpack_from(data)
    if magic != MAGIC:
        raise FormatError(f"not an .rdz file: magic bytes {magic!r}, expected {MAGIC!r}"
                          f"{_foreign_hint(data)}")
    if version > FORMAT_VERSION:
        raise FormatError(
            f"format version {version} is newer than this rdcompress supports "
            f"({FORMAT_VERSION}); upgrade rdcompress (pip install -U rdcompress)"
        )
    if version not in SUPPORTED_VERSIONS:
        raise FormatError(f"format version {version} is invalid; expected 1..{FORMAT_VERSION}")
    preamble_size = PREAMBLE_SIZES[version]
    if len(data) < preamble_size:
        raise FormatError(
            f"truncated: the file has {len(data)} bytes, fewer than the {preamble_size}-byte "
            f"preamble of a version-{version} .rdz file"
        )
    if header_length > MAX_HEADER_BYTES:
        raise FormatError(
            f"header length {header_length} exceeds the cap of {MAX_HEADER_BYTES} bytes; "
            f"the file is corrupted or hostile"
        )
    if preamble_size + header_length > len(data):
        raise FormatError(
            f"truncated: the header needs {header_length} bytes after the preamble but only "
            f"{len(data) - preamble_size} remain"
        )
    return version, header_code, header_length, preamble_size


def _foreign_hint(data: bytes) -> str:
    if data[:2] == b"PK":
        return " (this looks like a zip / torch.save file; load it with torch.load)"
    if data[:4] == b"\x89PNG":
        return " (this looks like a PNG image)"
    if data[:1] == b"\x80":
        return " (this looks like a pickle; rdcompress never unpickles)"
    if len(data) >= 9 and data[8:9] == b"{":
        return " (this looks like a .safetensors file)"
    return ""


# ----------------------------------------------------------------------------- JSON


def _reject_constant(name: str):
    raise FormatError(f"the header holds {name}, which is not JSON; the file is corrupted")


def _finite_float(text: str) -> float:
    value = float(text)
    if not np.isfinite(value):
        raise FormatError(f"the header holds the number {text[:40]}, which overflows a float; "
                          f"the file is corrupted")
    return value


def _unique_keys(pairs: list) -> dict:
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        repeated = sorted({key for key in keys if keys.count(key) > 1})
        raise FormatError(f"the header repeats the key(s) {repeated[:5]} in one object; the "
                          f"file is corrupted or was edited")
    return dict(pairs)


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def _depth(text: str) -> int:
    """Deepest nesting of [ and { outside strings (vectorized; no recursion)."""
    skeleton = np.frombuffer(_JSON_STRING.sub("", text).encode("utf-8"), dtype=np.uint8)
    steps = (np.isin(skeleton, (ord("["), ord("{"))).astype(np.int64)
             - np.isin(skeleton, (ord("]"), ord("}"))))
    return int(np.cumsum(steps).max(initial=0))


def parse_header(raw: bytes, header_code: int) -> dict:
    if header_code == 1:
        inflater = zlib.decompressobj(-15)
        try:
            raw = inflater.decompress(raw, MAX_INFLATED_HEADER_BYTES)
        except zlib.error as error:
            raise FormatError(f"the header cannot be inflated: {error}") from None
        if inflater.unconsumed_tail or not inflater.eof:
            raise FormatError("the deflated header is incomplete or larger than the cap")
    elif header_code != 0:
        raise FormatError(f"unknown header encoding {header_code}; expected 0 (JSON) or 1")
    try:
        text = bytes(raw).decode("utf-8")
    except UnicodeDecodeError as error:
        raise FormatError(f"the header is not valid JSON: {error}") from None
    depth = _depth(text)
    if depth > MAX_JSON_DEPTH:
        raise FormatError(f"the header nests {depth} levels deep, more than the limit of "
                          f"{MAX_JSON_DEPTH}; the file is corrupted or hostile")
    try:
        header = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float,
                            object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as error:
        raise FormatError(f"the header is not valid JSON: {error}") from None
    except (ValueError, RecursionError) as error:  # e.g. an integer of 5,000 digits
        raise FormatError(f"the header holds a value this reader refuses: {error}") from None
    if not isinstance(header, dict):
        raise FormatError(f"the header must be a JSON object, got {type(header).__name__}")
    return header


# ----------------------------------------------------------------------------- entries


def check_header(header: dict, version: int = BASE_VERSION) -> tuple[dict, list[dict]]:
    """(manifest, entries) of a header whose every entry is well formed (no sizes yet)."""
    if set(header) != {"m", "t"}:
        raise FormatError(f"header keys {sorted(header)}, expected ['m', 't']")
    manifest, entries = header["m"], header["t"]
    if not isinstance(manifest, dict):
        raise FormatError(f"the manifest must be a JSON object, got {type(manifest).__name__}")
    if not isinstance(entries, list):
        raise FormatError(f"the tensor table must be a JSON list, got {type(entries).__name__}")
    names = set()
    for index, entry in enumerate(entries):
        check_entry(index, entry, version)
        if entry["n"] in names:
            raise FormatError(f"tensor {entry['n']!r} appears twice in the header")
        names.add(entry["n"])
    return manifest, entries


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def check_entry(index: int, entry, version: int = BASE_VERSION) -> None:
    where = f"tensor entry {index}"
    if not isinstance(entry, dict) or set(entry) != {"n", "t", "d", "s", "l"}:
        raise FormatError(f"{where}: expected an object with keys n, t, d, s, l, got {entry!r}"[
            :300])
    if not isinstance(entry["n"], str):
        raise FormatError(f"{where}: name must be a string, got {entry['n']!r}"[:300])
    where = f"tensor {entry['n']!r}"
    kinds = VERSION_KINDS.get(version, VERSION_KINDS[BASE_VERSION])
    if not isinstance(entry["t"], str) or entry["t"] not in kinds:
        raise FormatError(f"{where}: unknown kind {entry['t']!r}; expected one of "
                          f"{', '.join(kinds)} in format version {version}"[:300])
    allowed = FLOAT_DTYPES if entry["t"] in ("q", "g", "d") else tuple(STORAGE_DTYPES)
    if not isinstance(entry["d"], str) or entry["d"] not in allowed:
        raise FormatError(f"{where}: dtype {entry['d']!r} is not one of {list(allowed)}"[:300])
    shape = entry["s"]
    if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
        raise FormatError(
            f"{where}: shape must be a list of non-negative integers, got {shape!r}"[:300])
    if len(shape) > MAX_NDIM:
        raise FormatError(f"{where}: shape has {len(shape)} dimensions, at most {MAX_NDIM}")
    lengths = entry["l"]
    if not isinstance(lengths, list) or len(lengths) not in SECTION_COUNTS[entry["t"]]:
        raise FormatError(
            f"{where}: expected {' or '.join(map(str, SECTION_COUNTS[entry['t']]))} section "
            f"lengths, got {lengths!r}"[:300]
        )
    if not all(_is_count(length) for length in lengths):
        raise FormatError(
            f"{where}: section lengths must be non-negative integers, got {lengths!r} "
            f"(sections would overlap)"[:300]
        )


def numel_of(shape) -> int:
    """Exact element count (Python integers: a shape [2**32, 2**32] does not wrap to 0)."""
    return math.prod(int(d) for d in shape)


def check_element_budget(entries: list[dict], file_bytes: int) -> None:
    """All entries' elements within :func:`element_budget`; also each shape's extent (the
    product of its non-zero dimensions: numpy and torch reject [0, 2**40, 2**40])."""
    total = 0
    for entry in entries:
        extent = math.prod(max(int(d), 1) for d in entry["s"])
        if extent > element_budget(file_bytes):
            raise FormatError(
                f"tensor {entry['n']!r}: shape {entry['s']} spans {extent} positions, more "
                f"than a {file_bytes}-byte file may hold ({element_budget(file_bytes)}); the "
                f"file is corrupted or hostile"[:400]
            )
        total += numel_of(entry["s"])
        if total > element_budget(file_bytes):
            raise FormatError(
                f"tensor {entry['n']!r}: the header declares {total} elements up to this "
                f"entry, more than a {file_bytes}-byte file may hold ({ELEMENT_ALLOWANCE} + "
                f"{ELEMENTS_PER_FILE_BYTE} per byte = {element_budget(file_bytes)}); the file "
                f"is corrupted or hostile"[:400]
            )


# ----------------------------------------------------------------------------- content CRC


def dumps(value) -> bytes:
    """The compact JSON the writer stores (and the content CRC hashes)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode("ascii")


def content_crc(manifest_json: bytes, records) -> int:
    """CRC-32 of the manifest's compact JSON, then per tensor in entry order the compact JSON
    of [name, dtype, shape] and its decoded elements (storage dtype, little-endian, C order).

    ``records``: iterable of (name, dtype name, shape, dense storage array).
    """
    crc = zlib.crc32(manifest_json)
    for name, dtype, shape, dense in records:
        crc = zlib.crc32(dumps([name, dtype, [int(d) for d in shape]]), crc)
        crc = zlib.crc32(np.ascontiguousarray(dense).reshape(-1).view(np.uint8).data, crc)
    return crc

"""The ``.rdz`` container: preamble, JSON header, data buffer (spec: docs/rdz-format.md).

    offset 0   4 bytes  magic b"\\x89RDZ"
    offset 4   u8       format version (1)
    offset 5   u8       header encoding: 0 = JSON (UTF-8), 1 = raw DEFLATE of that JSON
    offset 6   u32 LE   stored header length H
    offset 10  u32 LE   CRC32 of bytes [0, 10) + [14, end): everything but the CRC itself
    offset 14  H bytes  header: {"m": manifest, "t": [tensor entries]}
    offset 14+H         data buffer: every tensor's sections, in entry order, back to back

Each entry gives its sections' lengths ("l"); offsets are their running sums relative to the
data buffer, so holes and overlaps cannot be expressed; the lengths must sum to the data
buffer's size exactly. Reading validates everything and decodes every tensor before returning
anything: a bad file raises :class:`FormatError` and yields no partial model.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rdcompress._io import atomic_write
from rdcompress.codec._bytes import ByteReader
from rdcompress.codec.positions import decode_positions, encode_positions
from rdcompress.codec.streams import decode_stream, encode_stream
from rdcompress.codec.summary import RdzSummary, summarize_tensor
from rdcompress.codec.tensors import (
    FLOAT_DTYPES,
    STORAGE_DTYPES,
    PrunedTensor,
    QuantizedTensor,
    RawTensor,
    Tensor,
    cast_codebook,
    decode_tensor,
)
from rdcompress.errors import ConfigError, FormatError

MAGIC = b"\x89RDZ"
FORMAT_VERSION = 1
PREAMBLE = struct.Struct("<4sBBII")  # magic, version, header encoding, header length, crc32
PREAMBLE_SIZE = PREAMBLE.size  # 14
MAX_HEADER_BYTES = 16 << 20  # stored header cap (a header is a few KiB in practice)
MAX_INFLATED_HEADER_BYTES = 64 << 20  # guard against deflate bombs
KIND_CODES = {"raw": "r", "quantized": "q", "pruned": "p"}
SECTION_COUNTS = {"r": (1,), "q": (2, 3), "p": (2,)}


@dataclass
class RdzContents:
    manifest: dict
    tensors: dict[str, np.ndarray]  # decoded, exact; bfloat16 as uint16 bit patterns
    dtypes: dict[str, str]  # name -> dtype name ("bfloat16" where the array holds bit patterns)
    format_version: int

    def to_torch(self) -> dict:
        """{name: torch.Tensor} with the original dtypes (bfloat16 restored)."""
        from rdcompress.codec.tensors import to_torch

        return {name: to_torch(array, self.dtypes[name]) for name, array in self.tensors.items()}


# ----------------------------------------------------------------------------- writing


def encode_rdz(
    tensors: Sequence[Tensor], manifest: dict, coder: str = "ans", header_encoding: str = "auto"
) -> tuple[bytes, RdzSummary]:
    """The bytes of a ``.rdz`` file and its summary (pure; :func:`write_rdz` writes them)."""
    if coder not in ("ans", "huffman"):
        raise ConfigError(f"coder={coder!r} is not supported; expected 'ans' or 'huffman'")
    if header_encoding not in ("auto", "json", "deflate"):
        raise ConfigError(f"header_encoding={header_encoding!r}; expected auto, json or deflate")
    if not isinstance(manifest, dict):
        raise ConfigError(f"manifest must be a dict, got {type(manifest).__name__}")
    names = [t.name for t in tensors]
    if len(set(names)) != len(names):
        duplicates = sorted({n for n in names if names.count(n) > 1})
        raise ConfigError(f"tensor names must be unique; repeated: {duplicates}")
    entries, sections, summaries = [], [], []
    for tensor in tensors:
        entry, tensor_sections, position_method, index_coder = _encode_tensor(tensor, coder)
        entries.append(entry)
        sections.extend(tensor_sections)
        summaries.append(summarize_tensor(tensor, entry["l"], position_method, index_coder))
    manifest_json = _dumps(manifest)
    header = _encode_header(_dumps({"m": manifest, "t": entries}), header_encoding)
    header_code, header_bytes = header
    body = header_bytes + b"".join(sections)
    head = struct.pack("<4sBBI", MAGIC, FORMAT_VERSION, header_code, len(header_bytes))
    crc = zlib.crc32(body, zlib.crc32(head))
    data = head + struct.pack("<I", crc) + body
    summary = RdzSummary(len(data), PREAMBLE_SIZE + len(header_bytes), len(manifest_json),
                         FORMAT_VERSION, summaries, _composites(manifest))
    return data, summary


def write_rdz(
    path: str | os.PathLike[str], tensors: Sequence[Tensor], manifest: dict,
    coder: str = "ans", header_encoding: str = "auto",
) -> RdzSummary:
    """Encode ``tensors`` and write the file atomically (no half-written file ever appears)."""
    data, summary = encode_rdz(tensors, manifest, coder, header_encoding)
    with atomic_write(path, "wb") as handle:
        handle.write(data)
    return summary


def _dumps(value) -> bytes:
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=True,
                          allow_nan=False).encode("ascii")
    except (TypeError, ValueError) as error:
        raise ConfigError(
            f"the manifest must be plain JSON (no NaN, no objects): {error}"
        ) from None


def _encode_header(json_bytes: bytes, header_encoding: str) -> tuple[int, bytes]:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)  # raw deflate: no zlib wrapper bytes
    deflated = compressor.compress(json_bytes) + compressor.flush()
    deflate_pays = len(deflated) < len(json_bytes)
    if header_encoding == "json" or (header_encoding == "auto" and not deflate_pays):
        return 0, json_bytes
    return 1, deflated


def _encode_tensor(tensor: Tensor, coder: str) -> tuple[dict, list[bytes], str | None, str | None]:
    if isinstance(tensor, RawTensor):
        sections = [tensor.array.tobytes()]
        entry = {"n": tensor.name, "t": "r", "d": tensor.dtype, "s": list(tensor.array.shape)}
        position_method = index_coder = None
    elif isinstance(tensor, QuantizedTensor):
        # The codebook is stored already cast to the tensor's dtype: decoding casts anyway,
        # so this is lossless and halves the codebook for 16-bit dtypes.
        codebook = cast_codebook(tensor.codebook, tensor.dtype).tobytes()
        stream = encode_stream(tensor.indices, tensor.codebook.size, coder)
        sections = [codebook, stream]
        index_coder = _stream_coder_name(stream)
        position_method = None
        if tensor.mask is not None:
            sections.append(encode_positions(tensor.mask, coder))
            position_method = _position_method_name(sections[-1])
        entry = {"n": tensor.name, "t": "q", "d": tensor.dtype, "s": list(tensor.shape)}
    elif isinstance(tensor, PrunedTensor):
        sections = [encode_positions(tensor.mask, coder), tensor.values.tobytes()]
        position_method, index_coder = _position_method_name(sections[0]), None
        entry = {"n": tensor.name, "t": "p", "d": tensor.dtype, "s": list(tensor.shape)}
    else:
        raise ConfigError(
            f"cannot store {type(tensor).__name__}; expected RawTensor, QuantizedTensor or "
            f"PrunedTensor"
        )
    entry["l"] = [len(s) for s in sections]
    return entry, sections, position_method, index_coder


def _stream_coder_name(stream: bytes) -> str:
    from rdcompress.codec.streams import CODER_NAMES

    return CODER_NAMES[stream[0]]


def _position_method_name(section: bytes) -> str:
    from rdcompress.codec.positions import POSITION_METHODS

    return POSITION_METHODS[section[0]]


# ----------------------------------------------------------------------------- reading


@dataclass
class _Decoded:
    manifest: dict
    tensors: list[Tensor]
    lengths: list[list[int]]
    position_methods: list[str | None]
    index_coders: list[str | None]
    header_bytes: int
    file_bytes: int


def read_rdz(path: str | os.PathLike[str]) -> RdzContents:
    """Read and fully validate a ``.rdz`` file; every tensor decoded bit-exactly."""
    decoded = decode_rdz(_read_file(path))
    tensors = {t.name: decode_tensor(t) for t in decoded.tensors}
    dtypes = {t.name: str(t.dtype) for t in decoded.tensors}
    return RdzContents(decoded.manifest, tensors, dtypes, FORMAT_VERSION)


def read_rdz_tensors(path: str | os.PathLike[str]) -> tuple[dict, list[Tensor]]:
    """The manifest and the stored tensor objects (codebooks, indices, masks) themselves."""
    decoded = decode_rdz(_read_file(path))
    return decoded.manifest, decoded.tensors


def inspect_rdz(path: str | os.PathLike[str]) -> RdzSummary:
    """Summary of a file (decodes it fully, so the entropies are those of the real streams)."""
    decoded = decode_rdz(_read_file(path))
    summaries = [
        summarize_tensor(t, lengths, method, coder) for t, lengths, method, coder in zip(
            decoded.tensors, decoded.lengths, decoded.position_methods, decoded.index_coders,
            strict=True)
    ]
    return RdzSummary(decoded.file_bytes, decoded.header_bytes, len(_dumps(decoded.manifest)),
                      FORMAT_VERSION, summaries, _composites(decoded.manifest))


def _composites(manifest: dict) -> dict:
    """The manifest's composite recipes whose parts are well formed (for the byte accounting)."""
    composites = manifest.get("composites") if isinstance(manifest, dict) else None
    if not isinstance(composites, dict):
        return {}
    return {name: recipe for name, recipe in composites.items()
            if isinstance(recipe, dict) and isinstance(recipe.get("parts"), list)
            and isinstance(recipe.get("shape"), list) and recipe.get("dtype") in FLOAT_DTYPES}


def _read_file(path: str | os.PathLike[str]) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        raise FormatError(f"{os.fspath(path)}: no such file") from None
    except IsADirectoryError:
        raise FormatError(f"{os.fspath(path)}: is a directory, expected a .rdz file") from None


def decode_rdz(data: bytes) -> _Decoded:
    """Validate and decode a whole file held in memory (see the module doc for the order)."""
    header_code, header_length = _check_preamble(data)
    header_end = PREAMBLE_SIZE + header_length
    stored_crc = struct.unpack_from("<I", data, 10)[0]
    computed_crc = zlib.crc32(data[PREAMBLE_SIZE:], zlib.crc32(data[:10]))
    if stored_crc != computed_crc:
        _raise_truncated_if_short(data, header_code, header_end)
        raise FormatError(
            f"checksum mismatch (stored CRC32 {stored_crc:08x}, computed {computed_crc:08x}): "
            f"the file is corrupted; re-create or re-download it"
        )
    header = _parse_header(data[PREAMBLE_SIZE:header_end], header_code)
    manifest, entries = _check_header(header)
    buffer = memoryview(data)[header_end:]
    total = sum(sum(entry["l"]) for entry in entries)
    if total > len(buffer):
        raise FormatError(
            f"sections end at byte {total} of the data buffer but it holds {len(buffer)} bytes "
            f"(section out of range)"
        )
    if total < len(buffer):
        raise FormatError(
            f"{len(buffer) - total} bytes of the data buffer belong to no section (a hole)"
        )
    decoded = _Decoded(manifest, [], [], [], [], header_end, len(data))
    offset = 0
    for entry in entries:
        sections = []
        for length in entry["l"]:
            sections.append(buffer[offset:offset + length])
            offset += length
        tensor, method, coder = _decode_tensor(entry, sections)
        decoded.tensors.append(tensor)
        decoded.lengths.append(list(entry["l"]))
        decoded.position_methods.append(method)
        decoded.index_coders.append(coder)
    return decoded


def _check_preamble(data: bytes) -> tuple[int, int]:
    if len(data) < PREAMBLE_SIZE:
        raise FormatError(
            f"truncated: the file has {len(data)} bytes, fewer than the {PREAMBLE_SIZE}-byte "
            f"preamble of an .rdz file"
        )
    magic, version, header_code, header_length, _ = PREAMBLE.unpack_from(data)
    if magic != MAGIC:
        raise FormatError(f"not an .rdz file: magic bytes {magic!r}, expected {MAGIC!r}"
                          f"{_foreign_hint(data)}")
    if version > FORMAT_VERSION:
        raise FormatError(
            f"format version {version} is newer than this rdcompress supports "
            f"({FORMAT_VERSION}); upgrade rdcompress (pip install -U rdcompress)"
        )
    if version < 1:
        raise FormatError(f"format version {version} is invalid; expected 1..{FORMAT_VERSION}")
    if header_length > MAX_HEADER_BYTES:
        raise FormatError(
            f"header length {header_length} exceeds the cap of {MAX_HEADER_BYTES} bytes; "
            f"the file is corrupted or hostile"
        )
    if PREAMBLE_SIZE + header_length > len(data):
        raise FormatError(
            f"truncated: the header needs {header_length} bytes after the preamble but only "
            f"{len(data) - PREAMBLE_SIZE} remain"
        )
    return header_code, header_length


def _foreign_hint(data: bytes) -> str:
    if data[:2] == b"PK":
        return " (this looks like a zip / torch.save file; load it with torch.load)"
    if len(data) >= 9 and data[8:9] == b"{":
        return " (this looks like a .safetensors file)"
    return ""


def _raise_truncated_if_short(data: bytes, header_code: int, header_end: int) -> None:
    """On a CRC mismatch, say "truncated" when the intact header expects more data."""
    try:
        _, entries = _check_header(_parse_header(data[PREAMBLE_SIZE:header_end], header_code))
        expected = header_end + sum(sum(entry["l"]) for entry in entries)
    except FormatError:
        return
    if expected > len(data):
        raise FormatError(
            f"truncated: the file has {len(data)} bytes, its header describes {expected}; "
            f"re-create or re-download it"
        )


def _parse_header(raw: bytes, header_code: int) -> dict:
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
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise FormatError(f"the header is not valid JSON: {error}") from None
    if not isinstance(header, dict):
        raise FormatError(f"the header must be a JSON object, got {type(header).__name__}")
    return header


def _check_header(header: dict) -> tuple[dict, list[dict]]:
    if set(header) != {"m", "t"}:
        raise FormatError(f"header keys {sorted(header)}, expected ['m', 't']")
    manifest, entries = header["m"], header["t"]
    if not isinstance(manifest, dict):
        raise FormatError(f"the manifest must be a JSON object, got {type(manifest).__name__}")
    if not isinstance(entries, list):
        raise FormatError(f"the tensor table must be a JSON list, got {type(entries).__name__}")
    names = set()
    for index, entry in enumerate(entries):
        _check_entry(index, entry)
        if entry["n"] in names:
            raise FormatError(f"tensor {entry['n']!r} appears twice in the header")
        names.add(entry["n"])
    return manifest, entries


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_entry(index: int, entry) -> None:
    where = f"tensor entry {index}"
    if not isinstance(entry, dict) or set(entry) != {"n", "t", "d", "s", "l"}:
        raise FormatError(f"{where}: expected an object with keys n, t, d, s, l, got {entry!r}"[
            :300])
    if not isinstance(entry["n"], str):
        raise FormatError(f"{where}: name must be a string, got {entry['n']!r}")
    where = f"tensor {entry['n']!r}"
    if entry["t"] not in SECTION_COUNTS:
        raise FormatError(f"{where}: unknown kind {entry['t']!r}; expected one of r, q, p")
    allowed = FLOAT_DTYPES if entry["t"] == "q" else tuple(STORAGE_DTYPES)
    if entry["d"] not in allowed:
        raise FormatError(f"{where}: dtype {entry['d']!r} is not one of {list(allowed)}")
    shape = entry["s"]
    if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
        raise FormatError(f"{where}: shape must be a list of non-negative integers, got {shape!r}")
    lengths = entry["l"]
    if not isinstance(lengths, list) or len(lengths) not in SECTION_COUNTS[entry["t"]]:
        raise FormatError(
            f"{where}: expected {' or '.join(map(str, SECTION_COUNTS[entry['t']]))} section "
            f"lengths, got {lengths!r}"
        )
    if not all(_is_count(length) for length in lengths):
        raise FormatError(
            f"{where}: section lengths must be non-negative integers, got {lengths!r} "
            f"(sections would overlap)"
        )


def _decode_tensor(entry: dict, sections: list) -> tuple[Tensor, str | None, str | None]:
    name, kind, dtype, shape = entry["n"], entry["t"], entry["d"], tuple(entry["s"])
    numel = int(np.prod(shape, dtype=np.int64))
    storage = STORAGE_DTYPES[dtype]
    try:
        if kind == "r":
            if len(sections[0]) != numel * storage.itemsize:
                raise FormatError(
                    f"tensor {name!r}: raw data has {len(sections[0])} bytes, expected "
                    f"{numel * storage.itemsize} for shape {list(shape)} {dtype}"
                )
            array = np.frombuffer(sections[0], dtype=storage).reshape(shape).copy()
            return RawTensor(name, array, dtype), None, None
        if kind == "q":
            return _decode_quantized(name, dtype, shape, numel, sections)
        mask, method = decode_positions(ByteReader(sections[0], f"tensor {name!r} positions"),
                                        numel)
        kept = int(mask.sum())
        if len(sections[1]) != kept * storage.itemsize:
            raise FormatError(
                f"tensor {name!r}: {len(sections[1])} bytes of kept values, expected "
                f"{kept * storage.itemsize} for {kept} kept {dtype} values"
            )
        values = np.frombuffer(sections[1], dtype=storage).copy()
        return PrunedTensor(name, shape, dtype, mask, values), method, None
    except ConfigError as error:  # the dataclasses' own validation of decoded content
        raise FormatError(f"tensor {name!r}: inconsistent content: {error}") from None


def _decode_quantized(name, dtype, shape, numel, sections):
    storage = STORAGE_DTYPES[dtype]
    if len(sections[0]) == 0 or len(sections[0]) % storage.itemsize:
        raise FormatError(
            f"tensor {name!r}: codebook section has {len(sections[0])} bytes, expected a "
            f"positive multiple of {storage.itemsize}"
        )
    stored = np.frombuffer(sections[0], dtype=storage)
    if dtype == "bfloat16":
        codebook = (stored.astype(np.uint32) << 16).view(np.float32)
    else:
        codebook = stored.astype(np.float64 if dtype == "float64" else np.float32)
    if not np.all(np.isfinite(codebook)):
        raise FormatError(f"tensor {name!r}: the codebook holds NaN or inf")
    indices, alphabet_size, coder = decode_stream(ByteReader(sections[1], f"tensor {name!r} "
                                                                          "indices"))
    if alphabet_size != codebook.size:
        raise FormatError(
            f"tensor {name!r}: index alphabet {alphabet_size} differs from codebook size "
            f"{codebook.size}"
        )
    mask, method = None, None
    if len(sections) == 3:
        mask, method = decode_positions(ByteReader(sections[2], f"tensor {name!r} positions"),
                                        numel)
    kept = numel if mask is None else int(mask.sum())
    if len(indices) != kept:
        raise FormatError(
            f"tensor {name!r}: {len(indices)} indices for {kept} kept positions"
        )
    return QuantizedTensor(name, shape, dtype, codebook, indices, mask), method, coder

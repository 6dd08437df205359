"""The ``.rdz`` container: preamble, JSON header, data buffer (spec: docs/rdz-format.md).

    offset 0   4 bytes  magic b"\\x89RDZ"
    offset 4   u8       format version (2, or 3 for files using the context coder or grid
                        codebooks, 4 for files holding dependent-quantization entries;
                        version-1 files are still read)
    offset 5   u8       header encoding: 0 = JSON (UTF-8), 1 = raw DEFLATE of that JSON
    offset 6   u32 LE   stored header length H
    offset 10  u32 LE   file CRC32 of bytes [0, 10) + [14, end): everything but itself
    offset 14  u32 LE   content CRC32 of what the file decodes to (version >= 2)
    offset 18  H bytes  header: {"m": manifest, "t": [tensor entries]}
    offset 18+H         data buffer: every tensor's sections, in entry order, back to back

Each entry gives its sections' lengths ("l"); offsets are their running sums relative to the
data buffer, so holes and overlaps cannot be expressed; the lengths must sum to the data
buffer's size exactly. Reading validates everything (``header.py``), decodes every tensor with
every count bounded before use, and compares the content CRC before returning anything: a bad
file raises :class:`FormatError` and yields no partial model.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, overload

import numpy as np

from rdcompress._io import atomic_write
from rdcompress.codec._bytes import ByteReader
from rdcompress.codec.ctx import candidate_cols
from rdcompress.codec.dq import DQTensor, decode_dq_parameters, encode_dq_parameters
from rdcompress.codec.grid import decode_grid, encode_grid, find_grid
from rdcompress.codec.header import (
    BASE_VERSION,
    CTX_VERSION,
    DQ_VERSION,
    ELEMENTS_PER_FILE_BYTE,
    FORMAT_VERSION,
    MAGIC,
    PREAMBLE_SIZES,
    check_element_budget,
    check_header,
    check_preamble,
    content_crc,
    dumps,
    element_budget,
    numel_of,
    parse_header,
)
from rdcompress.codec.positions import decode_positions, encode_positions
from rdcompress.codec.streams import CODERS, decode_stream, encode_stream
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

PREAMBLE_SIZE = PREAMBLE_SIZES[FORMAT_VERSION]  # 18 (versions 2 and 3)

__all__ = ["CODERS", "FORMAT_VERSION", "MAGIC", "PREAMBLE_SIZE", "RdzContents", "decode_rdz",
           "encode_rdz", "entry_bytes", "inspect_rdz", "read_rdz", "read_rdz_tensors",
           "write_rdz"]


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
    """The bytes of a ``.rdz`` file and its summary (pure; :func:`write_rdz` writes them).

    ``coder``: one of :data:`CODERS`. "ctx" codes quantized tensors' index streams with the
    context coder (stream coder 4; pruned tensors' kept indices as one row) and stores exact
    uniform codebooks as grids; the file is then version 3. Everything else, and every file
    written with "ans" or "huffman", is version 2, byte for byte as before.
    """
    _check_coder(coder)
    if header_encoding not in ("auto", "json", "deflate"):
        raise ConfigError(f"header_encoding={header_encoding!r}; expected auto, json or deflate")
    if not isinstance(manifest, dict):
        raise ConfigError(f"manifest must be a dict, got {type(manifest).__name__}")
    names = [t.name for t in tensors]
    if len(set(names)) != len(names):
        duplicates = sorted({n for n in names if names.count(n) > 1})
        raise ConfigError(f"tensor names must be unique; repeated: {duplicates}")
    entries, sections, summaries = [], [], []
    version = BASE_VERSION
    for tensor in tensors:
        entry, tensor_sections, position_method, index_coder = _encode_tensor(tensor, coder)
        entries.append(entry)
        sections.extend(tensor_sections)
        summaries.append(summarize_tensor(tensor, entry["l"], position_method, index_coder))
        if entry["t"] == "d":
            version = DQ_VERSION
        elif entry["t"] == "g" or index_coder == "ctx":
            version = max(version, CTX_VERSION)
    manifest_json = _dumps(manifest)
    content = content_crc(manifest_json, (
        (entry["n"], entry["d"], entry["s"], decode_tensor(tensor))
        for entry, tensor in zip(entries, tensors, strict=True)))
    header_code, header_bytes = _encode_header(_dumps({"m": manifest, "t": entries}),
                                               header_encoding)
    body = struct.pack("<I", content) + header_bytes + b"".join(sections)
    head = struct.pack("<4sBBI", MAGIC, version, header_code, len(header_bytes))
    crc = zlib.crc32(body, zlib.crc32(head))
    data = head + struct.pack("<I", crc) + body
    total = sum(numel_of(entry["s"]) for entry in entries)
    if total > element_budget(len(data)):
        raise ConfigError(
            f"the file would decode to {total} elements from {len(data)} bytes, more than the "
            f"format allows ({ELEMENTS_PER_FILE_BYTE} per byte beyond a fixed allowance); "
            f"store the nearly empty tensors raw, or together with the rest of the model"
        )
    summary = RdzSummary(len(data), PREAMBLE_SIZES[version] + len(header_bytes),
                         len(manifest_json), version, summaries, _composites(manifest))
    return data, summary


def entry_bytes(tensor: Tensor, coder: str = "ans") -> int:
    """Exact bytes ``tensor``'s sections add to a file written with ``coder`` (its header
    entry excluded). Costs one encode of the tensor: a rate allocator may call it freely."""
    _check_coder(coder)
    _, sections, _, _ = _encode_tensor(tensor, coder)
    return sum(len(section) for section in sections)


def _check_coder(coder: str) -> None:
    if coder not in CODERS:
        raise ConfigError(f"coder={coder!r} is not supported; expected one of {list(CODERS)}")


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
        return dumps(value)
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
        kind = "q"
        if coder == "ctx":
            grid = find_grid(tensor.codebook, tensor.dtype)
            if grid is not None and tensor.codebook.size <= max(tensor.numel, 1):
                compact = encode_grid(*grid, tensor.codebook.size, tensor.dtype)
                if len(compact) < len(codebook):
                    codebook, kind = compact, "g"
        cols = candidate_cols(tensor.n_kept, tensor.shape if tensor.mask is None else None)
        stream = encode_stream(tensor.indices, tensor.codebook.size, coder, cols)
        sections = [codebook, stream]
        index_coder = _stream_coder_name(stream)
        position_method = None
        if tensor.mask is not None:
            sections.append(encode_positions(tensor.mask, _position_coder(coder)))
            position_method = _position_method_name(sections[-1])
        entry = {"n": tensor.name, "t": kind, "d": tensor.dtype, "s": list(tensor.shape)}
    elif isinstance(tensor, DQTensor):
        cols = candidate_cols(tensor.numel, tensor.shape)
        stream = encode_stream(tensor.symbols, tensor.alphabet_size, coder, cols)
        sections = [encode_dq_parameters(tensor), stream]
        index_coder, position_method = _stream_coder_name(stream), None
        entry = {"n": tensor.name, "t": "d", "d": tensor.dtype, "s": list(tensor.shape)}
    elif isinstance(tensor, PrunedTensor):
        sections = [encode_positions(tensor.mask, _position_coder(coder)),
                    tensor.values.tobytes()]
        position_method, index_coder = _position_method_name(sections[0]), None
        entry = {"n": tensor.name, "t": "p", "d": tensor.dtype, "s": list(tensor.shape)}
    else:
        raise ConfigError(
            f"cannot store {type(tensor).__name__}; expected RawTensor, QuantizedTensor, "
            f"PrunedTensor or DQTensor"
        )
    entry["l"] = [len(s) for s in sections]
    return entry, sections, position_method, index_coder


def _position_coder(coder: str) -> str:
    """Positions keep the version-2 coders: "ctx" files code their masks with rANS."""
    return "ans" if coder == "ctx" else coder


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
    format_version: int
    header_bytes: int
    file_bytes: int
    tensors: list[Tensor] = field(default_factory=list)
    dense: list[np.ndarray] = field(default_factory=list)  # decode_tensor of each
    lengths: list[list[int]] = field(default_factory=list)
    position_methods: list[str | None] = field(default_factory=list)
    index_coders: list[str | None] = field(default_factory=list)


def read_rdz(path: str | os.PathLike[str]) -> RdzContents:
    """Read and fully validate a ``.rdz`` file; every tensor decoded bit-exactly."""
    decoded = decode_rdz(_read_file(path))
    tensors = {t.name: dense for t, dense in zip(decoded.tensors, decoded.dense, strict=True)}
    dtypes = {t.name: str(t.dtype) for t in decoded.tensors}
    return RdzContents(decoded.manifest, tensors, dtypes, decoded.format_version)


def read_rdz_tensors(path: str | os.PathLike[str]) -> tuple[dict, list[Tensor]]:
    """The manifest and the stored tensor objects (codebooks, indices, masks) themselves."""
    decoded = decode_rdz(_read_file(path))
    return decoded.manifest, decoded.tensors


@overload
def inspect_rdz(path: str | os.PathLike[str]) -> RdzSummary: ...
@overload
def inspect_rdz(path: str | os.PathLike[str], *, return_manifest: Literal[True]
                ) -> tuple[RdzSummary, dict]: ...
def inspect_rdz(path: str | os.PathLike[str], *, return_manifest: bool = False
                ) -> RdzSummary | tuple[RdzSummary, dict]:
    """Summary of a file (decodes it fully, so the entropies are those of the real streams);
    with ``return_manifest``, (summary, manifest) from the same single decode."""
    decoded = decode_rdz(_read_file(path))
    summaries = [
        summarize_tensor(t, lengths, method, coder) for t, lengths, method, coder in zip(
            decoded.tensors, decoded.lengths, decoded.position_methods, decoded.index_coders,
            strict=True)
    ]
    summary = RdzSummary(decoded.file_bytes, decoded.header_bytes, len(_dumps(decoded.manifest)),
                         decoded.format_version, summaries, _composites(decoded.manifest))
    return (summary, decoded.manifest) if return_manifest else summary


def _composites(manifest: dict) -> dict:
    """The manifest's composite recipes whose parts are well formed (for the byte accounting)."""
    composites = manifest.get("composites") if isinstance(manifest, dict) else None
    if not isinstance(composites, dict):
        return {}
    return {name: recipe for name, recipe in composites.items()
            if isinstance(recipe, dict) and isinstance(recipe.get("parts"), list)
            and isinstance(recipe.get("shape"), list) and recipe.get("dtype") in FLOAT_DTYPES}


def _read_file(path: str | os.PathLike[str]) -> bytes:
    name = os.fspath(path)
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        raise FormatError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise FormatError(f"{name}: is a directory, expected a .rdz file") from None
    except NotADirectoryError:
        raise FormatError(f"{name}: a parent of this path is a file, not a directory") from None
    except PermissionError:
        raise FormatError(f"{name}: permission denied; check the file's mode") from None


def decode_rdz(data: bytes) -> _Decoded:
    """Validate and decode a whole file held in memory (see the module doc for the order)."""
    version, header_code, header_length, preamble_size = check_preamble(data)
    header_end = preamble_size + header_length
    stored_crc = struct.unpack_from("<I", data, 10)[0]
    computed_crc = zlib.crc32(memoryview(data)[14:], zlib.crc32(data[:10]))
    if stored_crc != computed_crc:
        _raise_truncated_if_short(data, version, header_code, preamble_size, header_end)
        raise FormatError(
            f"checksum mismatch (stored CRC32 {stored_crc:08x}, computed {computed_crc:08x}): "
            f"the file is corrupted; re-create or re-download it"
        )
    manifest, entries = check_header(parse_header(data[preamble_size:header_end], header_code),
                                     version)
    check_element_budget(entries, len(data))
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
    decoded = _Decoded(manifest, version, header_end, len(data))
    offset = 0
    for entry in entries:
        sections = []
        for length in entry["l"]:
            sections.append(buffer[offset:offset + length])
            offset += length
        tensor, method, coder = _decode_tensor(entry, sections, version)
        decoded.tensors.append(tensor)
        decoded.dense.append(decode_tensor(tensor))
        decoded.lengths.append(list(entry["l"]))
        decoded.position_methods.append(method)
        decoded.index_coders.append(coder)
    if version >= 2:
        _check_content(data, decoded, entries)
    return decoded


def _check_content(data: bytes, decoded: _Decoded, entries: list[dict]) -> None:
    stored = struct.unpack_from("<I", data, 14)[0]
    computed = content_crc(_dumps(decoded.manifest), (
        (entry["n"], entry["d"], entry["s"], dense)
        for entry, dense in zip(entries, decoded.dense, strict=True)))
    if stored != computed:
        raise FormatError(
            f"content check failed (stored content CRC32 {stored:08x}, decoded {computed:08x}): "
            f"the file decodes to other tensors or another manifest than were written; its "
            f"header was edited or it is corrupted; re-create or re-download it"
        )


def _raise_truncated_if_short(data: bytes, version: int, header_code: int, preamble_size: int,
                              header_end: int) -> None:
    """On a CRC mismatch, say "truncated" when the intact header expects more data."""
    try:
        _, entries = check_header(parse_header(data[preamble_size:header_end], header_code),
                                  version)
        expected = header_end + sum(sum(entry["l"]) for entry in entries)
    except FormatError:
        return
    if expected > len(data):
        raise FormatError(
            f"truncated: the file has {len(data)} bytes, its header describes {expected}; "
            f"re-create or re-download it"
        )


def _decode_tensor(entry: dict, sections: list,
                   version: int) -> tuple[Tensor, str | None, str | None]:
    name, kind, dtype, shape = entry["n"], entry["t"], entry["d"], tuple(entry["s"])
    numel = numel_of(shape)  # bounded by the file's element budget
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
        if kind in ("q", "g"):
            return _decode_quantized(name, kind, dtype, shape, numel, sections, version)
        if kind == "d":
            return _decode_dq(name, dtype, shape, numel, sections, version)
        mask, method = decode_positions(ByteReader(sections[0], f"tensor {name!r} positions"),
                                        numel, version)
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


def _decode_quantized(name, kind, dtype, shape, numel, sections, version):
    if kind == "g":
        codebook = decode_grid(ByteReader(sections[0], f"tensor {name!r} grid codebook"),
                               dtype, numel)
    else:
        codebook = _decode_codebook(name, dtype, sections[0])
    if not np.all(np.isfinite(codebook)):
        raise FormatError(f"tensor {name!r}: the codebook holds NaN or inf")
    mask, method = None, None
    if len(sections) == 3:  # positions first: they say how many indices there must be
        mask, method = decode_positions(ByteReader(sections[2], f"tensor {name!r} positions"),
                                        numel, version)
    kept = numel if mask is None else int(mask.sum())
    indices, alphabet_size, coder = decode_stream(
        ByteReader(sections[1], f"tensor {name!r} indices"), kept, codebook.size, version)
    if alphabet_size != codebook.size:
        raise FormatError(
            f"tensor {name!r}: index alphabet {alphabet_size} differs from codebook size "
            f"{codebook.size}"
        )
    if len(indices) != kept:
        raise FormatError(
            f"tensor {name!r}: {len(indices)} indices for {kept} kept positions"
        )
    return QuantizedTensor(name, shape, dtype, codebook, indices, mask), method, coder


def _decode_dq(name, dtype, shape, numel, sections, version):
    step, low, alphabet, cols = decode_dq_parameters(
        ByteReader(sections[0], f"tensor {name!r} DQ parameters"), dtype, numel)
    symbols, declared, coder = decode_stream(
        ByteReader(sections[1], f"tensor {name!r} indices"), numel, alphabet, version)
    if declared != alphabet or len(symbols) != numel:
        raise FormatError(f"tensor {name!r}: {len(symbols)} DQ levels over alphabet {declared}, "
                          f"expected {numel} over {alphabet}")
    return DQTensor(name, shape, dtype, step, symbols + low, cols), None, coder


def _decode_codebook(name: str, dtype: str, section) -> np.ndarray:
    storage = STORAGE_DTYPES[dtype]
    if len(section) == 0 or len(section) % storage.itemsize:
        raise FormatError(
            f"tensor {name!r}: codebook section has {len(section)} bytes, expected a "
            f"positive multiple of {storage.itemsize}"
        )
    stored = np.frombuffer(section, dtype=storage)
    if dtype == "bfloat16":
        return (stored.astype(np.uint32) << 16).view(np.float32)
    return stored.astype(np.float64 if dtype == "float64" else np.float32)

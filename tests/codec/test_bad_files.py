"""A corpus of bad files: each one raises FormatError with its exact message, never a partial
result or a stray exception. Structural cases carry a *valid* CRC (crafted), so they exercise
the checks behind the checksum."""

from __future__ import annotations

import json
import re
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from rdcompress.codec import PrunedTensor, RawTensor, decode_rdz, encode_rdz, read_rdz
from rdcompress.codec._bytes import encode_varint
from rdcompress.codec.container import PREAMBLE_SIZE
from rdcompress.errors import FormatError

sys.path.insert(0, str(Path(__file__).parent))  # importlib import mode: reach the helper module
from rdz_fixtures import TINY_MANIFEST, craft, tiny_tensors  # noqa: E402

VALID, _ = encode_rdz(tiny_tensors(), TINY_MANIFEST, coder="ans", header_encoding="json")
HEADER_LENGTH = struct.unpack_from("<I", VALID, 6)[0]
CONTENT_CRC = struct.unpack_from("<I", VALID, 14)[0]
HEADER = json.loads(VALID[PREAMBLE_SIZE:PREAMBLE_SIZE + HEADER_LENGTH])
DATA_BUFFER = VALID[PREAMBLE_SIZE + HEADER_LENGTH:]


def section_boundaries() -> list[int]:
    """Every offset where one part of the file ends and the next begins."""
    bounds = [0, 4, 5, 6, 10, 14, PREAMBLE_SIZE, PREAMBLE_SIZE + HEADER_LENGTH]
    offset = PREAMBLE_SIZE + HEADER_LENGTH
    for entry in HEADER["t"]:
        for length in entry["l"]:
            offset += length
            bounds.append(offset)
    assert bounds[-1] == len(VALID)
    return bounds[:-1]


def expected_truncation_message(size: int) -> str:
    if size < 14:
        return (f"truncated: the file has {size} bytes, fewer than the 14-byte preamble of an "
                f".rdz file")
    if size < PREAMBLE_SIZE:
        return (f"truncated: the file has {size} bytes, fewer than the 18-byte preamble of a "
                f"version-2 .rdz file")
    if size < PREAMBLE_SIZE + HEADER_LENGTH:
        return (f"truncated: the header needs {HEADER_LENGTH} bytes after the preamble but "
                f"only {size - PREAMBLE_SIZE} remain")
    return (f"truncated: the file has {size} bytes, its header describes {len(VALID)}; "
            f"re-create or re-download it")


def assert_error(data: bytes, message: str) -> None:
    with pytest.raises(FormatError, match=f"^{re.escape(message)}$"):
        decode_rdz(data)


def test_valid_file_decodes():
    assert len(decode_rdz(VALID).tensors) == len(tiny_tensors())


@pytest.mark.parametrize("cut", section_boundaries())
def test_truncated_at_every_section_boundary(cut):
    assert_error(VALID[:cut], expected_truncation_message(cut))


def test_truncated_at_random_points():
    rng = np.random.default_rng(0)
    for cut in rng.integers(0, len(VALID), size=40):
        assert_error(VALID[:cut], expected_truncation_message(int(cut)))


def flipped(data: bytes, offset: int) -> bytes:
    return data[:offset] + bytes([data[offset] ^ 0xFF]) + data[offset + 1:]


def checksum_message(data: bytes) -> str:
    stored = struct.unpack_from("<I", data, 10)[0]
    computed = zlib.crc32(data[14:], zlib.crc32(data[:10]))
    return (f"checksum mismatch (stored CRC32 {stored:08x}, computed {computed:08x}): the file "
            f"is corrupted; re-create or re-download it")


@pytest.mark.parametrize("offset", section_boundaries())
def test_flipped_byte_in_each_section(offset):
    data = flipped(VALID, offset)
    if offset == 0:
        message = (f"not an .rdz file: magic bytes {data[:4]!r}, expected b'\\x89RDZ'")
    elif offset == 4:
        message = ("format version 253 is newer than this rdcompress supports (4); upgrade "
                   "rdcompress (pip install -U rdcompress)")
    elif offset == 6 and HEADER_LENGTH ^ 0xFF > len(VALID) - PREAMBLE_SIZE:
        message = (f"truncated: the header needs {HEADER_LENGTH ^ 0xFF} bytes after the "
                   f"preamble but only {len(VALID) - PREAMBLE_SIZE} remain")
    else:
        message = checksum_message(data)
    assert_error(data, message)


def test_flipped_bytes_anywhere_never_pass():
    for offset in range(len(VALID)):
        with pytest.raises(FormatError):
            decode_rdz(flipped(VALID, offset))


def test_wrong_magic_and_foreign_files():
    assert_error(b"RDZ!" + VALID[4:],
                 "not an .rdz file: magic bytes b'RDZ!', expected b'\\x89RDZ'")
    zip_like = b"PK\x03\x04" + bytes(40)
    assert_error(zip_like, "not an .rdz file: magic bytes b'PK\\x03\\x04', expected b'\\x89RDZ' "
                           "(this looks like a zip / torch.save file; load it with torch.load)")
    safetensors_like = struct.pack("<Q", 2) + b"{}" + bytes(8)
    assert_error(safetensors_like, "not an .rdz file: magic bytes b'\\x02\\x00\\x00\\x00', "
                                   "expected b'\\x89RDZ' (this looks like a .safetensors file)")


def test_newer_and_invalid_version():
    assert_error(craft(HEADER, DATA_BUFFER, version=5),
                 "format version 5 is newer than this rdcompress supports (4); upgrade "
                 "rdcompress (pip install -U rdcompress)")
    assert_error(craft(HEADER, DATA_BUFFER, version=0),
                 "format version 0 is invalid; expected 1..4")


def test_huge_header_length():
    data = VALID[:6] + struct.pack("<I", 0xFFFFFFFF) + VALID[10:]
    assert_error(data, "header length 4294967295 exceeds the cap of 16777216 bytes; the file "
                       "is corrupted or hostile")


@pytest.mark.parametrize("raw,message", [
    (b"[1, 2]", "the header must be a JSON object, got list"),
    (b'"text"', "the header must be a JSON object, got str"),
    (b"{not json", "the header is not valid JSON: Expecting property name enclosed in double "
                   "quotes: line 1 column 2 (char 1)"),
    (b"\xff\xfe", "the header is not valid JSON: 'utf-8' codec can't decode byte 0xff in "
                  "position 0: invalid start byte"),
    (b'{"m": {}}', "header keys ['m'], expected ['m', 't']"),
    (b'{"m": [], "t": []}', "the manifest must be a JSON object, got list"),
    (b'{"m": {}, "t": {}}', "the tensor table must be a JSON list, got dict"),
])
def test_bad_header_json(raw, message):
    assert_error(craft(None, b"", raw_header=raw), message)


def test_bad_header_encoding():
    assert_error(craft(HEADER, DATA_BUFFER, encoding=7),
                 "unknown header encoding 7; expected 0 (JSON) or 1")
    assert_error(craft(None, b"", encoding=1, raw_header=b"\xff\xff\xff"),
                 "the header cannot be inflated: Error -3 while decompressing data: invalid "
                 "block type")


def with_entry(index: int, **changes) -> dict:
    header = json.loads(json.dumps(HEADER))
    header["t"][index].update(changes)
    return header


def test_sections_out_of_range():
    lengths = list(HEADER["t"][0]["l"])
    lengths[1] += 5
    total = len(DATA_BUFFER) + 5
    assert_error(craft(with_entry(0, l=lengths), DATA_BUFFER),
                 f"sections end at byte {total} of the data buffer but it holds "
                 f"{len(DATA_BUFFER)} bytes (section out of range)")


def test_sections_with_a_hole():
    assert_error(craft(HEADER, DATA_BUFFER + b"\x00\x00\x00"),
                 "3 bytes of the data buffer belong to no section (a hole)")


def test_sections_overlapping():
    lengths = list(HEADER["t"][0]["l"])
    lengths[1] = -4
    assert_error(craft(with_entry(0, l=lengths), DATA_BUFFER),
                 f"tensor 'fc1.weight': section lengths must be non-negative integers, got "
                 f"{lengths!r} (sections would overlap)")


@pytest.mark.parametrize("changes,message", [
    ({"t": "z"}, "tensor 'fc1.weight': unknown kind 'z'; expected one of r, q, p in format "
                 "version 2"),
    ({"t": "g"}, "tensor 'fc1.weight': unknown kind 'g'; expected one of r, q, p in format "
                 "version 2"),
    ({"d": "int8"}, "tensor 'fc1.weight': dtype 'int8' is not one of ['float64', 'float32', "
                    "'float16', 'bfloat16']"),
    ({"s": [6, -8]}, "tensor 'fc1.weight': shape must be a list of non-negative integers, got "
                     "[6, -8]"),
    ({"l": [1]}, "tensor 'fc1.weight': expected 2 or 3 section lengths, got [1]"),
    ({"n": 5}, "tensor entry 0: name must be a string, got 5"),
    ({"s": [6, 9]}, "tensor 'fc1.weight': 48 indices for 54 kept positions"),
    ({"n": "fc1.bias"}, "tensor 'fc1.bias' appears twice in the header"),
])
def test_bad_entries(changes, message):
    assert_error(craft(with_entry(0, **changes), DATA_BUFFER), message)


def test_raw_section_size_must_match_shape():
    assert_error(craft(with_entry(3, s=[7]), DATA_BUFFER),
                 "tensor 'fc1.bias': raw data has 24 bytes, expected 28 for shape [7] float32")


def test_entry_with_extra_key():
    header = with_entry(0, extra=1)
    with pytest.raises(FormatError, match="^tensor entry 0: expected an object with keys n, t, "
                                          "d, s, l, got"):
        decode_rdz(craft(header, DATA_BUFFER))


def test_corrupted_stream_inside_valid_crc():
    # Replace fc1's index stream coder byte by an unknown id, keeping the CRC valid.
    codebook_length = HEADER["t"][0]["l"][0]
    data_buffer = bytearray(DATA_BUFFER)
    data_buffer[codebook_length] = 9
    assert_error(craft(HEADER, bytes(data_buffer)),
                 "tensor 'fc1.weight' indices: stream coder id 9 is unknown in format version 2 "
                 "(allowed: [0, 2, 3])")


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(FormatError, match="no such file"):
        read_rdz(tmp_path / "absent.rdz")
    with pytest.raises(FormatError, match="is a directory"):
        read_rdz(tmp_path)


# ------------------------------------------------------------------ issue 18: hostile files
# Each case below loaded silently wrong, crashed or exhausted memory before format version 2.

CONTENT_MESSAGE = (r"^content check failed \(stored content CRC32 [0-9a-f]{8}, decoded "
                   r"[0-9a-f]{8}\): the file decodes to other tensors or another manifest than "
                   r"were written; its header was edited or it is corrupted; re-create or "
                   r"re-download it$")


def _split(data: bytes) -> tuple[dict, bytes, int]:
    length = struct.unpack_from("<I", data, 6)[0]
    return (json.loads(data[PREAMBLE_SIZE:PREAMBLE_SIZE + length]),
            data[PREAMBLE_SIZE + length:], struct.unpack_from("<I", data, 14)[0])


def _edited(data: bytes, edit) -> bytes:
    """``data`` with its header edited by ``edit(header)``; both the file CRC and the stored
    content CRC kept "valid" the way a careless tool would (file CRC recomputed)."""
    header, buffer, content = _split(data)
    edit(header)
    return craft(header, buffer, content_crc=content)


def _section_offset(header: dict, name: str, section: int) -> int:
    offset = 0
    for entry in header["t"]:
        if entry["n"] == name:
            return offset + sum(entry["l"][:section])
        offset += sum(entry["l"])
    raise KeyError(name)


def test_positions_method_byte_flip_is_caught():
    """A 50 % mask whose method byte goes from gaps-kept (2) to gaps-pruned (3) decodes to the
    inverted mask with the same kept count: structurally valid, only the content CRC sees it."""
    half = PrunedTensor("half", (8, 8), "float32", np.arange(64) < 32,
                        np.arange(32, dtype=np.float32))
    data, _ = encode_rdz([half], {}, "ans", "json")
    header, buffer, content = _split(data)
    offset = _section_offset(header, "half", 0)
    assert buffer[offset] == 2  # gaps-kept
    edited = bytearray(buffer)
    edited[offset] = 3
    with pytest.raises(FormatError, match=CONTENT_MESSAGE):
        decode_rdz(craft(header, bytes(edited), content_crc=content))


def test_swapped_entries_and_names_are_caught():
    twins = [RawTensor("a", np.array([1.0, 2.0], np.float32)),
             RawTensor("b", np.array([3.0, 4.0], np.float32))]
    data, _ = encode_rdz(twins, {}, "ans", "json")

    def swap_entries(header):
        header["t"][0], header["t"][1] = header["t"][1], header["t"][0]

    def swap_names(header):
        header["t"][0]["n"], header["t"][1]["n"] = "b", "a"

    for edit in (swap_entries, swap_names):
        with pytest.raises(FormatError, match=CONTENT_MESSAGE):
            decode_rdz(_edited(data, edit))


def test_dtype_edit_with_the_same_item_size_is_caught():
    data, _ = encode_rdz([RawTensor("w", np.array([1.5, -2.0], np.float32))], {}, "ans", "json")
    for dtype in ("int32", "uint32"):
        with pytest.raises(FormatError, match=CONTENT_MESSAGE):
            decode_rdz(_edited(data, lambda h, d=dtype: h["t"][0].update(d=d)))


def test_factor_dtype_edit_is_caught():
    """A low-rank factor's dtype float16 -> bfloat16 (same size) in the header."""
    factor = RawTensor("fc.weight::B", np.array([[0.5, 1.5]], np.float16))
    data, _ = encode_rdz([factor], {"composites": {}}, "ans", "json")
    with pytest.raises(FormatError, match=CONTENT_MESSAGE):
        decode_rdz(_edited(data, lambda h: h["t"][0].update(d="bfloat16")))


def test_manifest_edit_is_caught():
    with pytest.raises(FormatError, match=CONTENT_MESSAGE):
        decode_rdz(_edited(VALID, lambda h: h["m"].update(method="other")))


def _with_stream_count(count: int) -> bytes:
    """fc1.weight's index stream re-declared with ``count`` symbols (lengths kept right)."""
    header, buffer, content = _split(VALID)
    start = _section_offset(header, "fc1.weight", 1)
    length = header["t"][0]["l"][1]
    stream = buffer[start:start + length]
    old_count_bytes = 1  # 48 < 128: a one-byte varint
    new_stream = stream[:1] + encode_varint(count) + stream[1 + old_count_bytes:]
    header["t"][0]["l"][1] = len(new_stream)
    return craft(header, buffer[:start] + new_stream + buffer[start + length:],
                 content_crc=content)


@pytest.mark.parametrize("count", [2 ** 40, 2 ** 62, 49])
def test_huge_declared_symbol_count_is_refused_before_decoding(count):
    """2**40 symbols in a 150-byte file used to abort the process inside constriction."""
    assert_error(_with_stream_count(count), f"tensor 'fc1.weight' indices: the stream declares "
                                            f"{count} symbols, at most 48 fit this tensor")


@pytest.mark.parametrize("shape,extent", [([2 ** 32, 2 ** 32], 2 ** 64), ([10 ** 30], 10 ** 30),
                                          ([0, 2 ** 40, 2 ** 40], 2 ** 80)])
def test_huge_shapes_are_refused_before_decoding(shape, extent):
    data = _edited(VALID, lambda h: h["t"][0].update(s=shape))
    budget = (1 << 16) + 1024 * len(data)
    assert_error(data, f"tensor 'fc1.weight': shape {shape} spans {extent} positions, more "
                       f"than a {len(data)}-byte file may hold ({budget}); the file is "
                       f"corrupted or hostile")


def test_element_budget_counts_every_entry():
    many = {"m": {}, "t": [{"n": f"t{i}", "t": "q", "d": "float32", "s": [120000], "l": [4, 4]}
                           for i in range(3)]}
    data = craft(many, b"")
    budget = (1 << 16) + 1024 * len(data)
    assert_error(data, f"tensor 't2': the header declares 360000 elements up to this entry, "
                       f"more than a {len(data)}-byte file may hold (65536 + 1024 per byte = "
                       f"{budget}); the file is corrupted or hostile")


def test_too_many_dimensions():
    assert_error(_edited(VALID, lambda h: h["t"][0].update(s=[1] * 33)),
                 "tensor 'fc1.weight': shape has 33 dimensions, at most 32")


@pytest.mark.parametrize("raw,message", [
    (b'{"m":{"x":' + b"[" * 5000 + b"]" * 5000 + b'},"t":[]}',
     "the header nests 5002 levels deep, more than the limit of 64; the file is corrupted or "
     "hostile"),
    (b'{"m":{"x":' + b"7" * 5000 + b'},"t":[]}',
     "the header holds a value this reader refuses: Exceeds the limit (4300 digits) for integer "
     "string conversion: value has 5000 digits; use sys.set_int_max_str_digits() to increase "
     "the limit"),
    (b'{"m":{"x":NaN},"t":[]}', "the header holds NaN, which is not JSON; the file is corrupted"),
    (b'{"m":{"x":-Infinity},"t":[]}',
     "the header holds -Infinity, which is not JSON; the file is corrupted"),
    (b'{"m":{},"t":[],"t":[]}',
     "the header repeats the key(s) ['t'] in one object; the file is corrupted or was edited"),
    (b'{"m":{"x":-1e400},"t":[]}',
     "the header holds the number -1e400, which overflows a float; the file is corrupted"),
], ids=["deep", "digits", "nan", "infinity", "repeated key", "float overflow"])
def test_hostile_json(raw, message):
    assert_error(craft(None, b"", raw_header=raw), message)


def test_version_1_coder_in_a_version_2_file():
    header, buffer, content = _split(VALID)
    start = _section_offset(header, "fc1.weight", 1)
    edited = bytearray(buffer)
    edited[start] = 1
    assert_error(craft(header, bytes(edited), content_crc=content),
                 "tensor 'fc1.weight' indices: stream coder id 1 is not allowed in format "
                 "version 2 (allowed: [0, 2, 3])")


def test_version_1_file_is_read_and_version_2_preamble_truncation():
    """A version-1 file (14-byte preamble, no content CRC) still reads; a version-2 file cut
    inside its 18-byte preamble says so."""
    v1 = (Path(__file__).parent / "golden" / "tiny-ans.rdz").read_bytes()
    assert decode_rdz(v1).format_version == 1
    assert_error(VALID[:16], "truncated: the file has 16 bytes, fewer than the 18-byte preamble "
                             "of a version-2 .rdz file")


@pytest.mark.parametrize("path_kind", ["directory", "file as parent"])
def test_bad_paths(tmp_path, path_kind):
    if path_kind == "directory":
        path, message = tmp_path, f"{tmp_path}: is a directory, expected a .rdz file"
    else:
        (tmp_path / "plain").write_bytes(b"x")
        path = tmp_path / "plain" / "m.rdz"
        message = f"{path}: a parent of this path is a file, not a directory"
    with pytest.raises(FormatError, match=f"^{re.escape(message)}$"):
        read_rdz(path)


def test_foreign_png_and_pickle_hints():
    assert_error(b"\x89PNG\r\n\x1a\n" + bytes(20), "not an .rdz file: magic bytes "
                 "b'\\x89PNG', expected b'\\x89RDZ' (this looks like a PNG image)")
    assert_error(b"\x80\x04\x95" + bytes(20), "not an .rdz file: magic bytes "
                 "b'\\x80\\x04\\x95\\x00', expected b'\\x89RDZ' (this looks like a pickle; "
                 "rdcompress never unpickles)")

"""Dependent-quantization entries (kind "d", format version 4): decoding against the spec's
state machine, the golden file, the version rule, and every declared size checked."""

from __future__ import annotations

import json
import os
import re
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

from rdcompress.codec import (
    DQTensor,
    RawTensor,
    decode_rdz,
    encode_index_stream,
    encode_rdz,
    read_rdz,
)
from rdcompress.codec._bytes import encode_varint
from rdcompress.codec.container import PREAMBLE_SIZE
from rdcompress.codec.tensors import decode_tensor
from rdcompress.errors import ConfigError, FormatError

sys.path.insert(0, str(Path(__file__).parent))  # importlib import mode: reach the helpers
from rdz_fixtures import DQ_MANIFEST, craft, tiny_dq_tensors  # noqa: E402
from test_container import reference_dense  # noqa: E402

GOLDEN = Path(__file__).parent / "golden"


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16", "float64"])
@pytest.mark.parametrize("cols", [1, 5, 30])
def test_decoding_matches_the_state_machine(dtype, cols):
    rng = np.random.default_rng(cols)
    levels = rng.integers(-6, 7, 60)
    tensor = DQTensor("w", (6, 10), dtype, 0.1, levels, cols)
    assert decode_tensor(tensor).tobytes() == reference_dense(tensor).tobytes()


@pytest.mark.parametrize("coder", ["ans", "huffman", "ctx"])
def test_roundtrip_and_version(coder):
    tensors = tiny_dq_tensors()
    data, summary = encode_rdz(tensors, DQ_MANIFEST, coder=coder)
    assert data[4] == summary.format_version == 4
    decoded = decode_rdz(data)
    for tensor, dense in zip(tensors, decoded.dense, strict=True):
        assert dense.tobytes() == reference_dense(tensor).tobytes()
    assert [t.kind for t in summary.tensors][:2] == ["dq", "dq"]
    # without a DQ entry the same coder writes the lower version, as before
    data, _ = encode_rdz(tensors[2:], DQ_MANIFEST, coder=coder)
    assert data[4] == (3 if coder == "ctx" else 2)


def test_golden_file():
    """Version 4 must not change by accident (RDZ_REGENERATE_GOLDEN=1 rewrites it)."""
    path = GOLDEN / "tiny-dq-v4.rdz"
    data, summary = encode_rdz(tiny_dq_tensors(), DQ_MANIFEST, coder="ctx")
    if os.environ.get("RDZ_REGENERATE_GOLDEN"):
        path.write_bytes(data)
    assert data == path.read_bytes(), "the .rdz byte layout changed"
    assert summary.tensors[0].index_coder == "ctx"  # the DQ levels are context coded
    contents = read_rdz(path)
    assert contents.format_version == 4
    for tensor in tiny_dq_tensors():
        assert contents.tensors[tensor.name].tobytes() == reference_dense(tensor).tobytes()


def test_dq_tensor_refuses_bad_content():
    with pytest.raises(ConfigError, match="dtype 'int8'"):
        DQTensor("w", (4,), "int8", 0.1, np.zeros(4, np.int64), 4)
    with pytest.raises(ConfigError, match="finite and > 0"):
        DQTensor("w", (4,), "float32", 0.0, np.zeros(4, np.int64), 4)
    with pytest.raises(ConfigError, match="must be 4 integers"):
        DQTensor("w", (4,), "float32", 0.1, np.zeros(3, np.int64), 4)
    with pytest.raises(ConfigError, match="must be 0 integers"):
        DQTensor("w", (0,), "float32", 0.1, np.zeros(0, np.int64), 1)
    with pytest.raises(ConfigError, match="cols=3 must divide numel=4"):
        DQTensor("w", (4,), "float32", 0.1, np.zeros(4, np.int64), 3)
    with pytest.raises(ConfigError, match="levels span 5 values, more than the 4 elements"):
        DQTensor("w", (4,), "float32", 0.1, np.array([0, 4, 1, 2]), 4)
    with pytest.raises(ConfigError, match="overflows float32"):
        DQTensor("w", (2,), "float32", 1e30, np.array([1 << 40, (1 << 40) - 1]), 2)


# ----------------------------------------------------------------------------- bad files


def one_dq_file(parameters: bytes, stream: bytes, version: int = 4, kind: str = "d",
                shape=(2, 3), lengths=None) -> bytes:
    """A file of one DQ entry with the given sections and a valid file CRC."""
    entry = {"n": "w", "t": kind, "d": "float32", "s": list(shape),
             "l": lengths or [len(parameters), len(stream)]}
    return craft({"m": {}, "t": [entry]}, parameters + stream, version=version)


def parameters(step=0.5, low=-2, count=5, cols=3, tail=b"") -> bytes:
    zigzag = 2 * low if low >= 0 else -2 * low - 1
    return (struct.pack("<f", step) + encode_varint(zigzag) + encode_varint(count)
            + encode_varint(cols) + tail)


def valid_sections() -> tuple[bytes, bytes]:
    data, _ = encode_rdz([DQTensor("w", (2, 3), "float32", 0.5, np.array([-2, 0, 1, 2, -1, 0]),
                                   3)], {}, coder="ans", header_encoding="json")
    length = struct.unpack_from("<I", data, 6)[0]
    entry = json.loads(data[PREAMBLE_SIZE:PREAMBLE_SIZE + length])["t"][0]
    body = data[PREAMBLE_SIZE + length:]
    return body[:entry["l"][0]], body[entry["l"][0]:]


def assert_error(data: bytes, message: str) -> None:
    with pytest.raises(FormatError, match=f"^{re.escape(message)}$"):
        decode_rdz(data)


def test_valid_crafted_file_reaches_the_content_check():
    params, stream = valid_sections()
    assert params == parameters()
    with pytest.raises(FormatError, match="^content check failed"):
        decode_rdz(one_dq_file(params, stream))  # craft writes content CRC 0


def test_dq_entry_in_an_older_version_is_refused():
    params, stream = valid_sections()
    assert_error(one_dq_file(params, stream, version=3),
                 "tensor 'w': unknown kind 'd'; expected one of r, q, p, g in format version 3")


@pytest.mark.parametrize("changes, message", [
    ({"count": 0}, "DQ alphabet of 0 levels; expected 1..6 for this tensor"),
    ({"count": 7}, "DQ alphabet of 7 levels; expected 1..6 for this tensor"),
    ({"low": -(1 << 51) - 1, "count": 1}, "DQ levels -2251799813685249..-2251799813685249 "
                                          "exceed 2**51 in magnitude"),
    ({"low": 1 << 51, "count": 2}, "DQ levels 2251799813685248..2251799813685249 exceed "
                                   "2**51 in magnitude"),
    ({"cols": 0}, "DQ row length 0 does not divide the 6 elements"),
    ({"cols": 4}, "DQ row length 4 does not divide the 6 elements"),
    ({"cols": 12}, "DQ row length 12 does not divide the 6 elements"),
    ({"step": float("nan")}, "DQ step is nan, expected a finite number > 0"),
    ({"step": float("inf")}, "DQ step is inf, expected a finite number > 0"),
    ({"step": 0.0}, "DQ step is 0.0, expected a finite number > 0"),
    ({"step": -0.5}, "DQ step is -0.5, expected a finite number > 0"),
    ({"step": 3e38}, "DQ step 3.0000000054977558e+38 times level 2 overflows float32"),
])
def test_bad_dq_parameters(changes, message):
    _, stream = valid_sections()
    assert_error(one_dq_file(parameters(**changes), stream),
                 f"tensor 'w' DQ parameters: {message}")


def test_dq_parameter_section_sizes():
    _, stream = valid_sections()
    with pytest.raises(FormatError, match="^tensor 'w' DQ parameters: .*(trailing|end)"):
        decode_rdz(one_dq_file(parameters(tail=b"\x00"), stream))
    with pytest.raises(FormatError, match="^tensor 'w' DQ parameters: "):
        decode_rdz(one_dq_file(parameters()[:5], stream))
    with pytest.raises(FormatError, match="^tensor 'w' DQ parameters: "):
        decode_rdz(one_dq_file(b"", stream))


def test_dq_stream_must_match_the_declared_alphabet_and_count():
    params, stream = valid_sections()
    # the stream declares an alphabet of 5; the parameters allow 4
    assert_error(one_dq_file(parameters(count=4), stream),
                 "tensor 'w' indices: the stream's alphabet size 5 is outside 1..4")
    # a stream of 4 symbols for a tensor of 6
    short = encode_index_stream(np.array([0, 2, 3, 4]), 5, coder="ans")
    assert_error(one_dq_file(params, short),
                 "tensor 'w': 4 DQ levels over alphabet 5, expected 6 over 5")


def test_dq_entry_needs_exactly_two_sections_and_a_float_dtype():
    params, stream = valid_sections()
    assert_error(one_dq_file(params, stream, lengths=[len(params), len(stream), 0]),
                 "tensor 'w': expected 2 section lengths, got "
                 f"[{len(params)}, {len(stream)}, 0]")
    entry = {"n": "w", "t": "d", "d": "int32", "s": [2, 3], "l": [len(params), len(stream)]}
    with pytest.raises(FormatError, match="^tensor 'w': dtype 'int32' is not one of"):
        decode_rdz(craft({"m": {}, "t": [entry]}, params + stream, version=4))


def test_raw_only_files_stay_version_2():
    data, _ = encode_rdz([RawTensor("b", np.zeros(3, np.float32))], {})
    assert data[4] == 2

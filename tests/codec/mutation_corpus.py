"""A seeded corpus of damaged and hostile ``.rdz`` files, and the rule that judges each one.

Base files are written by the real writer (format versions 2 and 3): every tensor kind and
position method, every coder (the context coder and grid codebooks of version 3 included), both
header encodings, composites (low-rank and sum). Each mutation is a
(kind, bytes) pair; ``judge`` loads it the way ``rdcompress.load`` does (``decode_rdz`` then
``compose_state``) under tracemalloc and classifies it:

- ``rejected``: FormatError (the project's own error type, with a message);
- ``identical``: it loads, and to exactly the original tensors and manifest (harmless);
- ``WRONG``: it loads to something else: a silent wrong load (a failure);
- ``CRASH``: any other exception (a failure);
- ``MEMORY``: peak traced memory above ``memory_bound(file bytes)`` (a failure).

Used by tests/codec/test_mutation_corpus.py (bounded for CI) and bench/fuzz_rdz.py (prints the
table, any size).
"""

from __future__ import annotations

import io
import json
import struct
import sys
import tracemalloc
import zipfile
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from rdcompress.codec import PrunedTensor, QuantizedTensor, RawTensor, decode_rdz, encode_rdz
from rdcompress.codec._bytes import encode_varint

try:
    from rdcompress.codec.header import element_budget
except ImportError:  # a release before format version 2 (bench/fuzz_rdz.py --isolate measures it)
    def element_budget(file_bytes: int) -> int:
        return (1 << 16) + 1024 * file_bytes
from rdcompress.compress.compose import compose_state, make_recipe, part_name
from rdcompress.errors import FormatError

sys.path.insert(0, str(Path(__file__).parent))
from rdz_fixtures import (  # noqa: E402
    CTX_MANIFEST,
    DQ_MANIFEST,
    TINY_MANIFEST,
    tiny_ctx_tensors,
    tiny_dq_tensors,
    tiny_tensors,
    with_file_crc,
)

FAILURES = ("WRONG", "CRASH", "MEMORY")
# Peak traced memory allowed per case: the decoded-size cap (elements) times the bytes one
# element may occupy while decoding (int64 index + mask + dense value + copies), and 1 MiB of
# fixed cost. For the corpus's files (~0.4-2 KB) that is a few MiB.
BYTES_PER_ELEMENT = 48
FIXED_BYTES = 1 << 20


def memory_bound(file_bytes: int) -> int:
    return FIXED_BYTES + BYTES_PER_ELEMENT * element_budget(file_bytes)


# ----------------------------------------------------------------------------- base files


def _composite_tensors() -> tuple[list, dict]:
    """Low-rank (raw factors) and sum (quantized + pruned parts) composites, plus plain ones."""
    rng = np.random.default_rng(7)
    a = rng.standard_normal((6, 2)).astype(np.float32)  # (out, r)
    b = rng.standard_normal((2, 5)).astype(np.float16)  # (r, d) stored narrower: exact widening
    mask = rng.random(30) < 0.5
    codebook = np.array([-1.0, -0.25, 0.5], dtype=np.float32)
    tensors = [
        RawTensor(part_name("fc.weight", "A"), a),
        RawTensor(part_name("fc.weight", "B"), b),
        QuantizedTensor(part_name("conv.weight", "q"), (5, 6), "float32", codebook,
                        rng.integers(0, 3, size=int(mask.sum())), mask),
        PrunedTensor(part_name("conv.weight", "r"), (5, 6), "float32", ~mask,
                     rng.standard_normal(int((~mask).sum())).astype(np.float32)),
        RawTensor("fc.bias", rng.standard_normal(6).astype(np.float32)),
    ]
    manifest = {"model": {"zoo": "tiny"}, "composites": {
        "fc.weight": make_recipe("lowrank", "fc.weight", ["A", "B"], (6, 5), torch.float32),
        "conv.weight": make_recipe("sum", "conv.weight", ["q", "r"], (5, 6), torch.float32)}}
    return tensors, manifest


def _mask_tensors() -> list:
    """Masks that pick each position method: a 50 % half-kept mask (gaps), scattered bits."""
    rng = np.random.default_rng(11)
    half = np.arange(64) < 32  # the first half kept: gap coded; inverting it keeps 32 too
    scattered = rng.random(400) < 0.3
    return [
        PrunedTensor("half", (8, 8), "float32", half, np.arange(32, dtype=np.float32)),
        QuantizedTensor("scattered", (20, 20), "bfloat16", np.array([-2.0, 0.5, 3.0]),
                        rng.integers(0, 3, size=int(scattered.sum())), scattered),
        QuantizedTensor("dense64", (3, 7), "float64", np.array([0.1, 0.2, 0.7, -1.0]),
                        rng.integers(0, 4, size=21)),
        RawTensor("steps", np.array([3, 1, 4], dtype=np.int32)),
        RawTensor("flag", np.array([True, False])),
    ]


def base_files() -> dict[str, bytes]:
    composite_tensors, composite_manifest = _composite_tensors()
    return {
        "tiny-ans": encode_rdz(tiny_tensors(), TINY_MANIFEST, "ans", "json")[0],
        "tiny-huffman-deflate": encode_rdz(tiny_tensors(), TINY_MANIFEST, "huffman",
                                           "deflate")[0],
        "composites": encode_rdz(composite_tensors, composite_manifest, "ans", "json")[0],
        "masks": encode_rdz(_mask_tensors(), {"note": "masks"}, "ans", "json")[0],
        # format version 3: context-coded index streams (coder 4) and grid codebooks ("g")
        "tiny-ctx": encode_rdz(tiny_ctx_tensors(), CTX_MANIFEST, "ctx", "json")[0],
        # format version 4: dependent-quantization entries ("d")
        "tiny-dq": encode_rdz(tiny_dq_tensors(), DQ_MANIFEST, "ctx", "json")[0],
    }


# ----------------------------------------------------------------------------- loading


def load(data: bytes) -> tuple[dict, dict[str, tuple[str, tuple, bytes]]]:
    """What ``rdcompress.load`` would see: the manifest and every composed tensor's bytes."""
    decoded = decode_rdz(data)
    dtypes = {t.name: str(t.dtype) for t in decoded.tensors}
    from rdcompress.codec.tensors import decode_tensor, to_torch

    dense = getattr(decoded, "dense", None) or [decode_tensor(t) for t in decoded.tensors]
    tensors = {t.name: to_torch(array, dtypes[t.name])
               for t, array in zip(decoded.tensors, dense, strict=True)}
    state = compose_state(decoded.manifest, tensors)
    return decoded.manifest, {name: (str(value.dtype), tuple(value.shape),
                                     value.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
                              for name, value in state.items()}


def judge(data: bytes, original) -> tuple[str, str, int]:
    """(verdict, message, peak traced bytes) for one mutated file."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        result = load(data)
    except FormatError as error:
        verdict, message = "rejected", str(error)
    except Exception as error:  # noqa: BLE001 - the point: anything else is a crash
        verdict, message = "CRASH", f"{type(error).__name__}: {error}"
    else:
        verdict, message = ("identical", "") if result == original else ("WRONG", "")
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    if peak > memory_bound(len(data)):
        verdict, message = "MEMORY", f"peak {peak} B > bound {memory_bound(len(data))} B"
    return verdict, message, peak


# ----------------------------------------------------------------------------- mutations


def _preamble_size(data: bytes) -> int:
    return 18 if data[4] >= 2 else 14  # version 2 adds the content CRC


def _split(data: bytes) -> tuple[dict, bytes]:
    """(header JSON, data buffer) of a file written with a JSON or deflate header."""
    code, length = data[5], struct.unpack_from("<I", data, 6)[0]
    start = _preamble_size(data)
    raw = data[start:start + length]
    if code == 1:
        raw = zlib.decompress(raw, -15)
    return json.loads(raw), data[start + length:]


def _join(original: bytes, header_text: bytes, buffer: bytes) -> bytes:
    """A file with a new (plain JSON) header, the original content CRC, a valid file CRC."""
    head = original[:5] + bytes([0]) + struct.pack("<I", len(header_text)) + b"\0\0\0\0"
    return with_file_crc(head + original[14:_preamble_size(original)] + header_text + buffer)


def _dump(header) -> bytes:
    return json.dumps(header, separators=(",", ":")).encode()


def _sections(header: dict) -> list[tuple[int, int, int]]:
    """(entry index, section index, offset in the data buffer) of every section."""
    out, offset = [], 0
    for index, entry in enumerate(header["t"]):
        for section, length in enumerate(entry["l"]):
            out.append((index, section, offset))
            offset += length
    return out


def _pick(rng, options: list):
    return options[int(rng.integers(0, len(options)))]


_HUGE = [2 ** 40, 2 ** 32, 10 ** 30, 2 ** 63, 2 ** 64 + 1, 10 ** 12]


def _header_edit(rng, header: dict) -> tuple[str, dict | bytes]:
    """One structural edit of the header (returned as a dict, or raw text for JSON tricks)."""
    entries = header["t"]
    i, j = (int(v) for v in rng.choice(len(entries), size=2, replace=len(entries) < 2))
    entry = entries[i]
    choice = int(rng.integers(0, 23))
    if choice == 0:
        entries[i], entries[j] = entries[j], entries[i]
        return "swap entries", header
    if choice == 1:
        entry["n"], entries[j]["n"] = entries[j]["n"], entry["n"]
        return "swap names", header
    if choice == 2:
        entry["d"] = str(rng.choice(["float64", "float32", "float16", "bfloat16", "int64",
                                     "int32", "int16", "int8", "uint8", "uint16", "bool",
                                     "complex64", 7]))
        return "change dtype", header
    if choice == 3:
        entry["s"] = list(rng.permutation(entry["s"]).tolist()) if entry["s"] else [1]
        return "permute shape", header
    if choice == 4:
        entry["s"] = [int(rng.integers(0, 50)) for _ in range(int(rng.integers(0, 4)))]
        return "random shape", header
    if choice == 5:
        entry["s"] = _pick(rng, [[2 ** 32, 2 ** 32], [10 ** 30], [2 ** 40], [0, 2 ** 62, 2 ** 62],
                                 [1] * 100, [-1, 8], [True, 4], [2.5], "8", None])
        return "huge or invalid shape", header
    if choice == 6:
        k = int(rng.integers(0, len(entry["l"])))
        entry["l"][k] = max(0, entry["l"][k] + int(rng.choice([-3, -1, 1, 2])))
        return "change a length", header
    if choice == 7:
        entry["l"] = entry["l"][::-1]
        return "reverse lengths", header
    if choice == 8:
        entry["t"] = str(rng.choice(["r", "q", "p", "g", "x"]))
        return "change kind", header
    if choice == 9:
        entry["n"] = entry["n"] + "x"
        return "rename", header
    if choice == 10:
        del entries[i]
        return "delete entry", header
    if choice == 11:
        entries.append(dict(entry))
        return "duplicate entry", header
    if choice == 12:
        entry[str(rng.choice(["h", "extra", "l2"]))] = 1
        return "extra key", header
    if choice == 13:
        return "manifest edit", _manifest_edit(rng, header)
    if choice == 14:
        return "deep nesting", _dump(header)[:-1] + b',"x":' + b"[" * 100000 + b"]" * 100000 + b"}"
    if choice == 15:
        return "5000-digit integer", _dump(header)[:-1] + b',"x":' + b"9" * 5000 + b"}"
    if choice == 16:
        return "NaN", _dump(header)[:-1] + b',"x":NaN}'
    if choice == 17:
        return "duplicate key", _dump(header)[:-1] + b',"m":{}}'
    if choice == 18:
        entry["s"] = [_pick(rng, _HUGE)] + list(entry["s"][1:])
        return "huge first dimension", header
    if choice == 19:
        entry["l"] = [_pick(rng, _HUGE)] + entry["l"][1:]
        return "huge length", header
    if choice == 20:
        entry["n"] = [entry["n"]] if rng.random() < 0.5 else None
        return "name not a string", header
    if choice == 21:
        return "float overflow", _dump(header)[:-1] + b',"x":-1e400}'
    return "not an object", _pick(rng, [b"[]", b"null", b"{}", b'{"m":{},"t":{}}', b"\xff"])


def _manifest_edit(rng, header: dict) -> dict:
    manifest = header["m"]
    composites = manifest.get("composites")
    if not composites or rng.random() < 0.2:
        manifest[str(rng.choice(["model", "note", "method"]))] = str(rng.choice(["x", "y"]))
        return header
    name = str(rng.choice(sorted(composites)))
    recipe = composites[name]
    choice = int(rng.integers(0, 9))
    if choice == 0:
        recipe["op"] = "sum" if recipe["op"] == "lowrank" else "lowrank"
    elif choice == 1:
        recipe["parts"] = recipe["parts"][::-1]
    elif choice == 2:
        recipe["dtype"] = str(rng.choice(["float16", "bfloat16", "float64", "int8"]))
    elif choice == 3:
        recipe["shape"] = recipe["shape"][::-1]
    elif choice == 4:
        recipe["parts"] = recipe["parts"][:1]
    elif choice == 5:
        other = [n for n in composites if n != name]
        if other:
            recipe["parts"] = composites[other[0]]["parts"]
    elif choice == 6:
        composites[name + "2"] = recipe
    elif choice == 7:
        manifest["composites"] = _pick(rng, [[], "x", {"w": 1}])
    else:
        del recipe["dtype"]
    return header


def _section_edit(rng, data: bytes) -> tuple[str, bytes]:
    """Edit inside one section (method / coder / precision / lane bytes, declared n and k),
    lengths and both CRC-free parts kept consistent so that only the content check or the
    structural checks can object."""
    header, buffer = _split(data)
    sections = _sections(header)
    index, section, offset = sections[int(rng.integers(0, len(sections)))]
    entry = header["t"][index]
    length = entry["l"][section]
    body = bytearray(buffer[offset:offset + length])
    if not body:
        return "empty section", data
    choice = int(rng.integers(0, 5))
    if choice == 0:  # the first byte: a position method or a stream coder id
        body[0] = int(rng.integers(0, 6))
        kind = "method/coder byte"
    elif choice == 1 and len(body) > 2:  # a stream's declared n: huge
        body = bytearray(bytes(body[:1]) + encode_varint(_pick(rng, _HUGE[:2]) - 1) +
                         bytes(body[2:]))
        kind = "declared n huge"
    elif choice == 2 and len(body) > 3:  # rANS precision / lane byte or Rice parameter
        position = int(rng.integers(1, min(len(body), 8)))
        body[position] = int(rng.choice([0, 12, 13, 17, 40, 41, 255]))
        kind = "parameter byte"
    elif choice == 3:
        body[int(rng.integers(0, len(body)))] ^= 1 << int(rng.integers(0, 8))
        kind = "bit flip in section"
    else:
        position = int(rng.integers(0, len(body) + 1))
        body[position:position] = bytes(rng.integers(0, 256, size=int(rng.integers(1, 4)),
                                                     dtype=np.uint8))
        kind = "bytes inserted in section"
    entry["l"][section] = len(body)
    new_buffer = buffer[:offset] + bytes(body) + buffer[offset + length:]
    return kind, _join(data, _dump(header), new_buffer)


def _foreign_files() -> list[tuple[str, bytes]]:
    from safetensors.torch import save

    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("a.txt", "hello")
    pickled = io.BytesIO()
    torch.save({"w": torch.zeros(3)}, pickled)
    import pickle

    return [
        ("empty file", b""),
        ("PNG", b"\x89PNG\r\n\x1a\n" + bytes(64)),
        ("zip", zipped.getvalue()),
        ("torch.save", pickled.getvalue()),
        ("pickle", pickle.dumps({"w": [1, 2, 3]})),
        ("safetensors", save({"w": torch.zeros(2, 3)})),
        ("text", b"hello world, this is not a model\n" * 4),
        ("magic only", b"\x89RDZ"),
        ("magic and zeros", b"\x89RDZ" + bytes(40)),
        ("version 2 preamble, nothing else", b"\x89RDZ\x02\x00" + bytes(12)),
    ]


def corpus(size: int, seed: int = 0,
           bases: dict[str, bytes] | None = None) -> list[tuple[str, str, bytes]]:
    """``size`` mutated files (plus the foreign ones): (base name, mutation kind, bytes).
    ``bases`` defaults to :func:`base_files` (version 2, written now)."""
    rng = np.random.default_rng(seed)
    bases = base_files() if bases is None else bases
    names = sorted(bases)
    out = [("foreign", f"foreign file: {kind}", data) for kind, data in _foreign_files()]
    for _ in range(size):
        name = names[int(rng.integers(0, len(names)))]
        data = bases[name]
        family = int(rng.integers(0, 8))
        if family == 0:
            kind, mutated = "truncated", data[:int(rng.integers(0, len(data)))]
        elif family == 1:
            mutated = bytearray(data)
            for _ in range(int(rng.integers(1, 4))):
                mutated[int(rng.integers(0, len(data)))] ^= 1 << int(rng.integers(0, 8))
            kind, mutated = "bit flips", bytes(mutated)
        elif family == 2:
            mutated = bytearray(data)
            mutated[int(rng.integers(0, len(data)))] = int(rng.integers(0, 256))
            kind, mutated = "byte edit, file CRC recomputed", with_file_crc(bytes(mutated))
        elif family == 3:
            cut = int(rng.integers(18, len(data)))
            extra = bytes(rng.integers(0, 256, size=int(rng.integers(0, 9)), dtype=np.uint8))
            kind = "truncated/extended, file CRC recomputed"
            mutated = with_file_crc(data[:cut] + extra if rng.random() < 0.5 else data + extra)
        elif family in (4, 5):
            header, buffer = _split(data)
            kind, edited = _header_edit(rng, header)
            kind = "header: " + kind
            mutated = _join(data, edited if isinstance(edited, bytes) else _dump(edited), buffer)
        elif family == 6:
            kind, mutated = _section_edit(rng, data)
            kind = "section: " + kind
        else:
            mutated = bytearray(data)
            for _ in range(int(rng.integers(1, 3))):
                mutated[int(rng.integers(4, len(data)))] = int(rng.integers(0, 256))
            kind, mutated = "bytes edited in header/preamble, CRC recomputed", with_file_crc(
                bytes(mutated))
        out.append((name, kind, mutated))
    return out


def run(size: int, seed: int = 0, bases: dict[str, bytes] | None = None,
        ) -> tuple[Counter, list[tuple[str, str, str]], dict]:
    """Judge the corpus: (verdict counts, failures (base, kind, message), statistics)."""
    bases = base_files() if bases is None else bases
    originals = {name: load(data) for name, data in bases.items()}
    verdicts: Counter = Counter()
    failures = []
    worst_ratio = 0.0
    by_kind: Counter = Counter()
    messages: Counter = Counter()
    for name, kind, data in corpus(size, seed, bases):
        verdict, message, peak = judge(data, originals.get(name))
        messages[message.split(":")[0] if verdict == "rejected" else verdict] += 1
        verdicts[verdict] += 1
        by_kind[(kind.split(",")[0], verdict)] += 1
        worst_ratio = max(worst_ratio, peak / max(len(data), 1))
        if verdict in FAILURES:
            failures.append((name, kind, message))
    return verdicts, failures, {"worst_peak_per_file_byte": worst_ratio, "by_kind": by_kind,
                                "messages": messages}


def summary_line(verdicts: Counter, stats: dict) -> str:
    total = sum(verdicts.values())
    failed = sum(verdicts[f] for f in FAILURES)
    return (f"rdz mutation corpus: {total} files; {verdicts['rejected']} rejected with "
            f"FormatError, {verdicts['identical']} loaded identical (harmless); "
            f"{verdicts['WRONG']} silent wrong loads, {verdicts['CRASH']} raw exceptions, "
            f"{verdicts['MEMORY']} over the memory bound; failures {failed}; worst peak "
            f"traced memory {stats['worst_peak_per_file_byte']:.0f} B per file byte")

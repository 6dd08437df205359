"""A seeded corpus of damaged and crafted importance files: each is refused or loads unchanged.

Outcomes of loading a mutant (``Importance.load`` / ``ImportanceAccumulator.load``):

- ``refused``: an ``RDCompressError`` (the project's own types);
- ``identical``: it loads and every tensor, name, dtype, shape and header value equals the
  original's (e.g. the JSON header re-indented, or a byte of padding changed to a space);
- ``raw``: any other exception (a crash) -- must be 0;
- ``wrong``: it loads but differs from the original -- must be 0.

Mutants with a recomputed checksum (``fix=True``) break a validation rule on purpose, so they
must be refused. Memory: the peak resident size may not grow by more than 64 MiB over the
whole corpus (every original is under 2 KiB, so a declared size that was trusted would show).
``python bench/fuzz_importance.py`` runs a larger corpus and prints the same table.
"""

from __future__ import annotations

import json
import random
import resource
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from rdcompress.errors import RDCompressError
from rdcompress.importance import (
    Importance,
    ImportanceAccumulator,
    ImportanceConfig,
    accumulate_importance,
    compute_importance,
)
from rdcompress.importance.result import CHECKSUM_KEY, content_sha256, header, write_file

SEED = 20261127
CORPUS_SIZE = 400  # the issue asks for >= 200


# -- originals ------------------------------------------------------------------------------

def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3))


def write_originals(directory: Path) -> dict[str, Path]:
    """Three valid files: fisher, gradient+hessian (with quartic tensors), partial sums."""
    model = _model()
    inputs, labels = torch.randn(12, 4), torch.randint(0, 3, (12,))
    paths = {name: directory / f"{name}.safetensors" for name in ("fisher", "quartic", "partial")}
    compute_importance(model, [(inputs, labels)], "fisher").save(paths["fisher"])
    compute_importance(model, [(inputs, labels)], "gradient+hessian").save(paths["quartic"])
    acc = accumulate_importance(model, [(inputs, labels)], ImportanceConfig("gradient"))
    tensors = {"sum/" + n: v for n, v in acc.quadratic_sum.items()}
    write_file(paths["partial"], tensors, header(  # what accumulator.save writes, checksummed
        "partial-sums", acc.objective, acc.temperature, acc.num_samples, acc.weights_sha256,
        {**acc.metadata, "mu": acc.mu, "touched": sorted(acc.touched)}))
    return paths


# -- the container, taken apart and put back together -----------------------------------------

def split(data: bytes) -> tuple[dict, bytes]:
    size = int.from_bytes(data[:8], "little")
    return json.loads(data[8:8 + size]), data[8 + size:]


def join(head: dict | str, body: bytes, *, fix: bool = False, indent: int | None = None) -> bytes:
    """A container with ``head`` (a dict, or raw JSON text) and a consistent length prefix.

    ``fix`` recomputes ``content_sha256`` for the new header, as a deliberate editor would.
    """
    if fix:
        assert isinstance(head, dict)
        meta = head.setdefault("__metadata__", {})
        meta[CHECKSUM_KEY] = content_sha256(meta, (
            (name, e["dtype"], e["shape"], body[e["data_offsets"][0]:e["data_offsets"][1]])
            for name, e in head.items() if name != "__metadata__"))
    text = head if isinstance(head, str) else json.dumps(head, indent=indent)
    raw = text.encode()
    return len(raw).to_bytes(8, "little") + raw + body


def tensor_names(head: dict) -> list[str]:
    return sorted(k for k in head if k != "__metadata__")


# -- mutations: each takes (rng, original bytes) and returns (label, new bytes, fix) ---------

Mutation = Callable[[random.Random, bytes], tuple[str, bytes]]


def flip_header_bit(rng: random.Random, data: bytes) -> tuple[str, bytes]:
    size = int.from_bytes(data[:8], "little")
    position = rng.randrange(0, 8 + size)
    return f"header bit flip at byte {position}", _flip(data, position, rng.randrange(8))


def flip_data_bit(rng: random.Random, data: bytes) -> tuple[str, bytes]:
    size = int.from_bytes(data[:8], "little")
    position = rng.randrange(8 + size, len(data))
    return f"data bit flip at byte {position}", _flip(data, position, rng.randrange(8))


def _flip(data: bytes, position: int, bit: int) -> bytes:
    out = bytearray(data)
    out[position] ^= 1 << bit
    return bytes(out)


def truncate(rng: random.Random, data: bytes) -> tuple[str, bytes]:
    keep = rng.choice([0, 1, 7, 8, 9, rng.randrange(len(data)), len(data) - 1,
                       len(data) - rng.randrange(1, 9)])
    return f"truncated to {keep} bytes", data[:keep]


def extend(rng: random.Random, data: bytes) -> tuple[str, bytes]:
    extra = bytes(rng.randrange(256) for _ in range(rng.choice([1, 4, 8, 100])))
    return f"{len(extra)} bytes appended", data + extra


def header_edit(rng: random.Random, data: bytes) -> tuple[str, bytes]:
    """Edits of the JSON header with a consistent length, the checksum left as it was."""
    head, body = split(data)
    names = tensor_names(head)
    meta = head["__metadata__"]
    name = rng.choice(names)
    choice = rng.randrange(12)
    if choice == 0:  # reshape a tensor to the same number of elements
        head[name]["shape"] = list(reversed(head[name]["shape"])) + [1]
        return f"shape of {name} changed", join(head, body)
    if choice == 1:
        head[name]["dtype"] = rng.choice(["I32", "U32", "F16", "F64", "BOOL"])
        return f"dtype of {name} changed", join(head, body)
    if choice == 2:
        head[name + "x"] = head.pop(name)
        return f"{name} renamed", join(head, body)
    if choice == 3:  # swap the data of two tensors of the same size
        same = [n for n in names if n != name and head[n]["shape"] == head[name]["shape"]]
        other = same[0] if same else names[0]
        head[name]["data_offsets"], head[other]["data_offsets"] = (
            head[other]["data_offsets"], head[name]["data_offsets"])
        return f"data of {name} and {other} swapped", join(head, body)
    if choice == 4:
        key = rng.choice(sorted(k for k in meta if k != CHECKSUM_KEY))
        meta[key] = _other_value(rng, key, meta[key])
        return f"metadata {key} edited", join(head, body)
    if choice == 5:
        meta["note"] = "added"
        return "metadata key added", join(head, body)
    if choice == 6:
        del head[name]
        return f"{name} dropped from the header", join(head, body)
    if choice == 7:  # same content, other JSON layout: must load unchanged
        return "header re-indented", join(head, body, indent=rng.choice([1, 2]))
    if choice == 8:
        reordered = dict(reversed(list(head.items())))
        return "header keys reversed", join(reordered, body)
    if choice == 9:
        text = json.dumps(head)
        return "metadata object duplicated", join(
            text[:-1] + ', "__metadata__": ' + json.dumps(meta) + "}", body)
    if choice == 10:
        del meta[CHECKSUM_KEY]  # legacy file: loads unchanged, with a warning
        return "checksum removed", join(head, body)
    head[name]["data_offsets"] = [0, 2 ** 62]
    return f"data_offsets of {name} huge", join(head, body)


def _other_value(rng: random.Random, key: str, value: str) -> str:
    options = {"objective": ["hessian", "output", "baseline"], "temperature": ["2.0", "null"],
               "num_samples": ["1", "99"], "kind": ["importance", "partial-sums"],
               "metadata": ["{}", '{"mu": 1.0}'], "weights_sha256": ["0" * 64]}
    return rng.choice([v for v in options.get(key, [value + "0"]) if v != value] or ["x"])


# Rule-breaking edits with the checksum recomputed: a deliberate writer, so never "damage".
def _metadata_setter(key: str, value: str) -> Callable[[dict], None]:
    def apply(head: dict) -> None:
        head["__metadata__"][key] = value
    return apply


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


RULE_BREAKERS: list[tuple[str, Callable[[dict], None]]] = [
    ("version 0", _metadata_setter("version", "0")),
    ("version with a sign", _metadata_setter("version", "+1")),
    ("version of 5,000 digits", _metadata_setter("version", "9" * 5000)),
    ("objective unknown", _metadata_setter("objective", "magic")),
    ("temperature -1", _metadata_setter("temperature", "-1")),
    ("temperature NaN", _metadata_setter("temperature", "NaN")),
    ("temperature 1e999", _metadata_setter("temperature", "1e999")),
    ("temperature of 4,000 digits", _metadata_setter("temperature", "9" * 4000)),
    ("temperature of 5,000 digits", _metadata_setter("temperature", "9" * 5000)),
    ("temperature deeply nested", _metadata_setter("temperature", _deep(100_000))),
    ("num_samples -1", _metadata_setter("num_samples", "-1")),
    ("num_samples 1e3", _metadata_setter("num_samples", "1e3")),
    ("num_samples of 5,000 digits", _metadata_setter("num_samples", "9" * 5000)),
    ("num_samples with spaces", _metadata_setter("num_samples", " 5")),
    ("num_samples in Arabic digits", _metadata_setter("num_samples", "\u0663")),
    ("weights_sha256 short", _metadata_setter("weights_sha256", "ab")),
    ("metadata a list", _metadata_setter("metadata", "[1]")),
    ("metadata deeply nested", _metadata_setter("metadata", '{"a": ' + _deep(100_000) + "}")),
    ("metadata with a 5,000-digit integer", _metadata_setter("metadata", '{"a": ' + "9" * 5000
                                                             + "}")),
    ("metadata with a duplicate key", _metadata_setter("metadata", '{"a": 1, "a": 2}')),
    ("metadata config not an object", _metadata_setter("metadata", '{"config": 3}')),
    ("metadata frozen not a list", _metadata_setter("metadata", '{"frozen": "x"}')),
    ("metadata not JSON", _metadata_setter("metadata", "{")),
    ("unknown metadata key", _metadata_setter("extra", "1")),
    ("kind swapped", lambda head: head["__metadata__"].update(
        kind={"importance": "partial-sums"}.get(head["__metadata__"]["kind"], "importance"))),
    ("format tag removed", lambda head: head["__metadata__"].pop("format")),
    ("objective removed", lambda head: head["__metadata__"].pop("objective")),
]


PARTIAL_SUM_BREAKERS: list[tuple[str, Callable[[dict], None]]] = [  # free-form elsewhere
    ("metadata touched not a list", _metadata_setter("metadata", '{"touched": 5}')),
    ("metadata mu negative", _metadata_setter("metadata", '{"mu": -1}')),
    ("metadata mu a string", _metadata_setter("metadata", '{"mu": "1"}')),
]


def rule_breaker(rng: random.Random, data: bytes) -> tuple[str, bytes]:
    head, body = split(data)
    partial = head["__metadata__"]["kind"] == "partial-sums"
    label, apply = rng.choice(RULE_BREAKERS + (PARTIAL_SUM_BREAKERS if partial else []))
    apply(head)
    return f"{label} (checksum recomputed)", join(head, body, fix=True)


def structural_breaker(rng: random.Random, data: bytes) -> tuple[str, bytes]:
    """Tensor-level rule breaks with the checksum recomputed."""
    head, body = split(data)
    names = tensor_names(head)
    choice = rng.randrange(4)
    if choice == 0:  # no tensors at all
        return "no tensors (checksum recomputed)", join(
            {"__metadata__": head["__metadata__"]}, b"", fix=True)
    if choice == 1:  # a NaN written into the data
        entry = head[rng.choice(names)]
        start = entry["data_offsets"][0]
        width = 8 if entry["dtype"] == "F64" else 4
        nan = (b"\x00" * 6 + b"\xf8\x7f") if width == 8 else b"\x00\x00\xc0\x7f"
        return "NaN in data (checksum recomputed)", join(
            head, body[:start] + nan + body[start + width:], fix=True)
    if choice == 2:  # a stray key beside the documented scheme
        entry = head[names[0]]
        head["stray/" + names[0]] = dict(entry)
        size = entry["data_offsets"][1] - entry["data_offsets"][0]
        head["stray/" + names[0]]["data_offsets"] = [len(body), len(body) + size]
        body = body + body[entry["data_offsets"][0]:entry["data_offsets"][1]]
        if head["__metadata__"]["kind"] == "importance":
            head["quartic/stray"] = head.pop("stray/" + names[0])  # unpaired quartic tensor
        return "stray tensor key (checksum recomputed)", join(head, body, fix=True)
    entry = head[rng.choice(names)]  # a dtype the kind does not allow, same bytes
    entry["dtype"] = "I32" if entry["dtype"] == "F32" else "I64"
    return "integer dtype (checksum recomputed)", join(head, body, fix=True)


def foreign(rng: random.Random, data: bytes) -> tuple[str, bytes]:
    choice = rng.randrange(9)
    if choice == 0:
        return "random bytes", bytes(rng.randrange(256) for _ in range(rng.randrange(0, 300)))
    if choice == 1:
        return "PNG", b"\x89PNG\r\n\x1a\n" + bytes(64)
    if choice == 2:
        return "pickle", b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00\x8c\x02osR."
    if choice == 3:
        return "JSON text", b'{"format": "rdcompress-importance"}'
    if choice == 4:
        return "empty file", b""
    if choice == 5:
        return "plain safetensors", join({"w": {"dtype": "F32", "shape": [1],
                                                "data_offsets": [0, 4]}}, b"\0" * 4)
    if choice == 6:
        declared = rng.choice([2 ** 60, 2 ** 64 - 1, 2 ** 40, len(data)])
        return f"header length {declared}", declared.to_bytes(8, "little") + data[8:]
    if choice == 7:
        return "deeply nested header", join('{"a": ' + _deep(50_000) + "}", b"")
    return "5,000-digit shape", join('{"w": {"dtype": "F32", "shape": [' + "9" * 5000
                                     + '], "data_offsets": [0, 4]}}', b"\0" * 4)


MUTATIONS: list[tuple[Mutation, int]] = [  # (mutation, weight)
    (flip_header_bit, 6), (flip_data_bit, 4), (truncate, 3), (extend, 1), (header_edit, 5),
    (rule_breaker, 3), (structural_breaker, 2), (foreign, 2)]


@dataclass
class Mutant:
    origin: str  # which original it was made from
    label: str
    data: bytes


def corpus(originals: dict[str, Path], size: int, seed: int = SEED) -> Iterator[Mutant]:
    """``size`` mutants, the same for the same seed."""
    rng = random.Random(seed)
    sources = {name: path.read_bytes() for name, path in originals.items()}
    mutations, weights = zip(*MUTATIONS, strict=True)
    for _ in range(size):
        origin = rng.choice(sorted(sources))
        mutation = rng.choices(mutations, weights)[0]
        label, data = mutation(rng, sources[origin])
        yield Mutant(origin, f"{mutation.__name__}: {label}", data)


# -- the oracle --------------------------------------------------------------------------------

def load(origin: str, path: Path | str) -> object:
    return (ImportanceAccumulator.load(path) if origin == "partial" else Importance.load(path))


def same(first: object, second: object) -> bool:
    """Equal in every tensor (dtype, shape, bits) and every header value."""
    def tensors(value: object) -> dict:
        if isinstance(value, ImportanceAccumulator):
            return {**{"s/" + k: v for k, v in value.quadratic_sum.items()},
                    **{"q/" + k: v for k, v in (value.quartic_sum or {}).items()}}
        assert isinstance(value, Importance)
        return {**{"s/" + k: v for k, v in value.quadratic.items()},
                **{"q/" + k: v for k, v in (value.quartic or {}).items()}}

    def fields(value: object) -> tuple:
        extra = getattr(value, "touched", None)
        return (value.objective, value.temperature, value.num_samples,  # type: ignore[attr-defined]
                value.weights_sha256, json.dumps(value.metadata, sort_keys=True,  # type: ignore[attr-defined]
                                                 default=str), sorted(extra or []))

    a, b = tensors(first), tensors(second)
    return fields(first) == fields(second) and a.keys() == b.keys() and all(
        a[k].dtype == b[k].dtype and a[k].shape == b[k].shape
        and torch.equal(a[k].view(torch.uint8), b[k].view(torch.uint8)) for k in a)


def outcome(origin: str, path: Path | str, reference: object) -> tuple[str, str]:
    """("refused" | "identical" | "raw" | "wrong", detail) for one file."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loaded = load(origin, path)
    except RDCompressError as error:
        return "refused", type(error).__name__
    except Exception as error:  # noqa: BLE001 - counting crashes is the point
        return "raw", f"{type(error).__name__}: {str(error)[:200]}"
    return ("identical", "") if same(loaded, reference) else ("wrong", "loaded different values")


def prepare(directory: Path) -> tuple[dict[str, Path], dict[str, object]]:
    """The originals, written, and as loaded (the references)."""
    originals = write_originals(directory)
    return originals, {name: load(name, path) for name, path in originals.items()}


def run_corpus(directory: Path, size: int, seed: int = SEED,
               prepared: tuple[dict[str, Path], dict[str, object]] | None = None
               ) -> tuple[Counter, list[str]]:
    """Load ``size`` mutants of the originals; count outcomes; list what went wrong."""
    originals, references = prepared or prepare(directory)
    counts: Counter = Counter()
    failures = []
    path = directory / "mutant.safetensors"
    for index, mutant in enumerate(corpus(originals, size, seed)):
        path.write_bytes(mutant.data)
        result, detail = outcome(mutant.origin, path, references[mutant.origin])
        counts[result] += 1
        counts[f"{result}/{mutant.label.split(':')[0]}"] += 1
        if result in ("raw", "wrong") or (result == "identical" and "recomputed" in mutant.label):
            failures.append(f"#{index} {mutant.origin} {mutant.label}: {result} {detail}")
    for special, origin in ((directory, "fisher"), (directory / "missing.safetensors", "quartic"),
                            ("/dev/zero", "fisher")):
        result, detail = outcome(origin, special, references[origin])
        counts[result] += 1
        counts[f"{result}/paths"] += 1
        if result != "refused":
            failures.append(f"path {special}: {result} {detail}")
    return counts, failures


def summary(counts: Counter) -> str:
    total = sum(v for k, v in counts.items() if "/" not in k)
    lines = [f"importance corpus: {total} files, refused {counts['refused']}, loaded identical "
             f"{counts['identical']}, raw exceptions {counts['raw']}, silent wrong loads "
             f"{counts['wrong']}"]
    for key in sorted(k for k in counts if "/" in k):
        lines.append(f"  {key:32s} {counts[key]}")
    return "\n".join(lines)


def _max_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


# -- tests -------------------------------------------------------------------------------------

def test_seeded_corpus_has_no_crash_no_silent_wrong_load_and_bounded_memory(tmp_path):
    prepared = prepare(tmp_path)  # imports and first-use allocations happen here
    before = _max_rss_bytes()
    counts, failures = run_corpus(tmp_path, CORPUS_SIZE, prepared=prepared)
    grown = _max_rss_bytes() - before
    print("\n" + summary(counts) + f"\n  peak RSS growth {grown / 2**20:.1f} MiB")
    assert failures == [], "\n".join(failures[:20])
    assert counts["raw"] == counts["wrong"] == 0
    assert counts["refused"] + counts["identical"] == CORPUS_SIZE + 3
    assert counts["refused"] >= 0.8 * CORPUS_SIZE  # the corpus is mostly damage, not no-ops
    assert grown < 64 * 2**20


def test_corpus_is_seeded(tmp_path):
    originals = write_originals(tmp_path)
    first = [(m.label, m.data) for m in corpus(originals, 30)]
    assert first == [(m.label, m.data) for m in corpus(originals, 30)]
    assert len({data for _, data in first}) > 25


@pytest.fixture(scope="module")
def fuzz_originals(tmp_path_factory):
    directory = tmp_path_factory.mktemp("fuzz")
    originals = write_originals(directory)
    return directory, {n: (p.read_bytes(), load(n, p)) for n, p in originals.items()}


@settings(max_examples=60, deadline=None)
@given(origin=st.sampled_from(["fisher", "quartic", "partial"]), position=st.integers(0, 10**6),
       replacement=st.binary(min_size=0, max_size=12), cut=st.integers(0, 12))
def test_fuzzed_byte_edits_are_refused_or_harmless(fuzz_originals, origin, position,
                                                   replacement, cut):
    directory, sources = fuzz_originals
    data, reference = sources[origin]
    position %= len(data) + 1
    mutated = data[:position] + replacement + data[position + cut:]
    path = directory / f"fuzz-{origin}.safetensors"
    path.write_bytes(mutated)
    result, detail = outcome(origin, path, reference)
    assert result in ("refused", "identical"), f"{result}: {detail}"
    if result == "identical":  # only edits that keep the bytes' meaning may load
        assert mutated == data or len(mutated) == len(data)

"""Small deterministic containers for the codec tests (no randomness whose stream could change
across numpy versions: the golden file depends on these bytes)."""

from __future__ import annotations

import json
import struct
import zlib

import numpy as np
import torch

from rdcompress.codec import DQTensor, PrunedTensor, QuantizedTensor, RawTensor


def tiny_tensors() -> list:
    """One tensor of every kind: dense and pruned quantized, pruned-only, raw float and int."""
    positions = np.arange(48)
    weight_indices = (positions * 7 + positions // 5) % 5  # (48,) in [0, 5)
    codebook = np.array([-0.5, -0.125, 0.0, 0.25, 0.75], dtype=np.float32)
    mask = (positions % 3 != 0) | (positions > 40)  # (48,) kept pattern
    return [
        QuantizedTensor("fc1.weight", (6, 8), "float32", codebook, weight_indices),
        QuantizedTensor("fc2.weight", (4, 12), "float16", codebook[:4],
                        (positions[mask] * 5) % 4, mask),
        PrunedTensor("fc3.weight", (3, 4), "float32", (np.arange(12) % 4 == 1),
                     np.array([1.5, -2.25, 3.0], dtype=np.float32)),
        RawTensor("fc1.bias", np.linspace(-1, 1, 6, dtype=np.float32)),
        RawTensor("bn.num_batches_tracked", np.array(7, dtype=np.int64)),
    ]


TINY_MANIFEST = {"model": {"zoo": "tiny", "kwargs": {}}, "method": "kmeans", "objective":
                 "baseline", "settings": {"k": 5}, "weights_sha256": "0" * 8,
                 "original_bytes": 4 * 174 + 8}


def craft(header, data_buffer: bytes = b"", version: int = 2, encoding: int = 0,
          raw_header: bytes | None = None, content_crc: int = 0) -> bytes:
    """A file with a *valid* file CRC around an arbitrary header: tests structure checks.
    Version 2 files carry ``content_crc`` (wrong unless the caller passes the right one)."""
    header_bytes = raw_header if raw_header is not None else json.dumps(header).encode()
    head = struct.pack("<4sBBI", b"\x89RDZ", version, encoding, len(header_bytes))
    body = (struct.pack("<I", content_crc) if version >= 2 else b"") + header_bytes + data_buffer
    return head + struct.pack("<I", zlib.crc32(body, zlib.crc32(head))) + body


def with_file_crc(data: bytes) -> bytes:
    """``data`` with its file CRC (bytes 10..14) recomputed: a deliberate, "valid" edit."""
    if len(data) < 14:
        return data
    crc = zlib.crc32(data[14:], zlib.crc32(data[:10]))
    return data[:10] + struct.pack("<I", crc) + data[14:]


def torch_bf16_raw() -> RawTensor:
    return RawTensor("emb", torch.tensor([[1.0, -2.5], [3.140625, 0.0]], dtype=torch.bfloat16))


def tiny_ctx_tensors() -> list:
    """Tensors the context coder codes with several contexts, a grid codebook, a pruned grid
    tensor and a float16 one (deterministic integer patterns, no RNG: the version-3 golden
    file depends on these bytes)."""
    rows, cols = np.arange(16)[:, None], np.arange(36)[None, :]  # (16, 1), (1, 36)
    wide = (rows * 5 + cols * 7 + (cols // 3) * rows) % 9 - 4  # (16, 36) levels in [-4, 4]
    narrow = ((rows + cols) % 3 - 1) * ((cols % 4) != 0)  # (16, 36) levels in [-1, 1]
    levels = np.where(rows % 3 == 0, wide, narrow)  # rows of two kinds: row classes pay
    step = np.float32(0.0625)
    grid = (np.float64(step) * np.arange(-4, 5)).astype(np.float32)  # (9,) exact grid
    positions = np.arange(60)
    mask = (positions % 4 != 1)
    kept = int(mask.sum())
    return [
        QuantizedTensor("conv.weight", (16, 4, 3, 3), "float32", grid,
                        (levels + 4).reshape(-1)),
        QuantizedTensor("fc.weight", (6, 10), "float16", grid[2:7],
                        ((np.arange(kept) * 3) // 4) % 5, mask),
        QuantizedTensor("head.weight", (8, 36), "float32",
                        np.array([-0.5, -0.125, 0.0, 0.25, 0.75], dtype=np.float32),
                        (levels[:8] % 5 + 5) % 5),
        RawTensor("fc.bias", np.linspace(-1, 1, 6, dtype=np.float32)),
    ]


CTX_MANIFEST = {"model": {"zoo": "tiny-ctx", "kwargs": {}}, "method": "uniform", "objective":
                "baseline", "settings": {"step": 0.0625}, "weights_sha256": "0" * 8,
                "original_bytes": 4 * (576 + 60 + 288 + 6)}


def tiny_dq_tensors() -> list:
    """Dependent-quantization entries (format version 4) of float32 and float16 tensors beside a
    grid tensor and a raw one (deterministic integer patterns: the golden file depends on
    these bytes). Rows restart the state machine: (16, 36) with cols 36, (6, 10) with cols 5."""
    rows, cols = np.arange(16)[:, None], np.arange(36)[None, :]
    levels = ((rows * 5 + cols * 7 + (cols // 3) * rows) % 7 - 3) * ((cols % 5) != 0)
    small = (np.arange(60) * 3 // 4) % 5 - 2  # (60,) in [-2, 2]
    grid = (np.float64(np.float32(0.0625)) * np.arange(-2, 3)).astype(np.float32)
    return [
        DQTensor("conv.weight", (16, 4, 3, 3), "float32", 0.03125, levels.reshape(-1), 36),
        DQTensor("fc.weight", (6, 10), "float16", 0.25, small, 5),
        QuantizedTensor("head.weight", (4, 9), "float32", grid, np.arange(36) % 5),
        RawTensor("fc.bias", np.linspace(-1, 1, 6, dtype=np.float32)),
    ]


DQ_MANIFEST = {"model": {"zoo": "tiny-dq", "kwargs": {}}, "method": "allocate", "objective":
               "baseline", "settings": {"quantizer": "dq"}, "weights_sha256": "0" * 8,
               "original_bytes": 4 * (576 + 60 + 36 + 6)}

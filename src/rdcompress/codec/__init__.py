"""Entropy coders and the ``.rdz`` container whose size is the rate (spec: docs/rdz-format.md).

Bottom layer: pure functions on symbol streams (``ans``, ``huffman``, ``streams``,
``positions``, ``entropy``); on top, the container (``container``) and its accounting
(``summary``); ``safetensors_out`` converts a file back to plain weights.
"""

from rdcompress.codec.container import (
    FORMAT_VERSION,
    MAGIC,
    RdzContents,
    decode_rdz,
    encode_rdz,
    inspect_rdz,
    read_rdz,
    read_rdz_tensors,
    write_rdz,
)
from rdcompress.codec.entropy import (
    empirical_entropy_bits,
    entropy_bits_from_counts,
    mask_entropy_bits,
    paper_huffman_bits,
)
from rdcompress.codec.safetensors_out import decompress_to_safetensors
from rdcompress.codec.streams import decode_stream, encode_stream
from rdcompress.codec.summary import RdzSummary, TensorSummary
from rdcompress.codec.tensors import PrunedTensor, QuantizedTensor, RawTensor

__all__ = [
    "FORMAT_VERSION", "MAGIC", "PrunedTensor", "QuantizedTensor", "RawTensor", "RdzContents",
    "RdzSummary", "TensorSummary", "decode_rdz", "decode_stream", "decompress_to_safetensors",
    "empirical_entropy_bits", "encode_rdz", "encode_stream", "entropy_bits_from_counts",
    "inspect_rdz", "mask_entropy_bits", "paper_huffman_bits", "read_rdz", "read_rdz_tensors",
    "write_rdz",
]

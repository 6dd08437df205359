"""Entropy coders and the ``.rdz`` container whose size is the rate (spec: docs/rdz-format.md).

Bottom layer: pure functions on symbol streams (``rans``, ``ctx`` (context-modelled rANS for
shaped index streams), ``huffman``, ``streams``, ``positions``, ``grid`` (uniform codebooks),
``dq`` (dependent quantization), ``entropy``); ``index_streams`` codes bare integer tensors
and estimates their size; on top, the container (``container``) and its accounting
(``summary``); ``safetensors_out`` converts a file back to plain weights. ``CODERS`` lists
the coders a writer accepts.
"""

from rdcompress.codec.container import (
    CODERS,
    FORMAT_VERSION,
    MAGIC,
    RdzContents,
    decode_rdz,
    encode_rdz,
    entry_bytes,
    inspect_rdz,
    read_rdz,
    read_rdz_tensors,
    write_rdz,
)
from rdcompress.codec.dq import DQTensor
from rdcompress.codec.entropy import (
    empirical_entropy_bits,
    entropy_bits_from_counts,
    mask_entropy_bits,
    paper_huffman_bits,
)
from rdcompress.codec.index_streams import (
    decode_index_stream,
    encode_index_stream,
    index_stream_cost,
)
from rdcompress.codec.safetensors_out import decompress_to_safetensors
from rdcompress.codec.streams import decode_stream, encode_stream
from rdcompress.codec.summary import RdzSummary, TensorSummary
from rdcompress.codec.tensors import PrunedTensor, QuantizedTensor, RawTensor

__all__ = [
    "CODERS", "DQTensor", "FORMAT_VERSION", "MAGIC", "PrunedTensor", "QuantizedTensor", "RawTensor",
    "RdzContents", "RdzSummary", "TensorSummary", "decode_index_stream", "decode_rdz",
    "decode_stream", "decompress_to_safetensors", "empirical_entropy_bits",
    "encode_index_stream", "encode_rdz", "encode_stream", "entropy_bits_from_counts",
    "entry_bytes", "index_stream_cost", "inspect_rdz", "mask_entropy_bits",
    "paper_huffman_bits", "read_rdz", "read_rdz_tensors", "write_rdz",
]

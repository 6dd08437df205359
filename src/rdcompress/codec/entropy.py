"""Pure functions on symbol counts: empirical entropy and the paper's Huffman-size formula."""

from __future__ import annotations

import numpy as np


def symbol_counts(symbols: np.ndarray, alphabet_size: int) -> np.ndarray:
    """(alphabet_size,) int64 counts of a 1-D integer stream."""
    return np.bincount(np.asarray(symbols, dtype=np.int64), minlength=alphabet_size).astype(
        np.int64
    )


def entropy_bits_from_counts(counts: np.ndarray) -> float:
    """Empirical (order-0) entropy of a whole stream in bits: sum_j m_j log2(m / m_j)."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    present = counts[counts > 0]
    if total == 0:
        return 0.0
    return float((present * np.log2(total / present)).sum())


def empirical_entropy_bits(symbols: np.ndarray, alphabet_size: int | None = None) -> float:
    """Empirical entropy in bits of the whole stream (not per symbol)."""
    symbols = np.asarray(symbols)
    if symbols.size == 0:
        return 0.0
    size = int(symbols.max()) + 1 if alphabet_size is None else alphabet_size
    return entropy_bits_from_counts(symbol_counts(symbols, size))


def entropy_per_symbol(symbols: np.ndarray, alphabet_size: int | None = None) -> float:
    """Empirical (order-0) entropy in bits PER SYMBOL; 0 for an empty stream."""
    symbols = np.asarray(symbols)
    return empirical_entropy_bits(symbols, alphabet_size) / symbols.size if symbols.size else 0.0


def mask_entropy_bits(numel: int, kept: int) -> float:
    """Order-0 entropy of a mask with ``kept`` ones among ``numel`` bits: numel * h(kept/numel)."""
    return entropy_bits_from_counts(np.array([kept, numel - kept]))


def paper_huffman_bits(counts: np.ndarray, codebook_bits: int = 32) -> int:
    """The paper's §5.3 cost of one quantized layer in bits.

    sum_j m_j * ceil(log2(m / m_j)) + b * k, with m = sum_j m_j the coded weights, m_j the
    weights of cluster j, k the number of clusters and b = ``codebook_bits`` bits per centroid.
    Empty clusters contribute no weights (their centroid is still counted in k).
    """
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    present = counts[counts > 0]
    if total == 0:
        return codebook_bits * len(counts)
    lengths = np.ceil(np.log2(total / present.astype(np.float64)) - 1e-12).astype(np.int64)
    return int((present * np.maximum(lengths, 0)).sum()) + codebook_bits * len(counts)

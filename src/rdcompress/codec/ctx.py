"""Context-modelled rANS for index streams of shaped tensors (stream coder 4, format version 3).

Weights are not i.i.d.: some rows (filters, kernels) are wider than others, and neighbouring
weights of one row (a conv kernel's taps, a Linear row's inputs) share sign and magnitude. The
model codes symbol ``i`` of an index matrix (``cols`` per row, row-major: a row per filter or
per kernel, whichever the writer finds cheaper) with one of ``R * B`` integer frequency
tables, chosen by

    ctx(i) = class[i // cols] * B + left_bucket(s_{i-1} - z)      (left term 0 at a row start
                                                                    or a lane start)

``class`` is a per-row label in [0, R) written in the stream (forward adaptation: the writer
clusters rows by their histograms), ``z`` the "zero symbol" (the stream's mode), ``B`` the
number of left buckets (:func:`left_bucket`: is the neighbour zero, positive, negative).
The tables are two-pass semi-static (quantized counts, like coder 3) so that decoding is
integer-only and vectorized. Measured on ResNet-20 and LeNet-5 weights this is 2-7 % below
the order-0 entropy *including* its tables (bench/ctx_coding.py); binarized or adaptive models
would cost a vector step per bin and were not needed to get there.

Lanes: ``L`` rANS states, lane ``l`` codes the contiguous segment ``[l*S, min(n, (l+1)*S))``
with ``S = ceil(n / L)``, so that the decoder advances all lanes with one vector step per
position-in-segment and the left neighbour of every lane is the symbol it decoded one step
earlier. Per symbol the coder is coder 3's, with the precision ``P`` of the symbol's table:

    encode s:  if x >= f_s << (32 - P): emit x & 0xFFFF, x >>= 16
               x = (x // f_s) << P | (x % f_s) + c_s
    decode:    slot = x & (2**P - 1); s = owner of slot; x = f_s * (x >> P) + slot - c_s
               if x < 2**16: x = x << 16 | next word

Body (after the stream's coder byte, n and k)::

    varint cols           1 <= cols <= n, n % cols == 0 (rows = n / cols)
    varint z              < k
    u8 R, u8 B            1 <= R <= 8, 1 <= B <= 4
    classes               R > 1 only: rows values of bit_length(R - 1) bits, MSB first, packed
    R*B tables            per context: u8 P (0 = unused context: nothing follows; else 1..16)
                          and k Rice-coded frequencies summing to exactly 2**P
    varint L              1 <= L <= min(n, 4096)
    L u32 states, then u16 words, little-endian, in decoding order (step by step, lanes in
    increasing order). After n symbols every word is read and every lane is at 2**16.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rdcompress.codec._bytes import (
    ByteReader,
    decode_uint_table,
    encode_uint_table,
    encode_varint,
    pack_bits,
    unpack_bits,
)
from rdcompress.codec.rans import (
    MAX_PRECISION,
    STATE_LOW,
    check_payload_end,
    quantize_counts,
    read_payload,
)
from rdcompress.errors import FormatError

MAX_CLASSES = 8
MAX_BUCKETS = 4
MAX_LANES = 4096
# With many lanes the writer gives a lane ~1 KiB of payload (4 state bytes: ~0.4 %).
_BYTES_PER_LANE = 1024
# Below this many lanes a plain Python loop (~1 us a symbol) beats the per-step numpy
# overhead (~20-30 us a step), measured on ResNet-20 layers.
_SCALAR_BELOW_LANES = 32
# The writer's rule: fewer lanes than this would not be decoded faster than one (lanes_for).
_MIN_LANES = 32
_CLASS_CHOICES = (1, 2, 4, 8)
_BUCKET_CHOICES = (1, 2, 3)
_CLASS_ITERATIONS = 5
_ROWS_PER_CLASS = 4  # R row classes need at least 4 R rows
_GATHER_COLUMNS = 32  # rows up to this long: Lloyd gains by gathers, longer: by histograms
_KEY_SHIFT = 17  # context c's slots live at keys [c << 17, c << 17 | 2**P)


@dataclass(frozen=True)
class ContextModel:
    """What the writer chose for one stream (all of it is stored in the stream)."""

    cols: int  # row length: the stream is a (n // cols, cols) matrix
    zero: int  # z, the symbol whose distance to s_{i-1} is the left context
    classes: np.ndarray  # (rows,) int64 in [0, n_classes): each row's table set
    n_classes: int  # R
    n_buckets: int  # B


# ----------------------------------------------------------------------------- contexts


def left_bucket(previous: np.ndarray, zero: int, buckets: int) -> np.ndarray:
    """The left context of a symbol whose left neighbour is ``previous``: with d = previous - z
    clamped to [-h, h], h = B // 2, the zigzag fold (0, +1, -1, +2, -2 -> 0, 1, 2, 3, 4) capped
    at B - 1. B = 2: zero / not; B = 3: zero / positive / negative (a kernel's neighbouring
    taps share their sign: 0.3-1.2 % smaller than magnitude buckets on ResNet-20 / LeNet-5)."""
    half = buckets // 2
    difference = np.clip(np.asarray(previous, dtype=np.int64) - zero, -half, half)
    folded = np.where(difference > 0, 2 * difference - 1, -2 * difference)
    return np.minimum(folded, buckets - 1)


def segment_length(count: int, lanes: int) -> int:
    """S: lane l codes positions [l*S, min(n, (l+1)*S))."""
    return -(-count // lanes)


def contexts_of(symbols: np.ndarray, model: ContextModel, lanes: int) -> np.ndarray:
    """(n,) context of every position (the definition in the module doc, vectorized)."""
    count = len(symbols)
    positions = np.arange(count)
    base = model.classes[positions // model.cols] * model.n_buckets
    left = np.zeros(count, dtype=np.int64)
    if model.n_buckets > 1 and count > 1:
        left[1:] = left_bucket(symbols[:-1], model.zero, model.n_buckets)
        starts = (positions % model.cols == 0) | (positions % segment_length(count, lanes) == 0)
        left[starts] = 0
    return base + left


# ----------------------------------------------------------------------------- the writer's model


def candidate_cols(count: int, shape: tuple[int, ...] | None) -> tuple[int, ...]:
    """Row lengths the writer tries for ``count`` symbols of a tensor of ``shape``: for a dense
    tensor of >= 2 dimensions a row per ``shape[0]`` slice (a conv filter, a Linear output)
    and, with >= 3 dimensions, a row per ``shape[0] * shape[1]`` slice (a conv kernel, whose
    per-kernel row classes pay on ResNet-20); anything else (1-D, the kept indices of pruned
    tensors) is one row. Finer rows (a kernel's lines) were measured and almost never win."""
    one_row = (max(count, 1),)
    if shape is None or len(shape) < 2 or count == 0:
        return one_row
    dims = [int(d) for d in shape]
    if math.prod(dims) != count:
        return one_row
    out = []
    for start in range(1, min(3, len(dims))):
        cols = math.prod(dims[start:])
        if cols >= 2 and cols not in out:
            out.append(cols)
    return tuple(out) or one_row


def _left_keys(matrix: np.ndarray, alphabet_size: int, zero: int, buckets: int) -> np.ndarray:
    """(rows, cols) key of every symbol: left bucket * k + symbol, the left bucket being
    :func:`left_bucket` of s_{i-1}, 0 at a row start (lane starts are ignored while searching)."""
    left = np.zeros_like(matrix)
    left[:, 1:] = left_bucket(matrix[:, :-1], zero, buckets)
    return left * alphabet_size + matrix


def _assign_classes(keys: np.ndarray, alphabet_size: int, buckets: int,
                    class_counts: list[int], iterations: int) -> list[np.ndarray]:
    """(rows,) classes for each R in ``class_counts`` over the (rows, cols) symbol keys: start
    from the quantiles of each row's mean code length, then move every row to the class whose
    tables code it cheapest (Lloyd iterations; all R at once as one set of sum(R) classes).
    Everything is counted per symbol (bincount, gathers): no matrix product, whose BLAS threads
    crawl on a busy machine, and no (rows, B*k) histograms for rows of a few symbols."""
    rows, n_keys = keys.shape[0], buckets * alphabet_size
    total = np.bincount(keys.reshape(-1), minlength=n_keys)
    global_cost = -np.log2((total + 0.5) / (total.sum() + 0.5 * n_keys))
    order = np.argsort(global_cost[keys].mean(1), kind="stable")
    offsets = np.cumsum(class_counts) - class_counts  # candidate c owns [offsets[c], +R_c)
    n_labels = int(sum(class_counts))
    classes = np.empty((len(class_counts), rows), dtype=np.int64)
    for index, n_classes in enumerate(class_counts):
        classes[index, order] = np.arange(rows) * n_classes // rows
    for _ in range(iterations):
        labels = (classes + offsets[:, None])[:, :, None] * n_keys + keys[None]
        tables = np.bincount(labels.reshape(-1), minlength=n_labels * n_keys).reshape(
            n_labels, buckets, alphabet_size) + 0.02
        log_p = np.log2(tables / tables.sum(2, keepdims=True)).reshape(n_labels, n_keys)
        gains = _row_gains(np.ascontiguousarray(log_p.T), keys)  # (rows, sum R)
        updated = np.stack([np.argmax(gains[:, start:start + n_classes], axis=1)
                            for start, n_classes in zip(offsets, class_counts, strict=True)])
        if np.array_equal(updated, classes):
            break
        classes = updated
    return list(classes)


_RICE_PARAMETERS = np.arange(0, 41)
_TABLE_PRECISIONS = (6, 8, 10, 12, 14, 16)  # rans.choose_model's candidates


def _rice_bytes(values: np.ndarray) -> np.ndarray:
    """(T,) exact byte lengths of ``_bytes.encode_uint_table`` of each row of (T, k) values
    (the same best-parameter search, without building any bit string)."""
    values = np.asarray(values, dtype=np.int64)
    if values.shape[-1] == 0:
        return np.ones(values.shape[0], dtype=np.int64)
    top = int(values.max(initial=0)).bit_length()
    parameters = _RICE_PARAMETERS[:min(top + 1, 40) + 1]
    bits = ((values[:, None, :] >> parameters[None, :, None]) + 1 + parameters[None, :, None]
            ).sum(-1)  # (T, parameters)
    return 1 + (bits.min(1) + 7) // 8


def _approx_rice_bytes(values: np.ndarray) -> np.ndarray:
    """(T,) byte lengths of each row's Rice table, trying only the parameters next to the
    best one for the row's mean (the cost is convex in r, so this finds the minimum unless the
    mean misleads: an estimate, used to score candidates)."""
    count = values.shape[1]
    mean = values.sum(1) / max(count, 1)
    centre = np.floor(np.log2(np.maximum(mean, 1.0))).astype(np.int64)  # (T,)
    parameters = np.maximum(centre[:, None] + np.array([-1, 0, 1]), 0)  # (T, 3)
    bits = ((values[:, None, :] >> parameters[:, :, None]).sum(2)
            + count * (1 + parameters))  # (T, 3)
    return 1 + (bits.min(1) + 7) // 8


def _approx_table_bits(tables: np.ndarray) -> np.ndarray:
    """(T, k) count tables -> (T,) estimated bits of each stored table (its precision byte
    included) plus its symbols' code: the best precision as the writer chooses it
    (:func:`_choose_table`), with the counts scaled by flooring instead of
    ``quantize_counts``' exact rounding. Unused tables cost their precision byte."""
    out = np.full(len(tables), 8.0)
    totals = tables.sum(1)
    used = totals > 0
    tables, totals = tables[used], totals[used]
    if not len(totals):
        return out
    present = tables > 0
    precisions = np.array(_TABLE_PRECISIONS)[:, None, None]  # (P, 1, 1)
    scaled = np.where(present, np.maximum((tables << precisions) // totals[:, None], 1), 0)
    sums = scaled.sum(2, keepdims=True)  # (P, T, 1)
    payload = (tables * np.log2(sums / np.maximum(scaled, 1))).sum(2)  # (P, T)
    cost = 8.0 * _approx_rice_bytes(scaled.reshape(-1, scaled.shape[2])).reshape(
        payload.shape)
    cost += payload
    cost[present.sum(1)[None, :] > (1 << precisions[:, :, 0])] = np.inf
    out[used] += cost.min(0)
    return out


def _row_gains(log_p_by_key: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """(rows, labels) sum over each row's symbols of log2 p(symbol | label), for (n_keys,
    labels) ``log_p_by_key`` and (rows, cols) ``keys``: short rows accumulate one gather per
    column; long rows contract their (rows, n_keys) histograms (einsum: no BLAS threads)."""
    rows, cols = keys.shape
    n_keys = log_p_by_key.shape[0]
    if cols <= _GATHER_COLUMNS:
        gains = log_p_by_key[keys[:, 0]]
        for column in range(1, cols):
            gains += log_p_by_key[keys[:, column]]
        return gains
    histograms = np.bincount((np.arange(rows)[:, None] * n_keys + keys).reshape(-1),
                             minlength=rows * n_keys).reshape(rows, n_keys)
    return np.einsum("rk,kl->rl", histograms.astype(np.float64), log_p_by_key)


def search_context_model(symbols: np.ndarray, alphabet_size: int,
                         cols: int) -> tuple[ContextModel, float]:
    """The writer's model (R, B, classes) and its estimated bits (payload + tables + classes).

    Greedy: the number of left buckets B is chosen with one row class, then the number of
    classes R with that B; every candidate is scored by :func:`_approx_table_bits` (all
    candidates of a step in one call: the arrays are small, numpy's per-call cost is not).
    """
    matrix = symbols.reshape(-1, cols)
    rows = matrix.shape[0]
    zero = int(np.argmax(np.bincount(symbols, minlength=alphabet_size)))
    # step 1: B with one class; each candidate's tables are its (B, k) totals
    bucket_choices = _BUCKET_CHOICES if cols > 1 else (1,)
    keys = {b: _left_keys(matrix, alphabet_size, zero, b) for b in bucket_choices}
    candidates = [ContextModel(cols, zero, np.zeros(rows, dtype=np.int64), 1, b)
                  for b in bucket_choices]
    tables = [np.bincount(keys[b].reshape(-1), minlength=b * alphabet_size).reshape(
        b, alphabet_size) for b in bucket_choices]
    costs = _candidate_bits(tables, [0] * len(tables))
    best = int(np.argmin(costs))
    chosen, bits = candidates[best], float(costs[best])
    # step 2: R > 1 with that B
    buckets = chosen.n_buckets
    counts = [r for r in _CLASS_CHOICES[1:] if r * _ROWS_PER_CLASS <= rows]
    candidates, tables, class_bits = [], [], []
    assigned = _assign_classes(keys[buckets], alphabet_size, buckets, counts,
                               _CLASS_ITERATIONS) if counts else []
    n_keys = buckets * alphabet_size
    for n_classes, classes in zip(counts, assigned, strict=True):
        candidates.append(ContextModel(cols, zero, classes, n_classes, buckets))
        labels = (classes[:, None] * n_keys + keys[buckets]).reshape(-1)
        tables.append(np.bincount(labels, minlength=n_classes * n_keys).reshape(
            -1, alphabet_size))
        class_bits.append(rows * (n_classes - 1).bit_length())
    if candidates:
        costs = _candidate_bits(tables, class_bits)
        best = int(np.argmin(costs))
        if costs[best] < bits:
            chosen, bits = candidates[best], float(costs[best])
    return chosen, bits


def _candidate_bits(tables: list[np.ndarray], extra_bits: list[int]) -> np.ndarray:
    """Each candidate's estimated bits: the sum over its tables, plus its extra bits."""
    sizes = np.array([len(t) for t in tables], dtype=np.int64)
    per_table = _approx_table_bits(np.concatenate(tables).astype(np.int64))
    starts = np.cumsum(sizes) - sizes
    return np.add.reduceat(per_table, starts) + np.array(extra_bits)


def lanes_for(payload_bytes: float, count: int) -> int:
    """The lane count the writer uses for an estimated payload: one lane while the payload
    would give fewer lanes than the vector decoder needs to beat the scalar one (whose speed
    does not depend on the lane count, while every lane costs 4 state bytes), else a lane per
    ~1 KiB (states ~0.4 %), at most min(n, 4096)."""
    lanes = round(payload_bytes / _BYTES_PER_LANE)
    if lanes < _MIN_LANES:
        return 1
    return int(min(MAX_LANES, count, lanes))


@dataclass
class _Plan:
    model: ContextModel
    lanes: int
    contexts: np.ndarray  # (n,) context per position
    precisions: np.ndarray  # (R*B,) P per context, 0 = unused
    tables: np.ndarray  # (R*B, k) frequencies

    def payload_bits(self, symbols: np.ndarray) -> float:
        f = self.tables[self.contexts, symbols]
        return float((self.precisions[self.contexts] - np.log2(f)).sum())


def _choose_table(counts: np.ndarray) -> tuple[int, np.ndarray]:
    """``rans.choose_model`` (the precision and table with the fewest table + payload bits)
    with every candidate's table size computed at once."""
    present = counts > 0
    candidates = [p for p in _TABLE_PRECISIONS if int(present.sum()) <= 1 << p]
    tables = np.stack([quantize_counts(counts, p) for p in candidates])  # (P, k)
    safe = np.where(present, tables, 1)
    payload = (counts * (np.array(candidates)[:, None] - np.log2(safe))).sum(1)
    best = int(np.argmin(8 * _rice_bytes(tables) + payload))
    return candidates[best], tables[best]


def _best_model(symbols: np.ndarray, alphabet_size: int,
                cols_options: Sequence[int]) -> tuple[ContextModel, float]:
    """The searched model of the row length whose model has the fewest estimated bits."""
    found = [search_context_model(symbols, alphabet_size, cols) for cols in cols_options]
    return min(found, key=lambda candidate: candidate[1])


def _plan(symbols: np.ndarray, alphabet_size: int, cols_options: Sequence[int]) -> _Plan:
    model, _ = _best_model(symbols, alphabet_size, cols_options)
    n_contexts = model.n_classes * model.n_buckets
    lanes = 1
    for _ in range(2):  # lanes change the contexts at lane starts: settle them once
        contexts = contexts_of(symbols, model, lanes)
        counts = np.bincount(contexts * alphabet_size + symbols,
                             minlength=n_contexts * alphabet_size).reshape(n_contexts, -1)
        precisions = np.zeros(n_contexts, dtype=np.int64)
        tables = np.zeros_like(counts)
        for context in np.flatnonzero(counts.sum(1)):
            precisions[context], tables[context] = _choose_table(counts[context])
        plan = _Plan(model, lanes, contexts, precisions, tables)
        wanted = lanes_for(plan.payload_bits(symbols) / 8, len(symbols))
        if wanted == lanes:
            break
        lanes = wanted
    return plan


def _head_bytes(plan: _Plan, count: int) -> bytes:
    model = plan.model
    head = bytearray(encode_varint(model.cols) + encode_varint(model.zero))
    head += bytes([model.n_classes, model.n_buckets])
    if model.n_classes > 1:
        width = (model.n_classes - 1).bit_length()
        bits = (model.classes[:, None] >> np.arange(width - 1, -1, -1)) & 1
        head += pack_bits(bits.reshape(-1))
    for precision, table in zip(plan.precisions.tolist(), plan.tables, strict=True):
        head.append(precision)
        if precision:
            head += encode_uint_table(table)
    return bytes(head + encode_varint(plan.lanes))


def estimate_ctx_bytes(symbols: np.ndarray, alphabet_size: int,
                       cols_options: Sequence[int]) -> float | None:
    """Body bytes of :func:`encode_ctx` estimated without running the coder or quantizing
    tables: the model search's ideal code length + estimated tables, the class bits, the fixed
    fields and 4 bytes a lane. None when the chosen model has one context (the writer then
    writes coder 3). tests/codec/test_ctx.py checks the agreement."""
    symbols = np.asarray(symbols, dtype=np.int64)
    model, bits = _best_model(symbols, alphabet_size, cols_options)
    if model.n_classes * model.n_buckets == 1:
        return None
    payload = bits / 8
    lanes = lanes_for(payload, len(symbols))
    fixed = 2 + len(encode_varint(model.cols)) + len(encode_varint(model.zero)) + len(
        encode_varint(lanes))
    return payload + fixed + 4 * lanes


def encode_ctx(symbols: np.ndarray, alphabet_size: int,
               cols_options: Sequence[int]) -> tuple[bytes, int]:
    """Body of a coder-4 stream of >= 2 distinct symbols, and its number of contexts in use.

    ``symbols`` (n,) in [0, k); ``cols_options``: row lengths dividing n (the writer keeps
    the one whose model has the fewest estimated bits; :func:`candidate_cols`). A model with
    one context in use is what coder 3 does more cheaply: then nothing is coded (empty body)
    and the caller writes coder 3 instead.
    """
    symbols = np.asarray(symbols, dtype=np.int64)
    plan = _plan(symbols, alphabet_size, cols_options)
    contexts_used = int((plan.precisions > 0).sum())
    if contexts_used <= 1:
        return b"", contexts_used
    f = plan.tables[plan.contexts, symbols].astype(np.uint64)
    cumulative = (np.cumsum(plan.tables, axis=1) - plan.tables)[plan.contexts, symbols]
    precision = plan.precisions[plan.contexts].astype(np.uint64)
    encode = _encode_scalar if plan.lanes < _SCALAR_BELOW_LANES else _encode_lanes
    states, words = encode(f, cumulative.astype(np.uint64), precision, plan.lanes)
    body = (_head_bytes(plan, len(symbols)) + states.astype("<u4").tobytes()
            + words.astype("<u2").tobytes())
    return body, contexts_used


def _lane_grid(count: int, lanes: int) -> tuple[int, np.ndarray]:
    """(S, (S, L) position of lane l at step t, -1 past the end)."""
    steps = segment_length(count, lanes)
    grid = np.arange(lanes)[None, :] * steps + np.arange(steps)[:, None]
    return steps, np.where(grid < count, grid, -1)


def _encode_lanes(f, cumulative, precision, lanes):
    """(L,) final states and the words in decoding order; all lanes advance together."""
    steps, grid = _lane_grid(len(f), lanes)
    valid = np.maximum(grid, 0)
    # (S, L) per step and lane; past-the-end cells never reach a state (sliced off below).
    f_grid, c_grid, p_grid = f[valid], cumulative[valid], precision[valid]
    bound_grid = f_grid << (np.uint64(32) - p_grid)
    active_of = (grid >= 0).sum(1).tolist()  # active lanes are a prefix
    states = np.full(lanes, STATE_LOW, dtype=np.uint64)
    chunks = []
    low16, sixteen = np.uint64(0xFFFF), np.uint64(16)
    for step in range(steps - 1, -1, -1):
        active = active_of[step]
        x = states[:active]
        emit = x >= bound_grid[step, :active]
        chunks.append((x[emit] & low16).astype(np.uint16))
        x = np.where(emit, x >> sixteen, x)
        quotient, remainder = np.divmod(x, f_grid[step, :active])
        states[:active] = (quotient << p_grid[step, :active]) + remainder + c_grid[step, :active]
    words = np.concatenate(chunks[::-1]) if chunks else np.zeros(0, np.uint16)
    return states, words


def _decoding_order(count: int, lanes: int) -> tuple[np.ndarray, np.ndarray]:
    """(n,) positions in the order the decoder meets them (step by step, lanes in increasing
    order) and the lane of each."""
    _, grid = _lane_grid(count, lanes)
    flat = grid.reshape(-1)
    cells = np.flatnonzero(flat >= 0)
    return flat[cells], cells % lanes


def _encode_scalar(f, cumulative, precision, lanes):
    """:func:`_encode_lanes` one symbol at a time in plain Python (few lanes; the reference).

    Symbols are coded in exactly the reverse of the decoding order, so the words, reversed
    at the end, come out in decoding order.
    """
    order, lane_of = _decoding_order(len(f), lanes)
    f, cumulative, precision = f[order], cumulative[order], precision[order]
    bound = (f << (np.uint64(32) - precision)).tolist()
    states = [STATE_LOW] * lanes
    words: list[int] = []
    emit = words.append
    for lane, fs, cs, ps, limit in zip(lane_of[::-1].tolist(), f[::-1].tolist(),
                                       cumulative[::-1].tolist(), precision[::-1].tolist(),
                                       bound[::-1], strict=True):
        x = states[lane]
        if x >= limit:
            emit(x & 0xFFFF)
            x >>= 16
        quotient, remainder = divmod(x, fs)
        states[lane] = (quotient << ps) + remainder + cs
    words.reverse()
    return np.array(states, dtype=np.uint64), np.array(words, dtype=np.uint16)


# ----------------------------------------------------------------------------- the reader


@dataclass
class _Tables:
    """Flattened tables for lookups: entry e of context c covers keys [c << 17 | c_e, ...)."""

    keys: np.ndarray  # (E,) sorted
    owner: np.ndarray  # (E,) context of each entry
    symbol: np.ndarray  # (E,)
    freq: np.ndarray  # (E,) uint64
    start: np.ndarray  # (E,) uint64 cumulative start within its context
    precisions: np.ndarray  # (contexts,) P, 0 = unused


def _read_model(reader: ByteReader, count: int, alphabet_size: int):
    where = reader.where
    cols = reader.read_varint()
    if not 1 <= cols <= count or count % cols:
        raise FormatError(f"{where}: context row length {cols} does not divide the {count} "
                          f"symbols")
    zero = reader.read_varint()
    if zero >= alphabet_size:
        raise FormatError(f"{where}: zero symbol {zero} is outside the alphabet "
                          f"[0, {alphabet_size})")
    n_classes, n_buckets = reader.read_u8(), reader.read_u8()
    if not (1 <= n_classes <= MAX_CLASSES and 1 <= n_buckets <= MAX_BUCKETS):
        raise FormatError(f"{where}: {n_classes} row classes x {n_buckets} left buckets; "
                          f"expected 1..{MAX_CLASSES} x 1..{MAX_BUCKETS}")
    rows = count // cols
    classes = np.zeros(rows, dtype=np.int64)
    if n_classes > 1:
        width = (n_classes - 1).bit_length()
        bits = unpack_bits(reader.read((rows * width + 7) // 8), rows * width, where)
        classes = bits.reshape(rows, width).astype(np.int64) @ (1 << np.arange(width - 1, -1, -1))
        if int(classes.max()) >= n_classes:
            raise FormatError(f"{where}: a row class is {int(classes.max())}, at most "
                              f"{n_classes - 1}")
    n_contexts = n_classes * n_buckets
    precisions = np.zeros(n_contexts, dtype=np.int64)
    parts = []
    for context in range(n_contexts):
        precision = reader.read_u8()
        if precision > MAX_PRECISION:
            raise FormatError(f"{where}: context {context} precision {precision} is above "
                              f"{MAX_PRECISION}")
        if not precision:
            continue
        table = decode_uint_table(reader, alphabet_size, max_value=1 << precision)
        if int(table.sum()) != 1 << precision:
            raise FormatError(f"{where}: context {context} frequencies sum to "
                              f"{int(table.sum())}, the model needs exactly 2**{precision}")
        present = np.flatnonzero(table)
        starts = (np.cumsum(table) - table)[present]
        parts.append((context, present, table[present], starts))
        precisions[context] = precision
    lanes = reader.read_varint()
    if not 1 <= lanes <= min(count, MAX_LANES):
        raise FormatError(f"{where}: {lanes} lanes for {count} symbols (expected 1..min(n, "
                          f"{MAX_LANES}))")
    model = ContextModel(cols, zero, classes, n_classes, n_buckets)
    if not parts:
        raise FormatError(f"{where}: every context is unused")
    tables = _Tables(
        keys=np.concatenate([(c << _KEY_SHIFT) + s for c, _, _, s in parts]),
        owner=np.concatenate([np.full(len(p), c) for c, p, _, _ in parts]),
        symbol=np.concatenate([p for _, p, _, _ in parts]),
        freq=np.concatenate([f for _, _, f, _ in parts]).astype(np.uint64),
        start=np.concatenate([s for _, _, _, s in parts]).astype(np.uint64),
        precisions=precisions)
    return model, lanes, tables


def decode_ctx(reader: ByteReader, count: int, alphabet_size: int) -> np.ndarray:
    """Inverse of :func:`encode_ctx`; consumes the rest of ``reader``. Returns (count,) int64.

    ``count`` (>= 1) and ``alphabet_size`` must already be bounded by the caller.
    """
    where = reader.where
    model, lanes, tables = _read_model(reader, count, alphabet_size)
    states, words = read_payload(reader, lanes, where, "context-coder", "a context-coder")
    decode = _decode_scalar if lanes < _SCALAR_BELOW_LANES else _decode_lanes
    symbols, used, final = decode(states, words, model, tables, count, where, alphabet_size)
    check_payload_end(used, words, final, count, where, "context-coder")
    return symbols


def _position_grids(model: ContextModel, count: int, lanes: int):
    """(S, L) base context (class * B) and left-context allowed, per step and lane."""
    steps, grid = _lane_grid(count, lanes)
    valid = np.maximum(grid, 0)
    base = model.classes[valid // model.cols] * model.n_buckets
    has_left = (grid > 0) & (valid % model.cols != 0) & (np.arange(steps)[:, None] > 0)
    return steps, grid, base, has_left


def _slot_tables(tables: _Tables, alphabet_size: int):
    """Direct lookups for the vector decoder: (offset per context, entry per slot, and the
    entries' symbol / frequency / start with one sentinel entry appended). Unused contexts
    share one slot mapping to the sentinel, whose symbol ``alphabet_size`` is refused after
    decoding. Slots: at most 32 contexts x 2**16, 8 MiB of int32."""
    sizes = np.where(tables.precisions > 0, 1 << tables.precisions, 0)
    offsets = np.cumsum(sizes) - sizes
    sentinel_slot, sentinel = int(sizes.sum()), len(tables.symbol)
    offsets = np.where(sizes > 0, offsets, sentinel_slot)
    slot_entry = np.empty(sentinel_slot + 1, dtype=np.int32)
    slot_entry[sentinel_slot] = sentinel
    for context in np.flatnonzero(sizes).tolist():
        entries = np.flatnonzero(tables.owner == context)
        widths = np.diff(np.append(tables.start[entries].astype(np.int64), sizes[context]))
        slot_entry[offsets[context]:offsets[context] + sizes[context]] = np.repeat(
            entries, widths)
    symbol = np.append(tables.symbol, alphabet_size)
    freq = np.append(tables.freq, np.uint64(1))
    start = np.append(tables.start, np.uint64(0))
    return offsets.astype(np.uint64), slot_entry, symbol, freq, start


def _decode_lanes(states, words, model, tables, count, where, alphabet_size):
    """All lanes advance together: one vector step per position within a lane's segment."""
    lanes = len(states)
    steps, grid, base, has_left = _position_grids(model, count, lanes)
    offsets, slot_entry, symbol_of, freq_of, start_of = _slot_tables(tables, alphabet_size)
    shifts = tables.precisions.astype(np.uint64)
    masks = (np.uint64(1) << shifts) - np.uint64(1)
    # context = lookup[key + previous symbol], key = (class * 2 + has_left) * (k + 1): the
    # left bucket of every symbol (the sentinel k included), or 0
    buckets = left_bucket(np.arange(alphabet_size + 1), model.zero, model.n_buckets)
    lookup = (np.arange(model.n_classes)[:, None, None] * model.n_buckets
              + np.array([0, 1])[None, :, None] * buckets[None, None, :]).reshape(-1)
    key_grid = (base // model.n_buckets * 2 + has_left) * (alphabet_size + 1)
    active_of = (grid >= 0).sum(1).tolist()
    out = np.zeros((steps, lanes), dtype=np.int64)  # (S, L): lane l's t-th symbol at [t, l]
    x = states.copy()
    used, available = 0, len(words)
    low = np.uint64(STATE_LOW)
    for step in range(steps):
        active = active_of[step]
        state = x[:active]
        context = lookup[key_grid[step, :active] + out[step - 1, :active]]  # row -1: unused
        slot = state & masks[context]
        entry = slot_entry[offsets[context] + slot]
        state = freq_of[entry] * (state >> shifts[context]) + slot - start_of[entry]
        need = state < low
        needed = int(np.count_nonzero(need))
        if needed:
            if used + needed > available:
                raise FormatError(f"{where}: context-coder payload ends after step {step} of "
                                  f"{steps}")
            state[need] = (state[need] << np.uint64(16)) | words[used:used + needed]
            used += needed
        x[:active] = state
        out[step, :active] = symbol_of[entry]
    # lane-major order is position order; cells past the end are the tail
    symbols = out.T.reshape(-1)[:count]
    if int(symbols.max()) >= alphabet_size:
        raise FormatError(f"{where}: a symbol is coded in an unused context")
    return symbols, used, x


def _decode_scalar(states, words, model, tables, count, where, alphabet_size):
    """The same decoder one symbol at a time in plain Python (few lanes; the reference)."""
    import bisect

    lanes = len(states)
    order, lane_of = _decoding_order(count, lanes)
    base = (model.classes[order // model.cols] * model.n_buckets).tolist()
    segment = segment_length(count, lanes)
    has_left = ((order % model.cols != 0) & (order % segment != 0)).tolist()
    bucket_of = left_bucket(np.arange(alphabet_size), model.zero, model.n_buckets).tolist()
    keys, owner = tables.keys.tolist(), tables.owner.tolist()
    symbol_of, f_of, start_of = (tables.symbol.tolist(), tables.freq.tolist(),
                                 tables.start.tolist())
    precisions = tables.precisions.tolist()
    masks = [(1 << p) - 1 for p in precisions]
    key_of = [c << _KEY_SHIFT for c in range(len(precisions))]
    word_list, available, used = words.tolist(), len(words), 0
    x = [int(s) for s in states]
    previous = [0] * lanes
    out = [0] * count
    search = bisect.bisect_right
    for position, lane, context, left in zip(order.tolist(), lane_of.tolist(), base, has_left,
                                             strict=True):
        if left:
            context += bucket_of[previous[lane]]
        precision = precisions[context]
        state = x[lane]
        slot = state & masks[context]
        entry = search(keys, key_of[context] + slot) - 1
        if owner[entry] != context:  # entry -1 (the last entry) belongs to another context
            raise FormatError(f"{where}: a symbol is coded in an unused context")
        state = f_of[entry] * (state >> precision) + slot - start_of[entry]
        if state < STATE_LOW:
            if used == available:
                raise FormatError(f"{where}: context-coder payload ends after step "
                                  f"{position % segment} of {segment}")
            state = (state << 16) | word_list[used]
            used += 1
        x[lane] = state
        previous[lane] = out[position] = symbol_of[entry]
    return np.array(out, dtype=np.int64), used, x


__all__ = ["ContextModel", "candidate_cols", "contexts_of", "decode_ctx",
           "encode_ctx", "estimate_ctx_bytes", "lanes_for", "search_context_model"]

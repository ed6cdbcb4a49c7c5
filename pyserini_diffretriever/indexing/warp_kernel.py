"""WARP_SELECT scoring kernels: score packed residual codes through lookup tables, reduce per document.

Why a kernel of our own: WARP's step (Scheerer et al., SIGIR 2025) scores *every* stored vector of the probed
cells as ``centroid score + sum of table lookups over its packed codes`` and keeps, per document and query vector,
the maximum. FAISS's IVF scanners (``search_preassigned``) return a top-k per query vector instead, through a
heap, and decode SQ codes rather than reading byte tables, so they do not offer this reduction (measured in the
README, "Multi-vector search at scale"). The loop is a few lines; numba compiles it. Without numba the same
functions run in numpy (several times slower; the tests check both agree).

Shapes (``K`` query vectors, ``P`` probed cells per query vector, ``B`` code bytes per stored vector)::

    codes        uint8  [num_vectors, B]   cell-major (a memory map)
    doc_numbers  int32  [num_vectors]      document of each stored vector (a memory map)
    cell_offsets int64  [nlist + 1]        rows of cell c are cell_offsets[c]:cell_offsets[c + 1]
    cells        int64  [K, P]             probed cells per query vector
    cell_scores  f32    [K, P]             query vector . centroid of each probed cell
    tables       f32    [K, B, 256]        per query vector: score contribution of each byte value at each position
    impute       f32    [K]                score of a document with no vector in a query vector's probed cells

:func:`probe_maxsim` is what a search calls: it scores and reduces in one pass, keeping each candidate's best
score per query vector in a slot found through a reusable ``document -> slot`` array (:func:`new_scratch`), so
no per-vector triple is materialised and no sort runs. :func:`score_probed` + :func:`reduce_documents` are the
same computation in two steps (and the numpy reference). :func:`affine_uint8_maxsim` scores the SQ8 re-rank tier
from its bytes, without a float copy of the rows read.
"""

from __future__ import annotations

import numpy as np

try:  # numba is a dependency; the numpy path keeps the package importable where its wheel is missing
    import numba

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - exercised only without numba
    numba = None
    HAVE_NUMBA = False


def _probed_count(cell_offsets: np.ndarray, cells: np.ndarray) -> int:
    return int((cell_offsets[cells + 1] - cell_offsets[cells]).sum())


def score_probed_numpy(codes, doc_numbers, cell_offsets, cells, cell_scores, tables):
    """``(docs int32 [m], query_vector int32 [m], scores f32 [m])`` for every stored vector of the probed cells."""
    k, probes = cells.shape
    pieces_docs, pieces_query, pieces_scores = [], [], []
    positions = np.arange(codes.shape[1])
    for i in range(k):
        for p in range(probes):
            lo, hi = int(cell_offsets[cells[i, p]]), int(cell_offsets[cells[i, p] + 1])
            if hi == lo:
                continue
            block = np.asarray(codes[lo:hi])
            scores = cell_scores[i, p] + tables[i][positions, block].sum(axis=1, dtype=np.float32)
            pieces_docs.append(np.asarray(doc_numbers[lo:hi], dtype=np.int32))
            pieces_query.append(np.full(hi - lo, i, dtype=np.int32))
            pieces_scores.append(scores.astype(np.float32))
    if not pieces_docs:
        return np.empty(0, np.int32), np.empty(0, np.int32), np.empty(0, np.float32)
    return np.concatenate(pieces_docs), np.concatenate(pieces_query), np.concatenate(pieces_scores)


def reduce_documents_numpy(docs, query_vector, scores, impute, k):
    """MaxSim per candidate: max per (document, query vector), imputed where missing, clamped at 0, summed.

    Returns ``(documents int64 [c], totals f32 [c])`` for the ``c`` distinct documents seen.
    """
    if len(docs) == 0:
        return np.empty(0, np.int64), np.empty(0, np.float32)
    order = np.lexsort((-scores, query_vector, docs))  # best score first inside each (doc, query vector) run
    docs, query_vector, scores = docs[order], query_vector[order], scores[order]
    first = np.ones(len(docs), dtype=bool)
    first[1:] = (docs[1:] != docs[:-1]) | (query_vector[1:] != query_vector[:-1])
    docs, query_vector, scores = docs[first], query_vector[first], scores[first]
    unique, start = np.unique(docs, return_index=True)
    best = np.repeat(np.maximum(impute, 0)[None, :].astype(np.float32), len(unique), axis=0)
    row = np.repeat(np.arange(len(unique)), np.diff(np.append(start, len(docs))))
    best[row, query_vector] = np.maximum(scores, 0)
    return unique.astype(np.int64), best.sum(axis=1, dtype=np.float32)


if HAVE_NUMBA:

    @numba.njit(cache=True, nogil=True, inline="always")
    def _code_score(codes, row, table, base):  # pragma: no cover
        """``base`` plus the table value of each byte of code ``row`` (WARP's implicit decompression)."""
        value = base
        for j in range(codes.shape[1]):
            value += table[j, codes[row, j]]
        return value

    @numba.njit(cache=True, nogil=True)
    def _score_probed_numba(codes, doc_numbers, cell_offsets, cells, cell_scores, tables, total):  # pragma: no cover
        docs = np.empty(total, np.int32)
        query_vector = np.empty(total, np.int32)
        scores = np.empty(total, np.float32)
        position = 0
        for i in range(cells.shape[0]):
            table = tables[i]
            for p in range(cells.shape[1]):
                cell = cells[i, p]
                base = cell_scores[i, p]
                for r in range(cell_offsets[cell], cell_offsets[cell + 1]):
                    value = _code_score(codes, r, table, base)
                    docs[position] = doc_numbers[r]
                    query_vector[position] = i
                    scores[position] = value
                    position += 1
        return docs, query_vector, scores

    @numba.njit(cache=True, nogil=True)
    def _reduce_documents_numba(docs, query_vector, scores, impute, k):  # pragma: no cover
        order = np.argsort(docs)
        unique = np.empty(len(docs), np.int64)
        totals = np.empty(len(docs), np.float32)
        best = np.empty(k, np.float32)
        seen = np.zeros(k, np.bool_)
        count = 0
        position = 0
        while position < len(order):
            doc = docs[order[position]]
            seen[:] = False
            while position < len(order) and docs[order[position]] == doc:
                entry = order[position]
                i = query_vector[entry]
                if not seen[i] or scores[entry] > best[i]:
                    best[i] = scores[entry]
                    seen[i] = True
                position += 1
            total = np.float32(0.0)
            for i in range(k):
                value = best[i] if seen[i] else impute[i]
                if value > 0:
                    total += value
            unique[count] = doc
            totals[count] = total
            count += 1
        return unique[:count], totals[:count]

    @numba.njit(cache=True, nogil=True)
    def _probe_maxsim_numba(
        codes, doc_numbers, cell_offsets, cells, cell_scores, tables, impute, slot_of_doc
    ):  # pragma: no cover
        k, probes = cells.shape
        total = 0
        for i in range(k):
            for p in range(probes):
                total += cell_offsets[cells[i, p] + 1] - cell_offsets[cells[i, p]]
        docs = np.empty(total, np.int64)
        best = np.empty((total, k), np.float32)
        count = 0
        for i in range(k):
            table = tables[i]
            for p in range(probes):
                cell = cells[i, p]
                base = cell_scores[i, p]
                for r in range(cell_offsets[cell], cell_offsets[cell + 1]):
                    value = _code_score(codes, r, table, base)
                    doc = doc_numbers[r]
                    slot = slot_of_doc[doc]
                    if slot < 0:
                        slot = count
                        slot_of_doc[doc] = slot
                        docs[slot] = doc
                        best[slot, :] = -np.inf
                        count += 1
                    if value > best[slot, i]:
                        best[slot, i] = value
        totals = np.empty(count, np.float32)
        for slot in range(count):
            sum_ = np.float32(0.0)
            for i in range(k):
                value = best[slot, i]
                if value == -np.inf:
                    value = impute[i]
                if value > 0:
                    sum_ += value
            totals[slot] = sum_
            slot_of_doc[docs[slot]] = -1  # the scratch array is all -1 again for the next query
        return docs[:count], totals

    @numba.njit(cache=True, nogil=True, fastmath=True)
    def _affine_uint8_maxsim_numba(codes, offsets, docs, whole_weights, packed_weights, bias, bits):  # pragma: no cover
        k, whole = whole_weights.shape
        per_byte, packed = packed_weights.shape[1], packed_weights.shape[2]
        mask = (1 << bits) - 1
        out = np.empty(len(docs), np.float32)
        best = np.empty(k, np.float32)
        for a in range(len(docs)):
            doc = docs[a]
            best[:] = -np.inf
            for r in range(offsets[doc], offsets[doc + 1]):
                row = codes[r]
                for i in range(k):
                    w = whole_weights[i]
                    acc = np.float32(0.0)
                    for h in range(whole):
                        acc += np.float32(row[h]) * w[h]
                    for t in range(per_byte):  # one shift per pass: the loop over the bytes vectorises
                        shift = bits * t
                        pw = packed_weights[i, t]
                        for j in range(packed):
                            acc += np.float32((row[whole + j] >> shift) & mask) * pw[j]
                    acc += bias[i]
                    if acc > best[i]:
                        best[i] = acc
            total = np.float32(0.0)
            for i in range(k):
                if best[i] > 0:
                    total += best[i]
            out[a] = total
        return out


def _probe_inputs(cells, cell_scores, tables) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The per-query arrays in the dtypes the compiled kernels were typed for (one compiled version each)."""
    return (
        np.ascontiguousarray(cells, dtype=np.int64),
        np.ascontiguousarray(cell_scores, dtype=np.float32),
        np.ascontiguousarray(tables, dtype=np.float32),
    )


def new_scratch(num_docs: int) -> np.ndarray:
    """The ``document -> slot`` array :func:`probe_maxsim` needs (all -1; one per thread, reused across queries)."""
    return np.full(num_docs, -1, dtype=np.int32)


def probe_maxsim(
    codes, doc_numbers, cell_offsets, cells, cell_scores, tables, impute, scratch, use_numba: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Score the probed cells and reduce per document in one pass: ``(documents int64 [c], MaxSim f32 [c])``.

    The same result as ``reduce_documents(*score_probed(...), impute)``, with documents in the order first met
    rather than ascending. ``scratch`` (:func:`new_scratch`, ``num_docs`` entries) is used and restored; one thread
    at a time may use it.
    """
    impute = np.ascontiguousarray(impute, dtype=np.float32)
    if not (use_numba and HAVE_NUMBA):
        scored = score_probed_numpy(codes, doc_numbers, cell_offsets, cells, cell_scores, tables)
        return reduce_documents_numpy(*scored, impute, len(impute))
    return _probe_maxsim_numba(
        codes, doc_numbers, cell_offsets, *_probe_inputs(cells, cell_scores, tables), impute, scratch
    )


def unpack_row_values(codes: np.ndarray, whole: int, bits: int) -> np.ndarray:
    """Byte rows ``[n, B]`` -> the values they hold ``[n, whole + (B - whole) * 8 / bits]`` (uint8): the first
    ``whole`` bytes are one value each, every later byte packs ``8 / bits`` values, low bits first
    (:func:`.warp_codec.pack_codes`)."""
    codes = np.asarray(codes, dtype=np.uint8)
    if whole >= codes.shape[1] or bits == 8:
        return codes
    per_byte, mask = 8 // bits, np.uint8((1 << bits) - 1)
    tail = codes[:, whole:]
    parts = np.stack([(tail >> np.uint8(bits * t)) & mask for t in range(per_byte)], axis=2).reshape(len(codes), -1)
    return np.concatenate([codes[:, :whole], parts], axis=1)


def affine_uint8_maxsim(
    codes, offsets, docs, weights, bias, use_numba: bool = True, whole: int | None = None, bits: int = 8
) -> np.ndarray:
    """MaxSim ``[len(docs)]`` of documents stored as byte rows scored affinely: row ``r`` of document ``d``
    (rows ``offsets[d]:offsets[d + 1]`` of ``codes`` ``[n, B]`` uint8) holds values ``v`` (:func:`unpack_row_values`:
    ``whole`` bytes of one value, default all of them, then bytes of ``8 / bits`` values) and scores
    ``v . weights[i] + bias[i]`` against query vector ``i`` (``weights`` ``[K, len(v)]``, ``bias`` ``[K]``); max per
    query vector, clamped at 0, summed. A document without rows scores 0. Only the rows of ``docs`` are read
    (ascending, for a memory map); packed values are scored from their bytes, never unpacked into a copy.
    """
    docs = np.asarray(docs, dtype=np.int64)
    weights = np.ascontiguousarray(weights, dtype=np.float32)
    bias = np.ascontiguousarray(bias, dtype=np.float32)
    whole = codes.shape[1] if whole is None else int(whole)
    if bits not in (1, 2, 4, 8) or weights.shape[1] != whole + (codes.shape[1] - whole) * (8 // bits):
        raise ValueError(f"weights {list(weights.shape)} do not match rows of {codes.shape[1]} bytes ({whole} whole)")
    order = np.argsort(docs, kind="stable")
    out = np.empty(len(docs), dtype=np.float32)
    if use_numba and HAVE_NUMBA:
        per_byte = 8 // bits
        packed = codes.shape[1] - whole  # [K, packed * per_byte] -> [K, per_byte, packed]: value t of each byte
        packed_weights = weights[:, whole:].reshape(len(weights), packed, per_byte).transpose(0, 2, 1)
        out[order] = _affine_uint8_maxsim_numba(
            codes,
            offsets,
            docs[order],
            np.ascontiguousarray(weights[:, :whole]),
            np.ascontiguousarray(packed_weights),
            bias,
            int(bits),
        )
        return out
    for position in order:
        lo, hi = int(offsets[docs[position]]), int(offsets[docs[position] + 1])
        values = unpack_row_values(np.asarray(codes[lo:hi]), whole, bits)
        sims = values.astype(np.float32) @ weights.T + bias  # [rows, K]
        out[position] = np.maximum(sims.max(axis=0), 0).sum() if hi > lo else 0.0
    return out


def score_probed(codes, doc_numbers, cell_offsets, cells, cell_scores, tables, use_numba: bool = True):
    """Score every stored vector of the probed cells (module docstring); numba when available."""
    if use_numba and HAVE_NUMBA:
        total = _probed_count(cell_offsets, cells)
        return _score_probed_numba(codes, doc_numbers, cell_offsets, *_probe_inputs(cells, cell_scores, tables), total)
    return score_probed_numpy(codes, doc_numbers, cell_offsets, cells, cell_scores, tables)


def reduce_documents(docs, query_vector, scores, impute, use_numba: bool = True):
    """Per-document MaxSim of the scored vectors with imputation: ``(documents int64, totals f32)``."""
    impute = np.ascontiguousarray(impute, dtype=np.float32)
    if use_numba and HAVE_NUMBA:
        return _reduce_documents_numba(docs, query_vector, scores, impute, len(impute))
    return reduce_documents_numpy(docs, query_vector, scores, impute, len(impute))


def score_rows_numpy(codes, rows, row_base, tables):
    """Scores ``[K, len(rows)]`` of the given code rows: ``row_base[k, r] + sum_j tables[k, j, codes[rows[r], j]]``."""
    block = np.asarray(codes[np.asarray(rows)])
    positions = np.arange(block.shape[1])
    looked_up = np.stack([table[positions, block].sum(axis=1, dtype=np.float32) for table in tables])
    return (row_base + looked_up).astype(np.float32)


if HAVE_NUMBA:

    @numba.njit(cache=True, nogil=True)
    def _score_rows_numba(codes, rows, row_base, tables):  # pragma: no cover
        k = tables.shape[0]
        width = codes.shape[1]
        out = np.empty((k, len(rows)), np.float32)
        for r in range(len(rows)):
            row = rows[r]
            for i in range(k):
                value = row_base[i, r]
                table = tables[i]
                for j in range(width):
                    value += table[j, codes[row, j]]
                out[i, r] = value
        return out


def score_rows(codes, rows, row_base, tables, use_numba: bool = True):
    """Score chosen stored vectors (``rows`` of the cell-major codes) for every query vector: ``[K, len(rows)]``.

    Why: exact small-tier MaxSim of a candidate document needs *all* its vectors, also those outside the probed
    cells (PLAID's decompression stage, here without decompressing: the same byte tables). ``row_base[k, r]`` is
    query vector ``k``'s score of row ``r``'s centroid.
    """
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    row_base = np.ascontiguousarray(row_base, dtype=np.float32)
    tables = np.ascontiguousarray(tables, dtype=np.float32)
    if use_numba and HAVE_NUMBA:
        return _score_rows_numba(codes, rows, row_base, tables)
    return score_rows_numpy(codes, rows, row_base, tables)


def sq8_codes_numpy(vectors: np.ndarray, low: np.ndarray, step: np.ndarray, levels: int = 256) -> np.ndarray:
    """``floor((x - low) / step)`` clipped to ``0..levels-1`` as uint8 ``[n, H]`` (the SQ8 re-rank tier's code;
    fewer ``levels`` for the split tier's packed part)."""
    scaled = (np.asarray(vectors, dtype=np.float32) - low) / step
    return np.clip(np.floor(scaled), 0, levels - 1).astype(np.uint8)


if HAVE_NUMBA:

    @numba.njit(cache=True, nogil=True, parallel=True)
    def _sq8_codes_numba(vectors, low, step, top, out):  # pragma: no cover
        n, width = vectors.shape
        for i in numba.prange(n):
            for h in range(width):
                value = np.floor((vectors[i, h] - low[h]) / step[h])
                out[i, h] = np.uint8(min(max(value, np.float32(0.0)), top))
        return out


def sq8_codes(
    vectors: np.ndarray, low: np.ndarray, step: np.ndarray, use_numba: bool = True, levels: int = 256
) -> np.ndarray:
    """SQ8 codes of ``vectors`` ``[n, H]`` (:func:`sq8_codes_numpy`; ``levels`` <= 256) in one parallel pass.

    Why compiled: numpy's five whole-array passes (subtract, divide, floor, clip, cast) made the re-rank tier the
    build's second-largest stage (46 s of 250 s at 100k passages x 16 x 3584, issue 17); one fused loop over the
    bytes is ~10x faster and uses both cores.
    """
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    low = np.ascontiguousarray(low, dtype=np.float32)
    step = np.ascontiguousarray(step, dtype=np.float32)
    if not (use_numba and HAVE_NUMBA) or vectors.ndim != 2:
        return sq8_codes_numpy(vectors, low, step, levels)
    return _sq8_codes_numba(vectors, low, step, np.float32(levels - 1), np.empty(vectors.shape, dtype=np.uint8))

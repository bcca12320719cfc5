"""Block-wise dot products of (query row, case row) pairs, compiled: the exact per-block cosines of
every search's top-K (`similarity.per_block_cosine`) without float64 copies of the rows.

Why: each search re-scores its top-K pairs exactly, block by block, in float64. With numpy that is a
gather of both rows of every pair, two float64 copies and a product array, (pairs x D) each: at 2,000
creatives one search of the whole case base (40,000 pairs x ~1,800 dims) moved ~1.7 GB and took ~4 s,
and the backtest runs ~70 searches (14 of its 23 s), the forecast's case-memory evidence one more.
Here each pair's blocks are summed straight from the float32 rows.

The sums are the ones `np.add.reduceat(q.astype(float64) * c.astype(float64), offsets, axis=1)` makes,
bit for bit: the block's first product plus numpy's pairwise sum of the rest (8 partial sums in blocks
of up to 128, halves above), so cached cosines (`index.PairCosines`) and fresh ones stay identical
and nothing downstream moves (tests/test_cbr_similarity.py). Imported when a search first re-scores
pairs: numba loads with it.
"""

from __future__ import annotations

import numba
import numpy as np


def _pairwise_products(q: np.ndarray, c: np.ndarray, start: int, n: int) -> float:
    """numpy's pairwise sum (`pairwise_sum_DOUBLE`) of float64(q[i]) * float64(c[i]) over [start, start + n)."""
    if n < 8:
        res = 0.0
        for i in range(start, start + n):
            res += np.float64(q[i]) * np.float64(c[i])
        return res
    if n <= 128:
        r0 = np.float64(q[start]) * np.float64(c[start])
        r1 = np.float64(q[start + 1]) * np.float64(c[start + 1])
        r2 = np.float64(q[start + 2]) * np.float64(c[start + 2])
        r3 = np.float64(q[start + 3]) * np.float64(c[start + 3])
        r4 = np.float64(q[start + 4]) * np.float64(c[start + 4])
        r5 = np.float64(q[start + 5]) * np.float64(c[start + 5])
        r6 = np.float64(q[start + 6]) * np.float64(c[start + 6])
        r7 = np.float64(q[start + 7]) * np.float64(c[start + 7])
        i = 8
        while i < n - (n % 8):
            j = start + i
            r0 += np.float64(q[j]) * np.float64(c[j])
            r1 += np.float64(q[j + 1]) * np.float64(c[j + 1])
            r2 += np.float64(q[j + 2]) * np.float64(c[j + 2])
            r3 += np.float64(q[j + 3]) * np.float64(c[j + 3])
            r4 += np.float64(q[j + 4]) * np.float64(c[j + 4])
            r5 += np.float64(q[j + 5]) * np.float64(c[j + 5])
            r6 += np.float64(q[j + 6]) * np.float64(c[j + 6])
            r7 += np.float64(q[j + 7]) * np.float64(c[j + 7])
            i += 8
        res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
        while i < n:
            res += np.float64(q[start + i]) * np.float64(c[start + i])
            i += 1
        return res
    half = n // 2
    half -= half % 8
    return _pairwise_products(q, c, start, half) + _pairwise_products(q, c, start + half, n - half)


def _block_dots(queries: np.ndarray, query_of: np.ndarray, cases: np.ndarray, case_of: np.ndarray,
                offsets: np.ndarray, dims: np.ndarray) -> np.ndarray:
    out = np.empty((len(query_of), len(offsets)))
    for p in range(len(query_of)):
        q = queries[query_of[p]]
        c = cases[case_of[p]]
        for b in range(len(offsets)):
            start, n = offsets[b], dims[b]
            first = np.float64(q[start]) * np.float64(c[start])
            # reduceat starts from the block's first element and adds the pairwise sum of the rest
            out[p, b] = first if n == 1 else first + _pairwise_products(q, c, start + 1, n - 1)
    return out


try:  # keep the machine code beside the module (or in numba's user cache), as cosine_matrix.py does
    _pairwise_products = numba.njit(cache=True)(_pairwise_products)
    _block_dots_compiled = numba.njit(cache=True)(_block_dots)
except RuntimeError:  # no writable cache location: compile in each process (~1 s)
    _pairwise_products = numba.njit(_pairwise_products)
    _block_dots_compiled = numba.njit(_block_dots)


def block_dots(queries: np.ndarray, query_of: np.ndarray, cases: np.ndarray, case_of: np.ndarray,
               offsets: np.ndarray, dims: np.ndarray) -> np.ndarray:
    """(pairs, B) float64: for pair p and block b, the dot product of queries[query_of[p]] and
    cases[case_of[p]] over columns [offsets[b], offsets[b] + dims[b]) (blocks of width >= 1)."""
    def rows(x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(x if x.dtype in (np.float32, np.float64) else x.astype(np.float64))

    return _block_dots_compiled(rows(queries), np.asarray(query_of, dtype=np.int64), rows(cases),
                                np.asarray(case_of, dtype=np.int64), np.asarray(offsets, dtype=np.int64),
                                np.asarray(dims, dtype=np.int64))

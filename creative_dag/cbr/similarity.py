"""Fused weighted similarity over blocks (docs/cbr.md) and its exact per-block breakdown.

Similarity of a query q and a case c:

    S(q, c) = Σ_b w_b · cos(q_b, c_b) / Σ_b w_b        (b over blocks present in both)

Every block vector is L2-normalised, so cos(q_b, c_b) = q_b · c_b. Stack a case's blocks
into one unweighted row (a missing block is a run of zeros) and scale the query's blocks
by w_b: the inner product of the two rows is the numerator N(q, c) = Σ_b w_b·cos(q_b, c_b)
over the blocks present in both (a zero block contributes nothing). One matrix of cases
therefore serves any weights chosen at query time. The denominator Σ_b w_b depends only on
which blocks q and c share, i.e. on c's *block-presence pattern*; `creative_dag.cbr.index`
searches each pattern group separately so the ranking inside a group by N is the exact
ranking by S.

Everything here is plain numpy: (n, D) float32 matrices, (n, B) boolean presence masks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from creative_dag.blocks import BLOCKS, DEFAULT_WEIGHTS

NORM_EPS = 1e-12
MIN_RELATIVE_WEIGHT = 1e-6


@dataclass(frozen=True)
class BlockLayout:
    """Which blocks a concatenated case row holds, in order, and how wide each is.

    `blocks` is a subset of `creative_dag.blocks.BLOCKS` in that order; `dims[i]` is the
    width of `blocks[i]`. Row layout: [blocks[0] | blocks[1] | ...], total width `total_dim`.
    """

    blocks: tuple[str, ...]
    dims: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.blocks) != len(self.dims):
            raise ValueError(f"BlockLayout: {len(self.blocks)} blocks but {len(self.dims)} dims")
        unknown = [b for b in self.blocks if b not in BLOCKS]
        if unknown:
            raise ValueError(f"BlockLayout: unknown blocks {unknown}; blocks are {', '.join(BLOCKS)}")
        if any(int(d) <= 0 for d in self.dims):
            raise ValueError(f"BlockLayout: every block needs a positive dimension, got {dict(zip(self.blocks, self.dims))}")

    @property
    def total_dim(self) -> int:
        return int(sum(self.dims))

    @cached_property
    def offsets(self) -> tuple[int, ...]:
        out, start = [], 0
        for d in self.dims:
            out.append(start)
            start += int(d)
        return tuple(out)

    @cached_property
    def _slices(self) -> dict[str, slice]:
        return {b: slice(o, o + int(d)) for b, o, d in zip(self.blocks, self.offsets, self.dims)}

    def slice(self, block: str) -> slice:
        return self._slices[block]

    def columns(self, present: np.ndarray) -> np.ndarray:
        """Column indices of the concatenated row covered by the blocks flagged in `present` (B,)."""
        cols = [np.arange(self.offsets[i], self.offsets[i] + self.dims[i])
                for i in range(len(self.blocks)) if present[i]]
        return np.concatenate(cols) if cols else np.zeros(0, dtype=np.int64)

    def to_dict(self) -> dict:
        return {"blocks": list(self.blocks), "dims": [int(d) for d in self.dims]}

    @classmethod
    def from_dict(cls, data: Mapping) -> BlockLayout:
        return cls(tuple(data["blocks"]), tuple(int(d) for d in data["dims"]))


def l2_normalize(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row-normalise a (n, d) matrix. Returns (float32 normalised copy, (n,) bool: row was usable).

    A row that is all zeros or holds a non-finite value is not usable: it comes back as zeros
    and flagged False, so the caller treats the block as missing for that row.
    """
    x = np.asarray(matrix, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"expected a (n, d) matrix, got shape {x.shape}")
    finite = np.isfinite(x).all(axis=1)
    x = np.where(finite[:, None], x, 0.0).astype(np.float32)
    # Norms in float64: a float32 sum of squares rounds differently when a zero column is inserted (a new
    # context level), which moved every similarity by ~1e-8; squares of float32 values are exact in float64.
    wide = x.astype(np.float64)
    norms = np.sqrt(np.einsum("ij,ij->i", wide, wide))
    ok = finite & (norms > NORM_EPS)
    out = np.zeros_like(x)
    out[ok] = (wide[ok] / norms[ok, None]).astype(np.float32)
    return out, ok


def concat_blocks(layout: BlockLayout, vectors: Mapping[str, np.ndarray | None], n: int) -> tuple[np.ndarray, np.ndarray]:
    """Stack per-block matrices into one (n, D) float32 row per case plus a (n, B) presence mask.

    `vectors[b]` is (n, d_b) (rows of NaN/zeros = missing for that row) or None/absent (the block
    is missing for every row). Each block is L2-normalised here, so callers may pass raw vectors.
    """
    out = np.zeros((n, layout.total_dim), dtype=np.float32)
    presence = np.zeros((n, len(layout.blocks)), dtype=bool)
    for i, block in enumerate(layout.blocks):
        mat = vectors.get(block)
        if mat is None:
            continue
        mat = np.asarray(mat, dtype=np.float32)
        if mat.shape != (n, layout.dims[i]):
            raise ValueError(f"block {block!r}: expected shape {(n, layout.dims[i])}, got {mat.shape}")
        normed, ok = l2_normalize(mat)
        out[:, layout.slice(block)] = normed
        presence[:, i] = ok
    return out, presence


def weight_vector(layout: BlockLayout, weights: Mapping[str, float] | None = None) -> np.ndarray:
    """(B,) float64 weights in layout order.

    `weights` overrides `DEFAULT_WEIGHTS` block by block (so `{"context": 0}` switches context off
    and keeps the other defaults). Unknown block names and negative or non-finite weights are errors.
    """
    merged = dict(DEFAULT_WEIGHTS)
    for name, value in (weights or {}).items():
        if name not in BLOCKS:
            raise ValueError(f"unknown block {name!r} in weights; blocks are {', '.join(BLOCKS)}")
        value = float(value)
        if not np.isfinite(value) or value < 0:
            raise ValueError(f"weight for block {name!r} must be a finite number >= 0, got {value!r}")
        merged[name] = value
    w = np.array([merged[b] for b in layout.blocks], dtype=np.float64)
    if not (w > 0).any():
        raise ValueError(f"all block weights are 0 for blocks {list(layout.blocks)}: give at least one block a positive weight")
    return w


def scale_invariant(weights: np.ndarray) -> np.ndarray:
    """Weights divided by their maximum; a weight below MIN_RELATIVE_WEIGHT of the largest counts as 0.

    S does not change when all weights are scaled; the relative floor keeps a block whose weight
    is beyond float32 resolution from sitting in a denominator while vanishing from the numerator.
    """
    w = np.asarray(weights, dtype=np.float64)
    top = float(w.max()) if w.size else 0.0
    if top <= 0:
        return w
    w = w / top
    return np.where(w < MIN_RELATIVE_WEIGHT, 0.0, w)


def weighted_query(layout: BlockLayout, query: np.ndarray, query_presence: np.ndarray,
                   weights: np.ndarray) -> np.ndarray:
    """Scale each block of (m, D) query rows by its weight (absent blocks -> 0). Returns (m, D) float32."""
    q = np.atleast_2d(np.asarray(query, dtype=np.float32))
    pres = np.atleast_2d(np.asarray(query_presence, dtype=bool))
    per_block = (scale_invariant(weights)[None, :] * pres).astype(np.float32)   # (m, B)
    return q * np.repeat(per_block, layout.dims, axis=1)


def shared_weight(query_presence: np.ndarray, case_presence: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Denominator Σ_b w_b over blocks present in both: (m, B) x (n, B) -> (m, n) float64."""
    qp = np.atleast_2d(query_presence).astype(np.float64) * scale_invariant(weights)[None, :]
    return qp @ np.atleast_2d(case_presence).astype(np.float64).T


def per_block_cosine(layout: BlockLayout, query: np.ndarray, query_presence: np.ndarray,
                     cases: np.ndarray, case_presence: np.ndarray,
                     pairs: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Exact cos(q_b, c_b) for aligned pairs: query (k, D) row i against case row i, or, with
    pairs = (query_of, case_of), query row query_of[p] against case row case_of[p] (no copies of the rows).

    Returns (pairs, B) float64, NaN where the block is missing on either side. The block sums are
    float64 and always summed in the same order (`block_dots`), so a pair's cosines do not depend on
    which other pairs were computed with it.
    """
    q, c = np.atleast_2d(query), np.atleast_2d(cases)
    qp, cp = np.atleast_2d(query_presence), np.atleast_2d(case_presence)
    query_of, case_of = (np.arange(len(c)), np.arange(len(c))) if pairs is None else pairs
    if len(case_of) == 0:
        return np.zeros((0, len(layout.blocks)))
    both = qp[query_of] & cp[case_of]
    if min(layout.dims) < 1:  # reduceat's convention for an empty block; never a real layout
        cos = np.add.reduceat(q[query_of].astype(np.float64) * c[case_of].astype(np.float64),
                              np.asarray(layout.offsets), axis=1)
    else:
        # imported here: numba loads on the first search, not with every module that imports this one
        from creative_dag.cbr.block_dots import block_dots
        cos = block_dots(q, query_of, c, case_of, np.asarray(layout.offsets), np.asarray(layout.dims))
    return np.where(both, np.clip(cos, -1.0, 1.0), np.nan)


def combine_blocks(per_block: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """S from a (..., B) per-block cosine array (NaN = not shared): Σ w_b cos_b / Σ w_b over shared blocks.

    NaN where no block with positive weight is shared.
    """
    weights = scale_invariant(weights)
    shared = np.isfinite(per_block) & (weights > 0)
    num = np.where(shared, np.nan_to_num(per_block) * weights, 0.0).sum(axis=-1)
    den = np.where(shared, weights, 0.0).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def exact_similarity(layout: BlockLayout, query: np.ndarray, query_presence: np.ndarray,
                     cases: np.ndarray, case_presence: np.ndarray,
                     weights: np.ndarray) -> np.ndarray:
    """Reference implementation of the formula, block by block: (m, D) x (n, D) -> (m, n) float64.

    It materialises every block's cosine matrix: the marts' all-pairs matrices inside an account
    (creative_dag.marts.block_vectors), tests and the benchmark's "naive per-block loop" use it; top-K
    retrieval uses `fused_scores` on the index. NaN where q and c share no weighted block.
    """
    q = np.atleast_2d(query).astype(np.float64)
    c = np.atleast_2d(cases).astype(np.float64)
    qp = np.atleast_2d(query_presence)
    cp = np.atleast_2d(case_presence)
    weights = scale_invariant(weights)
    num = np.zeros((q.shape[0], c.shape[0]))
    den = np.zeros_like(num)
    for i, block in enumerate(layout.blocks):
        s = layout.slice(block)
        both = qp[:, i][:, None] & cp[:, i][None, :]
        cos = q[:, s] @ c[:, s].T
        num += np.where(both, weights[i] * cos, 0.0)
        den += np.where(both, weights[i], 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def fused_scores(layout: BlockLayout, query: np.ndarray, query_presence: np.ndarray,
                 cases: np.ndarray, case_presence: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """S via the fused form: one inner product (weighted query · unweighted case row) divided by
    the shared-weight denominator. (m, D) x (n, D) -> (m, n) float64; NaN where nothing is shared.

    Equal to `exact_similarity` whenever missing blocks are stored as zeros (property-tested).
    """
    num = weighted_query(layout, query, query_presence, weights).astype(np.float64) @ np.atleast_2d(cases).astype(np.float64).T
    den = shared_weight(query_presence, case_presence, weights)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)

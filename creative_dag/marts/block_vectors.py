"""The marts' per-block vectors: `embeddings.<block>` tables aligned to one list of creatives.

The marts need all-pairs similarity inside an account (repetition, diversity) and a fused vector
per creative (landscape). The formula S(q, c) = sum_b w_b cos(q_b, c_b) / sum_b w_b over shared
blocks is the case base's (`creative_dag.cbr.similarity`, docs/cbr.md), computed exactly here on
all pairs, so the marts do not depend on the case index being built.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from creative_dag.blocks import BLOCKS, DEFAULT_WEIGHTS
from creative_dag.cbr.similarity import BlockLayout, exact_similarity
from creative_dag.vectors import as_vector, vector_length


class BlockVectors:
    """Per-block vectors aligned to one list of creative ids.

    ids: (n,) creative ids. blocks: block -> (n, d_b) float32 rows L2-normalised (zero rows
    where the creative has no vector in that block); present: block -> (n,) bool.
    """

    def __init__(self, ids: Sequence[str], blocks: Mapping[str, np.ndarray], present: Mapping[str, np.ndarray]):
        self.ids = [str(i) for i in ids]
        self.blocks = dict(blocks)
        self.present = dict(present)
        self._pos = {cid: k for k, cid in enumerate(self.ids)}

    @classmethod
    def from_tables(cls, ids: Sequence[str], tables: Mapping[str, pd.DataFrame]) -> BlockVectors:
        """Build from embeddings tables (creative_id, vector) per block; missing rows -> absent."""
        ids = [str(i) for i in ids]
        pos = {cid: k for k, cid in enumerate(ids)}
        blocks, present = {}, {}
        for block, table in tables.items():
            if table is None or table.empty or "vector" not in table.columns:
                continue
            rows = table.drop_duplicates("creative_id", keep="last")
            rows = rows[rows["creative_id"].astype(str).isin(pos)]
            if rows.empty:
                continue
            lengths = rows["vector"].map(vector_length)
            if (lengths <= 0).all():
                continue
            dim = int(lengths[lengths > 0].mode().iloc[0])
            mat = np.zeros((len(ids), dim), dtype=np.float32)
            mask = np.zeros(len(ids), dtype=bool)
            for cid, cell in zip(rows["creative_id"].astype(str), rows["vector"]):
                v = as_vector(cell, dim)
                if v is None:
                    continue  # a missing or malformed vector makes that block absent for the creative
                mat[pos[cid]] = _l2(v)
                mask[pos[cid]] = True
            blocks[block], present[block] = mat, mask
        return cls(ids, blocks, present)

    @property
    def available(self) -> list[str]:
        return [b for b, m in self.present.items() if m.any()]

    def has_any(self) -> np.ndarray:
        """(n,) bool: the creative has at least one block vector."""
        out = np.zeros(len(self.ids), dtype=bool)
        for m in self.present.values():
            out |= m
        return out

    def subset(self, ids: Sequence[str]) -> BlockVectors:
        idx = [self._pos[str(i)] for i in ids]
        return BlockVectors([self.ids[k] for k in idx], {b: v[idx] for b, v in self.blocks.items()},
                            {b: m[idx] for b, m in self.present.items()})

    def similarity_matrix(self, weights: Mapping[str, float] | None = None) -> np.ndarray:
        """(n, n) fused similarity in [-1, 1]; NaN where two creatives share no block. The formula is
        the case base's (`creative_dag.cbr.similarity.exact_similarity`); a block left out of
        `weights` weighs 0."""
        w = dict(DEFAULT_WEIGHTS if weights is None else weights)
        blocks = [b for b in BLOCKS if b in self.blocks]
        n = len(self.ids)
        if not blocks:
            return np.full((n, n), np.nan)
        layout = BlockLayout(tuple(blocks), tuple(int(self.blocks[b].shape[1]) for b in blocks))
        rows = np.hstack([self.blocks[b] for b in blocks])
        present = np.column_stack([self.present[b] for b in blocks])
        block_weights = np.array([max(float(w.get(b, 0.0)), 0.0) for b in blocks])
        return exact_similarity(layout, rows, present, rows, present, block_weights)

    def fused_vectors(self, weights: Mapping[str, float] | None = None) -> np.ndarray:
        """(n, sum d_b) concatenation with block b scaled by sqrt(w_b), L2-normalised per row.

        Inner products of these rows equal S(q, c) when both creatives have every block.
        """
        w = dict(DEFAULT_WEIGHTS if weights is None else weights)
        parts = [np.sqrt(max(float(w.get(b, 0.0)), 0.0)) * mat for b, mat in self.blocks.items()]
        if not parts:
            return np.zeros((len(self.ids), 0), dtype=np.float32)
        out = np.hstack(parts).astype(np.float32)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms > 0, norms, 1.0)


def _l2(v: np.ndarray) -> np.ndarray:
    # in the vector's own precision: the landscape's UMAP map moves with 1e-7 changes of its input
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else v

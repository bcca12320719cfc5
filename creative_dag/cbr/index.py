"""The case index: FAISS inner-product search over unweighted concatenated case rows.

One `CaseIndex` serves any block weights chosen at query time (see `similarity.py`). Cases
are split into *block-presence pattern* groups (e.g. "all six blocks", "no text block");
each group has its own FAISS index over only the columns of its present blocks. Why:

* Exactness with missing blocks. S(q, c) = N(q, c) / W(q, c) where the numerator N is the
  inner product of the weighted query with the case row and the denominator W = Σ w_b over
  blocks shared by q and c. Inside one pattern group W is the same for every case, so the
  top-K of a group by inner product *is* its top-K by S. The global top-K is the top-K of the
  union of the groups' top-K lists. In exact mode the result therefore equals brute force
  over the formula; no over-fetch bound is needed. (A single index over all cases ranked
  by N/W_q would under-rank cases with missing blocks when N > 0 and over-rank them when
  N < 0, so a fixed over-fetch could not be guaranteed to recover them.)
* Cost. Group searches add up to one scan over all cases; a group stores only its present
  columns, so missing blocks cost neither memory nor time.

As-of retrieval: inside a group, cases are sorted by `available_day` = the day from which a
case may be used (max(launch, mature) — see `case_base.py`); the cases usable on day t are a
prefix (available_day < t), found by binary search and searched as a contiguous slice
(exact) or through an `IDSelectorRange` (approximate). Extra filters are a boolean mask over
cases (`IDSelectorBitmap`).

Modes: a group with at most `approximate_above` cases uses `IndexFlatIP` (exact); a larger
one uses HNSW (`IndexHNSWFlat`, default) or IVF (`IndexIVFFlat`). Whatever the mode, a search
whose eligible set (as-of prefix and filters) has at most `exact_below` cases is done exactly
on that subset, because a graph/cluster search restricted to a small subset loses recall.
Scores returned are always the exact formula recomputed block by block for the final top-K.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pandas as pd

from creative_dag.cbr.similarity import (
    BlockLayout,
    combine_blocks,
    per_block_cosine,
    weight_vector,
    weighted_query,
)

MANIFEST = "manifest.json"
ARRAYS = "arrays.npz"
FORMAT_VERSION = 1
NO_LIMIT_DAY = np.iinfo(np.int64).max
# Below this many multiply-adds an exact search is one numpy product: FAISS's OpenMP start-up
# costs more than the work on small problems (and spins on a shared machine).
SMALL_SEARCH_FLOPS = 20_000_000
ALWAYS_DAY = np.iinfo(np.int64).min


def to_days(value: Any) -> np.ndarray | int:
    """Dates (str ISO, date, Timestamp, datetime64, or arrays/Series of them) -> int64 days since 1970-01-01.

    Missing values (None/NaT) map to `NO_LIMIT_DAY`: as an as-of date "no limit", as an
    available date "never available".
    """
    if value is None:
        return int(NO_LIMIT_DAY)
    if isinstance(value, (str, dt.date, pd.Timestamp, np.datetime64)):
        ts = pd.Timestamp(value)
        return int(NO_LIMIT_DAY) if pd.isna(ts) else int(ts.value // 86_400_000_000_000)
    series = pd.to_datetime(pd.Series(np.asarray(value, dtype=object) if not isinstance(value, pd.Series) else value))
    days = series.to_numpy(dtype="datetime64[D]").astype("int64")
    return np.where(series.isna().to_numpy(), NO_LIMIT_DAY, days).astype(np.int64)


@dataclass
class SearchResult:
    """Top-K per query. rows: (m, k) int64 case rows (-1 = fewer than k found); scores: (m, k)
    float64 exact S (NaN where no case); per_block: (m, k, B) float64 cos per block (NaN = not shared)."""

    rows: np.ndarray
    scores: np.ndarray
    per_block: np.ndarray


@dataclass
class PairCosines:
    """Per-block cosines of (query case row, case row) pairs computed by earlier searches of one index.

    They do not depend on the block weights, so a caller that searches the same case rows again with
    other weights (the backtest's weight learning and ablations: ~70 searches) passes one of these and
    only new pairs are computed; each pair's cosines are computed alone (`per_block_cosine`, row by
    row), so a reused value is bit for bit the one a fresh search gives."""

    keys: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # query row * n + case row
    values: np.ndarray | None = None  # (len(keys), B) float64
    # ~50 bytes a pair: a backtest of a very large memory keeps the first pairs and computes the rest.
    max_pairs: int = 4_000_000

    def lookup(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(found, their values; rows where not found hold arbitrary values)."""
        if self.values is None or not len(self.keys):
            return np.zeros(len(keys), dtype=bool), np.zeros((len(keys), 0))
        pos = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        return self.keys[pos] == keys, self.values[pos]

    def add(self, keys: np.ndarray, values: np.ndarray) -> None:
        if len(self.keys) >= self.max_pairs:
            return
        keys, first = np.unique(keys, return_index=True)
        values = values[first]
        if self.values is not None:
            keys, values = np.concatenate([self.keys, keys]), np.vstack([self.values, values])
        order = np.argsort(keys, kind="stable")
        self.keys, self.values = keys[order], values[order]


@dataclass
class _Group:
    pattern: np.ndarray          # (B,) bool: blocks present in every case of the group
    rows: np.ndarray             # (n_g,) int64 global case rows, sorted by available_day
    available: np.ndarray        # (n_g,) int64 days, ascending
    columns: np.ndarray          # (d_g,) int64 columns of the concatenated row
    mode: str                    # "flat" | "hnsw" | "ivf"
    index: Any = field(repr=False)


class CaseIndex:
    """FAISS index over case rows, searchable with per-query weights, as-of day and filters.

    Parameters (all constructor arguments; no I/O except `save`/`load`):
      layout: the `BlockLayout` of the concatenated rows.
      approximate_above: a presence group with more cases than this uses the approximate index.
      approximate: "hnsw" or "ivf".
      exact_below: searches with at most this many eligible cases run exactly on the subset.
      hnsw_m, hnsw_ef_construction, hnsw_ef_search: HNSW graph degree and beam widths.
      ivf_nlist (None = 4·sqrt(n)), ivf_nprobe: IVF lists and lists probed per query;
      ivf_train_iterations: k-means iterations of the coarse quantizer (trained on <= 40·nlist cases).
    """

    def __init__(self, layout: BlockLayout, *, approximate_above: int = 200_000, approximate: str = "hnsw",
                 exact_below: int = 4096, hnsw_m: int = 32, hnsw_ef_construction: int = 80,
                 hnsw_ef_search: int = 128, ivf_nlist: int | None = None, ivf_nprobe: int = 32,
                 ivf_train_iterations: int = 10) -> None:
        if approximate not in ("hnsw", "ivf"):
            raise ValueError(f"approximate must be 'hnsw' or 'ivf', got {approximate!r}")
        self.layout = layout
        self.approximate_above = int(approximate_above)
        self.approximate = approximate
        self.exact_below = int(exact_below)
        self.hnsw_m = int(hnsw_m)
        self.hnsw_ef_construction = int(hnsw_ef_construction)
        self.hnsw_ef_search = int(hnsw_ef_search)
        self.ivf_nlist = ivf_nlist
        self.ivf_nprobe = int(ivf_nprobe)
        self.ivf_train_iterations = int(ivf_train_iterations)
        self.groups: list[_Group] = []
        self.ids: np.ndarray = np.zeros(0, dtype=object)
        self.n_cases = 0
        self.n_unsearchable = 0
        self.fingerprint = ""
        self._group_of = np.zeros(0, dtype=np.int64)
        self._local_of = np.zeros(0, dtype=np.int64)

    # -- build -----------------------------------------------------------------------
    def fit(self, vectors: np.ndarray, presence: np.ndarray, available_days: np.ndarray | None = None,
            ids: Sequence[str] | None = None) -> CaseIndex:
        """Index cases.

        vectors: (n, D) float32, each block L2-normalised, zeros where the block is missing
        (`similarity.concat_blocks` builds it). presence: (n, B) bool. available_days: (n,) int64
        days since epoch from which each case may be retrieved (None = always). ids: (n,) labels.
        A case with no block present cannot be retrieved and is counted in `n_unsearchable`.
        """
        x = np.ascontiguousarray(vectors, dtype=np.float32)
        pres = np.asarray(presence, dtype=bool)
        n = x.shape[0]
        if x.ndim != 2 or x.shape[1] != self.layout.total_dim:
            raise ValueError(f"CaseIndex.fit: vectors must be (n, {self.layout.total_dim}), got {x.shape}")
        if pres.shape != (n, len(self.layout.blocks)):
            raise ValueError(f"CaseIndex.fit: presence must be ({n}, {len(self.layout.blocks)}), got {pres.shape}")
        avail = np.full(n, ALWAYS_DAY, dtype=np.int64) if available_days is None else np.asarray(available_days, dtype=np.int64)
        if avail.shape != (n,):
            raise ValueError(f"CaseIndex.fit: available_days must be ({n},), got {avail.shape}")
        self.ids = np.asarray(list(ids) if ids is not None else np.arange(n).astype(str), dtype=object)
        if len(self.ids) != n:
            raise ValueError(f"CaseIndex.fit: {len(self.ids)} ids for {n} vectors")
        self.n_cases = n
        self.groups = []
        self._group_of = np.full(n, -1, dtype=np.int64)
        self._local_of = np.full(n, -1, dtype=np.int64)
        patterns, inverse = np.unique(pres, axis=0, return_inverse=True) if n else (np.zeros((0, pres.shape[1]), bool), np.zeros(0, int))
        inverse = np.asarray(inverse).reshape(-1)
        self.n_unsearchable = 0
        for p, pattern in enumerate(patterns):
            members = np.flatnonzero(inverse == p)
            if not pattern.any():
                self.n_unsearchable += len(members)
                continue
            members = members[np.argsort(avail[members], kind="stable")]
            columns = self.layout.columns(pattern)
            xg = np.ascontiguousarray(x[np.ix_(members, columns)])
            mode, index = self._build(xg)
            g = len(self.groups)
            self.groups.append(_Group(pattern=pattern, rows=members.astype(np.int64), available=avail[members],
                                      columns=columns, mode=mode, index=index))
            self._group_of[members] = g
            self._local_of[members] = np.arange(len(members))
        self.fingerprint = case_fingerprint(self.ids, avail, pres, x)
        return self

    def _build(self, xg: np.ndarray) -> tuple[str, Any]:
        n, d = xg.shape
        # Groups small enough to be searched exactly anyway get a flat index (no graph or lists to build).
        if n <= max(self.approximate_above, self.exact_below):
            index = faiss.IndexFlatIP(d)
            index.add(xg)
            return "flat", index
        if self.approximate == "hnsw":
            index = faiss.IndexHNSWFlat(d, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = self.hnsw_ef_construction
            index.hnsw.efSearch = self.hnsw_ef_search
            index.add(xg)
            return "hnsw", index
        nlist = int(self.ivf_nlist or max(16, int(4 * np.sqrt(n))))
        nlist = max(1, min(nlist, n // 39))  # FAISS k-means wants >= 39 training points per list
        quantizer = faiss.IndexFlatIP(d)
        index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.niter = self.ivf_train_iterations
        rng = np.random.default_rng(0)
        sample = xg[np.sort(rng.choice(n, size=min(n, nlist * 40), replace=False))]
        index.train(sample)
        index.add(xg)
        index.nprobe = self.ivf_nprobe
        index.make_direct_map()  # lets breakdowns read stored vectors back without a second copy
        return "ivf", index

    # -- search ----------------------------------------------------------------------
    def search(self, query: np.ndarray, query_presence: np.ndarray, weights: Mapping[str, float] | np.ndarray | None = None,
               k: int = 10, as_of: Any = None, mask: np.ndarray | None = None,
               exclude: np.ndarray | None = None, cache: PairCosines | None = None) -> SearchResult:
        """Top-k cases by S for each query row.

        query: (m, D) or (D,) float32 rows in the index layout, blocks L2-normalised (zeros where
        missing); query_presence: (m, B) bool. weights: dict (overrides DEFAULT_WEIGHTS) or (B,)
        array. as_of: None, one date, or (m,) dates / int days: only cases with available_day <
        as_of are eligible. mask: (n,) bool over cases (filters). exclude: (m,) case row per query
        to leave out (e.g. the query itself; -1 = none). cache: per-block cosines of earlier searches
        to reuse (`PairCosines`); only used when every query is a case row (`exclude`).
        """
        q = np.atleast_2d(np.asarray(query, dtype=np.float32))
        qp = np.atleast_2d(np.asarray(query_presence, dtype=bool))
        m = q.shape[0]
        if q.shape[1] != self.layout.total_dim or qp.shape != (m, len(self.layout.blocks)):
            raise ValueError(f"CaseIndex.search: query must be (m, {self.layout.total_dim}) with presence "
                             f"(m, {len(self.layout.blocks)}); got {q.shape} and {qp.shape}")
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        w = np.asarray(weights, dtype=np.float64) if isinstance(weights, np.ndarray) else weight_vector(self.layout, weights)
        as_of_days = self._as_of_days(as_of, m)
        if mask is not None:
            mask = np.asarray(mask, dtype=bool)
            if mask.shape != (self.n_cases,):
                raise ValueError(f"CaseIndex.search: mask must be ({self.n_cases},), got {mask.shape}")
        excl = None if exclude is None else np.broadcast_to(np.asarray(exclude, dtype=np.int64), (m,))
        kk = k + (1 if excl is not None else 0)
        qw = weighted_query(self.layout, q, qp, w)

        width = kk * max(1, len(self.groups))
        cand_rows = np.full((m, width), -1, dtype=np.int64)
        cand_scores = np.full((m, width), -np.inf)
        for gi, group in enumerate(self.groups):
            denom = (qp * w[None, :]) @ group.pattern.astype(np.float64)           # (m,) W for this group
            prefix = np.searchsorted(group.available, as_of_days, side="left")       # eligible = [0, prefix)
            mask_g = None if mask is None else mask[group.rows]
            active = (denom > 0) & (prefix > 0)
            for p in np.unique(prefix[active]):
                qi = np.flatnonzero(active & (prefix == p))
                dist, local = self._search_group(group, np.ascontiguousarray(qw[np.ix_(qi, group.columns)]), kk, int(p), mask_g)
                found = local >= 0
                rows = np.where(found, group.rows[np.where(found, local, 0)], -1)
                cand_rows[qi, gi * kk:(gi + 1) * kk] = rows
                cand_scores[qi, gi * kk:(gi + 1) * kk] = np.where(found, dist / denom[qi, None], -np.inf)
        if excl is not None:
            cand_scores[cand_rows == excl[:, None]] = -np.inf
        order = np.argsort(-cand_scores, axis=1, kind="stable")[:, :k]
        top_rows = np.take_along_axis(cand_rows, order, axis=1)
        top_rows = np.where(np.take_along_axis(cand_scores, order, axis=1) > -np.inf, top_rows, -1)
        queries = excl if cache is not None and excl is not None and (excl >= 0).all() else None
        return self._exact_breakdown(q, qp, w, top_rows, queries, cache)

    def _as_of_days(self, as_of: Any, m: int) -> np.ndarray:
        if as_of is None:
            return np.full(m, NO_LIMIT_DAY, dtype=np.int64)
        if isinstance(as_of, (int, np.integer)):
            return np.full(m, int(as_of), dtype=np.int64)
        if isinstance(as_of, (str, dt.date, pd.Timestamp, np.datetime64)):
            return np.full(m, to_days(as_of), dtype=np.int64)
        arr = np.asarray(as_of)
        days = arr.astype(np.int64) if np.issubdtype(arr.dtype, np.integer) else to_days(as_of)
        days = np.asarray(days, dtype=np.int64)
        if days.shape != (m,):
            raise ValueError(f"as_of must be one date or {m} dates, got shape {days.shape}")
        return days

    def _search_group(self, group: _Group, xq: np.ndarray, k: int, prefix: int,
                      mask_g: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k inner products in one group among local rows [0, prefix) (and mask). -1 = none."""
        m = xq.shape[0]
        eligible = None if mask_g is None else np.flatnonzero(mask_g[:prefix])
        n_eligible = prefix if eligible is None else len(eligible)
        dist = np.full((m, k), -np.inf, dtype=np.float32)
        local = np.full((m, k), -1, dtype=np.int64)
        if n_eligible == 0:
            return dist, local
        kq = min(k, n_eligible)
        if group.mode == "flat" or n_eligible <= self.exact_below:
            if eligible is None:
                xb = self._group_vectors(group, slice(0, prefix))
            else:
                xb = self._group_vectors(group, eligible)
            if xq.shape[0] * len(xb) * xb.shape[1] <= SMALL_SEARCH_FLOPS:
                d, i = _numpy_knn(xq, xb, kq)
            else:
                d, i = faiss.knn(xq, np.ascontiguousarray(xb), kq, metric=faiss.METRIC_INNER_PRODUCT)
            if eligible is not None:
                i = np.where(i >= 0, eligible[np.maximum(i, 0)], -1)
        else:
            n_g = len(group.rows)
            if eligible is None:
                sel = None if prefix >= n_g else faiss.IDSelectorRange(0, prefix)
                bits = None
            else:
                bits = np.packbits(np.isin(np.arange(n_g), eligible), bitorder="little")
                sel = faiss.IDSelectorBitmap(n_g, faiss.swig_ptr(bits))
            # A restrictive selector starves the beam / probed lists: widen them in proportion.
            widen = min(8.0, max(1.0, n_g / max(n_eligible, 1)))
            if group.mode == "hnsw":
                params = faiss.SearchParametersHNSW(sel=sel, efSearch=int(max(self.hnsw_ef_search * widen, kq)))
            else:
                params = faiss.SearchParametersIVF(sel=sel, nprobe=int(min(group.index.nlist, self.ivf_nprobe * widen)))
            d, i = group.index.search(xq, kq, params=params)
            del bits
        dist[:, :kq] = np.where(i >= 0, d, -np.inf)
        local[:, :kq] = i
        return dist, local

    def _group_vectors(self, group: _Group, which: slice | np.ndarray) -> np.ndarray:
        """Stored vectors of a group's local rows (a view for flat/HNSW storage, a copy for IVF)."""
        if group.mode == "ivf":
            ids = np.arange(len(group.rows))[which] if isinstance(which, slice) else np.asarray(which)
            return group.index.reconstruct_batch(ids.astype(np.int64)) if len(ids) else np.zeros((0, len(group.columns)), np.float32)
        flat = group.index if group.mode == "flat" else faiss.downcast_index(group.index.storage)
        view = faiss.rev_swig_ptr(flat.get_xb(), flat.ntotal * flat.d).reshape(flat.ntotal, flat.d)
        return view[which]

    def case_vectors(self, rows: np.ndarray) -> np.ndarray:
        """Full (len(rows), D) float32 rows for case rows (zeros for missing blocks or unsearchable cases)."""
        rows = np.asarray(rows, dtype=np.int64)
        out = np.zeros((len(rows), self.layout.total_dim), dtype=np.float32)
        for gi, group in enumerate(self.groups):
            sel = np.flatnonzero((rows >= 0) & (self._group_of[np.maximum(rows, 0)] == gi))
            if len(sel):
                out[np.ix_(sel, group.columns)] = self._group_vectors(group, self._local_of[rows[sel]])
        return out

    def case_presence(self, rows: np.ndarray) -> np.ndarray:
        """(len(rows), B) bool block presence of case rows (False for -1 or unsearchable cases)."""
        rows = np.asarray(rows, dtype=np.int64)
        patterns = np.vstack([g.pattern for g in self.groups] + [np.zeros(len(self.layout.blocks), bool)])
        group = np.where(rows >= 0, self._group_of[np.maximum(rows, 0)], -1)
        return patterns[group]  # -1 picks the all-False row

    def _pair_cosines(self, q: np.ndarray, qp: np.ndarray, query_of: np.ndarray, case_rows: np.ndarray) -> np.ndarray:
        """Per-block cosines of query row query_of[p] and case row case_rows[p] (-1 = none: NaN), each
        distinct case's vectors read from the index once."""
        distinct, case_of = np.unique(case_rows, return_inverse=True)
        return per_block_cosine(self.layout, q, qp, self.case_vectors(distinct), self.case_presence(distinct),
                                pairs=(query_of, case_of.reshape(-1)))

    def _exact_breakdown(self, q: np.ndarray, qp: np.ndarray, w: np.ndarray, top_rows: np.ndarray,
                         queries: np.ndarray | None = None, cache: PairCosines | None = None) -> SearchResult:
        m, k = top_rows.shape
        flat_rows = top_rows.reshape(-1)
        if queries is None or cache is None:
            per_block = self._pair_cosines(q, qp, np.repeat(np.arange(m), k), flat_rows)
        else:
            keys = np.repeat(queries, k) * self.n_cases + np.maximum(flat_rows, 0)
            found, cached = cache.lookup(keys)
            found &= flat_rows >= 0
            per_block = np.full((m * k, len(self.layout.blocks)), np.nan)
            if found.any():
                per_block[found] = cached[found]
            new = np.flatnonzero(~found & (flat_rows >= 0))
            if len(new):
                per_block[new] = self._pair_cosines(q, qp, new // k, flat_rows[new])
                cache.add(keys[new], per_block[new])
        per_block[flat_rows < 0] = np.nan
        per_block = per_block.reshape(m, k, -1)
        scores = combine_blocks(per_block, w)
        # Re-sort on the exact float64 score (ties and float32 rounding in the index).
        order = np.argsort(np.where(np.isfinite(scores), -scores, np.inf), axis=1, kind="stable")
        return SearchResult(rows=np.take_along_axis(top_rows, order, axis=1),
                            scores=np.take_along_axis(scores, order, axis=1),
                            per_block=np.take_along_axis(per_block, order[:, :, None], axis=1))

    # -- persistence -----------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write the index to `directory` (manifest.json, arrays.npz, group_<i>.faiss); returns it."""
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        for old in path.glob("group_*.faiss"):
            old.unlink()
        manifest = {
            "format_version": FORMAT_VERSION,
            "layout": self.layout.to_dict(),
            "params": {"approximate_above": self.approximate_above, "approximate": self.approximate,
                       "exact_below": self.exact_below, "hnsw_m": self.hnsw_m,
                       "hnsw_ef_construction": self.hnsw_ef_construction, "hnsw_ef_search": self.hnsw_ef_search,
                       "ivf_nlist": self.ivf_nlist, "ivf_nprobe": self.ivf_nprobe,
                       "ivf_train_iterations": self.ivf_train_iterations},
            "n_cases": self.n_cases,
            "n_unsearchable": self.n_unsearchable,
            "fingerprint": self.fingerprint,
            "groups": [{"pattern": [b for b, p in zip(self.layout.blocks, g.pattern) if p], "mode": g.mode,
                        "size": len(g.rows)} for g in self.groups],
        }
        arrays: dict[str, np.ndarray] = {"ids": np.asarray(self.ids, dtype=str)}
        for gi, g in enumerate(self.groups):
            arrays[f"rows_{gi}"] = g.rows
            arrays[f"available_{gi}"] = g.available
            faiss.write_index(g.index, str(path / f"group_{gi}.faiss"))
        np.savez(path / ARRAYS, **arrays)
        (path / MANIFEST).write_text(json.dumps(manifest, indent=2))
        return path

    @classmethod
    def load(cls, directory: str | Path) -> CaseIndex:
        """Read an index written by `save`. Raises FileNotFoundError naming the folder when absent."""
        path = Path(directory)
        if not (path / MANIFEST).exists():
            raise FileNotFoundError(f"no case index in {path} ({MANIFEST} missing); materialise cbr/case_base to build it")
        manifest = json.loads((path / MANIFEST).read_text())
        if manifest.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"case index in {path} has format {manifest.get('format_version')}, expected {FORMAT_VERSION}; rebuild it")
        layout = BlockLayout.from_dict(manifest["layout"])
        index = cls(layout, **manifest["params"])
        arrays = np.load(path / ARRAYS, allow_pickle=False)
        index.ids = arrays["ids"].astype(object)
        index.n_cases = int(manifest["n_cases"])
        index.n_unsearchable = int(manifest["n_unsearchable"])
        index.fingerprint = manifest["fingerprint"]
        index._group_of = np.full(index.n_cases, -1, dtype=np.int64)
        index._local_of = np.full(index.n_cases, -1, dtype=np.int64)
        for gi, meta in enumerate(manifest["groups"]):
            pattern = np.array([b in meta["pattern"] for b in layout.blocks])
            rows = arrays[f"rows_{gi}"].astype(np.int64)
            fidx = faiss.read_index(str(path / f"group_{gi}.faiss"))
            if meta["mode"] == "ivf":
                fidx.make_direct_map()
            index.groups.append(_Group(pattern=pattern, rows=rows, available=arrays[f"available_{gi}"].astype(np.int64),
                                       columns=layout.columns(pattern), mode=meta["mode"], index=fidx))
            index._group_of[rows] = gi
            index._local_of[rows] = np.arange(len(rows))
        return index

    def summary(self) -> dict[str, Any]:
        return {"n_cases": self.n_cases, "n_unsearchable": self.n_unsearchable,
                "groups": [{"blocks": [b for b, p in zip(self.layout.blocks, g.pattern) if p],
                            "mode": g.mode, "size": len(g.rows), "dim": len(g.columns)}
                           for g in self.groups]}


def _numpy_knn(xq: np.ndarray, xb: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k inner products, (m, d) x (n, d) -> (m, k) scores and indices, best first."""
    scores = xq @ xb.T
    if k < scores.shape[1]:
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    else:
        part = np.broadcast_to(np.arange(scores.shape[1]), (scores.shape[0], scores.shape[1]))
    top = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-top, axis=1, kind="stable")
    return np.take_along_axis(top, order, axis=1), np.take_along_axis(part, order, axis=1).astype(np.int64)


def case_fingerprint(ids: Sequence[str], available_days: np.ndarray, presence: np.ndarray, vectors: np.ndarray) -> str:
    """A digest of what an index was built from, to tell a stale persisted index from a current one."""
    h = hashlib.blake2b(digest_size=16)
    h.update("\x1f".join(map(str, ids)).encode())
    h.update(np.ascontiguousarray(available_days, dtype=np.int64).tobytes())
    h.update(np.ascontiguousarray(presence, dtype=bool).tobytes())
    h.update(np.ascontiguousarray(vectors, dtype=np.float32).tobytes())
    return h.hexdigest()

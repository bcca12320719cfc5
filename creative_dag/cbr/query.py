"""As-of retrieval over the case base: the `similar(query, weights, k, as_of, filters)` API.

`CaseMemory` joins a case base frame (`cbr.case_base`) with its `CaseIndex`; every later stage
(marts, candidates, report) and the CLI call `CaseMemory.similar` or the batch
`CaseMemory.neighbors`. As-of is the default for creatives already in the case base: a
creative launched on day t sees only cases with available_date < t (launched and matured
before t). `similar_for_creative` is the CLI entry point (`creative-dag similar`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from creative_dag.blocks import BLOCKS, CONTEXT, parse_weights
from creative_dag.catalog import (
    CBR_CASE_BASE,
)
from creative_dag.cbr.case_base import CaseArrays, case_arrays
from creative_dag.cbr.context import CONTEXT_COLUMNS, ContextEncoder
from creative_dag.cbr.index import (
    CaseIndex,
    PairCosines,
    SearchResult,
    case_fingerprint,
    to_days,
)
from creative_dag.cbr.similarity import l2_normalize
from creative_dag.settings import HomeLayout

SIM_COLUMNS: tuple[str, ...] = tuple(f"sim_{b}" for b in BLOCKS)
NEIGHBOR_OUTCOMES: tuple[str, ...] = ("outcome_ctr", "outcome_cvr", "outcome_roas", "outcome_cpa",
                                      "outcome_spend", "outcome_impressions", "outcome_score")
Query = str | Mapping[str, Any]


def index_dir_for(database: str | Path) -> Path:
    """Where the persisted case index lives: <warehouse home>/index/cbr (beside creative.duckdb)."""
    return HomeLayout.of_database(database).case_index


class CaseMemory:
    """A case base plus its index. `similar` answers one query; `neighbors` answers many as-of.

    case_base: the `cbr.case_base` frame. index: a fitted `CaseIndex` built from the same frame
    (checked by fingerprint), or None to build one with `index_params` (see `CaseIndex`).
    """

    def __init__(self, case_base: pd.DataFrame, index: CaseIndex | None = None, **index_params: Any) -> None:
        self.case_base = case_base.reset_index(drop=True)
        self.arrays: CaseArrays = case_arrays(self.case_base)
        a = self.arrays
        if index is None:
            index = CaseIndex(a.layout, **index_params).fit(a.vectors, a.presence, a.available_days, a.ids)
        elif index.fingerprint != case_fingerprint(a.ids, a.available_days, a.presence, a.vectors):
            raise ValueError("the case index was built from a different case base (stale); rebuild it, e.g. "
                             "CaseMemory.open(case_base, index_dir) or re-materialise cbr/case_base")
        self.index = index
        self.layout = a.layout
        self._row_of = {cid: i for i, cid in enumerate(a.ids)}
        self._context = ContextEncoder().fit(self.case_base) if CONTEXT in a.layout.blocks else None

    @classmethod
    def open(cls, case_base: pd.DataFrame, index_dir: str | Path | None = None, **index_params: Any) -> CaseMemory:
        """Load the persisted index from `index_dir` when it matches `case_base`, else build and save it."""
        arrays = case_arrays(case_base.reset_index(drop=True))
        if index_dir is not None and (Path(index_dir) / "manifest.json").exists():
            try:
                index = CaseIndex.load(index_dir)
            except (ValueError, OSError, KeyError, RuntimeError):
                index = None
            if index is not None and index.fingerprint == case_fingerprint(arrays.ids, arrays.available_days,
                                                                           arrays.presence, arrays.vectors):
                return cls(case_base, index=index)
        memory = cls(case_base, **index_params)
        if index_dir is not None:
            memory.index.save(index_dir)
        return memory

    # -- inputs ----------------------------------------------------------------------
    def rows_for(self, creative_ids: Sequence[str]) -> np.ndarray:
        missing = [c for c in creative_ids if c not in self._row_of]
        if missing:
            raise KeyError(f"creative(s) {missing[:5]} not in cbr.case_base ({len(self._row_of)} cases); "
                           "check the id or re-materialise cbr/case_base after ingesting it")
        return np.array([self._row_of[c] for c in creative_ids], dtype=np.int64)

    def filter_mask(self, filters: Mapping[str, Any] | None) -> np.ndarray | None:
        """(n,) bool of cases matching every filter: {column: value or list of values}."""
        if not filters:
            return None
        mask = np.ones(len(self.case_base), dtype=bool)
        for column, wanted in filters.items():
            if column not in self.case_base.columns:
                raise ValueError(f"filter on unknown column {column!r}; case base columns include "
                                 f"{', '.join(c for c in self.case_base.columns if c not in BLOCKS)}")
            values = wanted if isinstance(wanted, (list, tuple, set, np.ndarray, pd.Series)) else [wanted]
            mask &= self.case_base[column].isin(list(values)).to_numpy()
        return mask

    def query_vector(self, query: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        """A new creative as {block: vector} (context may also be {column: value}) -> (1, D), (1, B)."""
        unknown = [b for b in query if b not in BLOCKS and b not in CONTEXT_COLUMNS]
        if unknown:
            raise ValueError(f"query has unknown keys {unknown}; use block names {', '.join(BLOCKS)} "
                             f"or context columns {', '.join(CONTEXT_COLUMNS)}")
        parts: dict[str, np.ndarray] = {}
        context_values = {c: query[c] for c in CONTEXT_COLUMNS if c in query}
        if isinstance(query.get(CONTEXT), Mapping):
            context_values.update(query[CONTEXT])
        for b in self.layout.blocks:
            if b == CONTEXT and (context_values or isinstance(query.get(CONTEXT), Mapping)):
                parts[b] = self._context.transform(pd.DataFrame([context_values]))[0]
            elif b in query and query[b] is not None:
                vec = np.asarray(query[b], dtype=np.float32).reshape(-1)
                dim = self.layout.dims[self.layout.blocks.index(b)]
                if vec.shape[0] != dim:
                    raise ValueError(f"query block {b!r} has {vec.shape[0]} values; the case base stores {dim} "
                                     "(same encoder and PCA settings as cbr.case_base are required)")
                parts[b] = vec
        q = np.zeros((1, self.layout.total_dim), dtype=np.float32)
        pres = np.zeros((1, len(self.layout.blocks)), dtype=bool)
        for i, b in enumerate(self.layout.blocks):
            if b in parts:
                normed, ok = l2_normalize(parts[b][None, :])
                q[0, self.layout.slice(b)] = normed[0]
                pres[0, i] = ok[0]
        if not pres.any():
            raise ValueError(f"query shares no block with the case base (blocks: {', '.join(self.layout.blocks)})")
        return q, pres

    # -- search ----------------------------------------------------------------------
    def similar(self, query: Query, weights: Mapping[str, float] | str | None = None, k: int = 10,
                as_of: Any = None, filters: Mapping[str, Any] | None = None) -> pd.DataFrame:
        """Top-k cases most similar to `query`, best first.

        query: a creative_id in the case base (its own vectors; as_of defaults to its launch date,
        and it never retrieves itself), or {block: vector, context column: value} for a new
        creative (as_of None = every case). weights: {block: w} or "clip=1,cnn=0.5" overriding
        DEFAULT_WEIGHTS. as_of: only cases launched and matured before this date. filters:
        {case base column: value or values}, e.g. {"account_id": "acc_01"}.
        Returns one row per neighbour: rank, creative_id, similarity, sim_<block> (NaN = block not
        shared), shared_blocks, account_id, campaign_id, launch_date, mature_date, context columns,
        outcome columns.
        """
        w = parse_weights(weights) if isinstance(weights, str) else weights
        if isinstance(query, str):
            row = self.rows_for([query])
            q, qp = self.arrays.vectors[row], self.arrays.presence[row]
            if as_of is None:
                as_of = self.case_base.at[int(row[0]), "launch_date"]
            result = self.index.search(q, qp, w, k=k, as_of=as_of, mask=self.filter_mask(filters), exclude=row)
        else:
            q, qp = self.query_vector(query)
            result = self.index.search(q, qp, w, k=k, as_of=as_of, mask=self.filter_mask(filters))
        return self._neighbor_frame(result, 0)

    def neighbors(self, creative_ids: Sequence[str] | None = None, weights: Mapping[str, float] | None = None,
                  k: int = 10, filters: Mapping[str, Any] | None = None) -> pd.DataFrame:
        """As-of top-k neighbours of many creatives at once (each as of its own launch date).

        Returns the long table of `cbr.neighbors`: creative_id, launch_date, account_id,
        neighbor_rank (1 = most similar), neighbor_id, similarity, sim_<block>, shared_blocks,
        neighbor_account_id, neighbor_launch_date, neighbor_mature_date, neighbor_<outcome>.
        Creatives with no eligible case (e.g. the first launch day) have no rows.
        """
        ids = list(self.arrays.ids) if creative_ids is None else list(creative_ids)
        rows = self.rows_for(ids)
        result = self.search_rows(rows, weights, k=k, filters=filters)
        qi, rank = np.nonzero(result.rows >= 0)   # row-major: queries in order, ranks ascending
        nb_rows = result.rows[qi, rank]
        cb = self.case_base
        q_rows = rows[qi]
        out = pd.DataFrame({
            "creative_id": cb["creative_id"].to_numpy()[q_rows],
            "launch_date": cb["launch_date"].to_numpy()[q_rows],
            "account_id": cb["account_id"].to_numpy()[q_rows],
            "neighbor_rank": (rank + 1).astype(np.int64),
            "neighbor_id": cb["creative_id"].to_numpy()[nb_rows],
            "similarity": result.scores[qi, rank],
        })
        per_block = result.per_block[qi, rank]
        for b in BLOCKS:
            out[f"sim_{b}"] = per_block[:, self.layout.blocks.index(b)] if b in self.layout.blocks else np.nan
        out["shared_blocks"] = _shared_blocks(per_block, self.layout.blocks)
        out["neighbor_account_id"] = cb["account_id"].to_numpy()[nb_rows]
        out["neighbor_launch_date"] = cb["launch_date"].to_numpy()[nb_rows]
        out["neighbor_mature_date"] = cb["mature_date"].to_numpy()[nb_rows]
        for c in NEIGHBOR_OUTCOMES:
            if c in cb.columns:
                out["neighbor_" + c] = cb[c].to_numpy()[nb_rows]
        return out

    def search_rows(self, rows: np.ndarray, weights: Mapping[str, float] | np.ndarray | None = None, k: int = 10,
                    as_of: Any = "launch", filters: Mapping[str, Any] | None = None,
                    mask: np.ndarray | None = None, cache: PairCosines | None = None) -> SearchResult:
        """Index search for case rows as queries; as_of="launch" = each row's own launch date. cache: per-block
        cosines of earlier searches of this memory to reuse (`PairCosines`)."""
        rows = np.asarray(rows, dtype=np.int64)
        if isinstance(as_of, str) and as_of == "launch":
            as_of = to_days(self.case_base["launch_date"].iloc[rows])
        if mask is None:
            mask = self.filter_mask(filters)
        return self.index.search(self.arrays.vectors[rows], self.arrays.presence[rows], weights, k=k,
                                 as_of=as_of, mask=mask, exclude=rows, cache=cache)

    def _neighbor_frame(self, result: SearchResult, i: int) -> pd.DataFrame:
        found = result.rows[i] >= 0
        rows = result.rows[i][found]
        cases = self.case_base.iloc[rows]
        out = pd.DataFrame({"rank": np.arange(1, len(rows) + 1), "creative_id": cases["creative_id"].to_numpy(),
                            "similarity": result.scores[i][found]})
        per_block = result.per_block[i][found]
        for b in BLOCKS:
            out[f"sim_{b}"] = per_block[:, self.layout.blocks.index(b)] if b in self.layout.blocks else np.nan
        out["shared_blocks"] = _shared_blocks(per_block, self.layout.blocks)
        keep = [c for c in ("account_id", "campaign_id", "launch_date", "mature_date", *CONTEXT_COLUMNS, *NEIGHBOR_OUTCOMES)
                if c in cases.columns]
        for c in keep:
            out[c] = cases[c].to_numpy()
        return out


def empty_neighbors() -> pd.DataFrame:
    """`cbr.neighbors` with no rows (no creative in the case base), with its columns and types."""
    columns: dict[str, pd.Series] = {
        "creative_id": pd.Series(dtype=str), "launch_date": pd.Series(dtype="datetime64[s]"),
        "account_id": pd.Series(dtype=str), "neighbor_rank": pd.Series(dtype="int64"),
        "neighbor_id": pd.Series(dtype=str), "similarity": pd.Series(dtype=float)}
    columns.update({f"sim_{b}": pd.Series(dtype=float) for b in BLOCKS})
    columns.update({"shared_blocks": pd.Series(dtype=str), "neighbor_account_id": pd.Series(dtype=str),
                    "neighbor_launch_date": pd.Series(dtype="datetime64[s]"),
                    "neighbor_mature_date": pd.Series(dtype="datetime64[s]")})
    columns.update({"neighbor_" + c: pd.Series(dtype=float) for c in NEIGHBOR_OUTCOMES})
    return pd.DataFrame(columns)


def _shared_blocks(per_block: np.ndarray, blocks: tuple[str, ...]) -> list[str]:
    """'clip,visual' per row of a (n, B) per-block cosine array (NaN = block not shared)."""
    finite = np.isfinite(per_block)
    patterns = {}
    out = []
    for row in finite:
        key = row.tobytes()
        if key not in patterns:
            patterns[key] = ",".join(b for b, f in zip(blocks, row) if f)
        out.append(patterns[key])
    return out


def similar(memory: CaseMemory, query: Query, weights: Mapping[str, float] | str | None = None, k: int = 10,
            as_of: Any = None, filters: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Functional form of `CaseMemory.similar`."""
    return memory.similar(query, weights=weights, k=k, as_of=as_of, filters=filters)


def similar_for_creative(warehouse: Any, creative_id: str, k: int = 10,
                         weights: Mapping[str, float] | str | None = None, as_of: Any = None) -> pd.DataFrame:
    """`creative-dag similar CREATIVE_ID`: as-of neighbours of a creative from the warehouse.

    warehouse: a `DuckDBWarehouse`. as_of defaults to the creative's launch date (what it could
    have known); pass a later date to see cases matured since. The persisted index under
    <home>/index/cbr is used when it matches the case base, else rebuilt and saved.
    """
    if not warehouse.exists(CBR_CASE_BASE):
        raise LookupError(f"cbr.case_base is not in {warehouse.path}; materialise it first "
                          "(creative-dag materialize --select cbr/case_base)")
    case_base = warehouse.read_table(CBR_CASE_BASE)
    memory = CaseMemory.open(case_base, index_dir_for(warehouse.path))
    if isinstance(as_of, str):
        as_of = dt.date.fromisoformat(as_of)
    notes = []
    last = warehouse.query("SELECT max(date) AS d FROM raw.daily_metrics")["d"].iloc[0] \
        if as_of is not None and warehouse.exists("raw.daily_metrics") else None
    if last is not None and pd.notna(last) and as_of > pd.Timestamp(last).date() + dt.timedelta(days=1):
        # after the data's last day a case still in its maturity window would pass for matured
        known = pd.Timestamp(last).date() + dt.timedelta(days=1)
        notes.append(f"--as-of {as_of} is after the data's last day ({pd.Timestamp(last).date()}): cases matured "
                     f"before {known} only")
        as_of = known
    named = parse_weights(weights) if isinstance(weights, str) else dict(weights or {})
    unused = [b for b, w in named.items() if w > 0 and b not in memory.layout.blocks]
    if unused:
        notes.append(f"no vectors for block(s) {', '.join(unused)} (unavailable when the memory was built, see "
                     f"embeddings.model_status): weighted 0; blocks used: {', '.join(memory.layout.blocks)}")
    found = memory.similar(creative_id, weights=weights, k=k, as_of=as_of)
    found.attrs["notes"] = notes
    return found


def format_neighbors(frame: pd.DataFrame) -> str:
    """Terminal table of `similar` output: rank, creative, similarity, per-block sims, outcomes."""
    if frame.empty:
        return "no eligible cases (nothing launched and matured before the as-of date matches)"
    cols = ["rank", "creative_id", "similarity"]
    cols += [c for c in SIM_COLUMNS if c in frame.columns and frame[c].notna().any()]
    cols += [c for c in ("account_id", "launch_date", "mature_date", "outcome_ctr", "outcome_cvr", "outcome_roas",
                         "outcome_score") if c in frame.columns]
    view = frame[cols].copy()
    for c in view.columns:
        if c.startswith("sim_") or c == "similarity":
            view[c] = view[c].map(lambda v: "-" if pd.isna(v) else f"{v:.3f}")
        elif c in ("outcome_ctr", "outcome_cvr"):
            view[c] = view[c].map(lambda v: "-" if pd.isna(v) else f"{100 * v:.2f}%")
        elif c in ("outcome_roas", "outcome_score"):
            view[c] = view[c].map(lambda v: "-" if pd.isna(v) else f"{v:.2f}")
    view = view.rename(columns={c: c.replace("outcome_", "") for c in view.columns})
    return view.to_string(index=False)

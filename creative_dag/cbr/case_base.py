"""The case base (docs/cbr.md): one row per creative with its block vectors, context and outcome.

Columns of `cbr.case_base`:

* keys and dates: creative_id, account_id, campaign_id, launch_date, mature_date (from
  features.outcomes: launch + maturity window), available_date = max(launch_date, mature_date):
  the first day *after* which the case may be retrieved (a query on day t sees cases with
  available_date < t, i.e. launched before t and matured before t).
* context columns (prelaunch): platform, placement, format, objective, audience, country,
  product_category — the ones present in features.prelaunch.
* one vector column per block in `creative_dag.blocks.BLOCKS` (clip, cnn, visual, layout, text,
  context): a list of floats, L2-normalised (after the optional per-block PCA), null where the
  block is unavailable or missing for that creative. `blocks_present` lists the non-null ones.
* the outcome column group, all prefixed `outcome_`: evaluation labels, never decision inputs.
  They are measured over the maturity window only (metric days launch_date <= date <
  mature_date), so everything a case carries is known on its mature_date; retrieval releases a
  case only after that (available_date < t). Without raw.daily_metrics the lifetime totals of
  features.outcomes are used instead and the asset metadata says so (`outcome_window`).
  outcome_score is the composite label: log of the shrunk CTR plus log of the shrunk CVR
  (= log shrunk conversions per impression), see `outcome_score`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from creative_dag.blocks import BLOCKS, CONTEXT, EMBEDDING_BLOCKS
from creative_dag.cbr.context import CONTEXT_COLUMNS, ContextEncoder
from creative_dag.cbr.index import to_days
from creative_dag.cbr.similarity import BlockLayout, concat_blocks, l2_normalize
from creative_dag.vectors import as_vector, is_missing_vector, vector_length

OUTCOME_PREFIX = "outcome_"
OUTCOME_COUNT_COLUMNS: tuple[str, ...] = ("impressions", "clicks", "conversions", "spend", "revenue")
OUTCOME_COLUMNS: tuple[str, ...] = tuple(
    OUTCOME_PREFIX + c for c in (*OUTCOME_COUNT_COLUMNS, "ctr", "cvr", "roas", "cpa", "score", "is_mature"))
KEY_COLUMNS: tuple[str, ...] = ("creative_id", "account_id", "campaign_id", "launch_date", "mature_date", "available_date")
# Pseudo-counts of the empirical-Bayes shrinkage in the composite score: a creative's CTR counts
# like its clicks/impressions plus this many impressions at the prior CTR (and CVR likewise).
CTR_PRIOR_IMPRESSIONS = 2000.0
CVR_PRIOR_CLICKS = 50.0


@dataclass
class CaseBaseBuild:
    """Result of `build_case_base`: the table, the block layout and what happened per block."""

    frame: pd.DataFrame
    layout: BlockLayout
    report: dict[str, Any] = field(default_factory=dict)


@dataclass
class CaseArrays:
    """Arrays of a case base for the index: vectors (n, D) float32 (zeros = missing block),
    presence (n, B) bool, available_days (n,) int64 days since epoch, ids (n,) creative ids."""

    layout: BlockLayout
    vectors: np.ndarray
    presence: np.ndarray
    available_days: np.ndarray
    ids: np.ndarray


def outcome_score(impressions: Any, clicks: Any, conversions: Any, prior_ctr: Any, prior_cvr: Any) -> np.ndarray:
    """Composite outcome = log(shrunk CTR) + log(shrunk CVR), float64; NaN with no impressions.

    Shrunk CTR = (clicks + A·prior_ctr) / (impressions + A), A = CTR_PRIOR_IMPRESSIONS; shrunk
    CVR = (conversions + B·prior_cvr) / (clicks + B), B = CVR_PRIOR_CLICKS (docs/marts.md: rates
    are shrunk toward a prior so small samples cannot top the ranking by luck).
    """
    imp = np.asarray(impressions, dtype=float)
    clk = np.asarray(clicks, dtype=float)
    conv = np.asarray(conversions, dtype=float)
    pc = np.clip(np.asarray(prior_ctr, dtype=float), 1e-6, 1.0)
    pv = np.clip(np.asarray(prior_cvr, dtype=float), 1e-6, 1.0)
    ctr_s = (clk + CTR_PRIOR_IMPRESSIONS * pc) / (imp + CTR_PRIOR_IMPRESSIONS)
    cvr_s = (conv + CVR_PRIOR_CLICKS * pv) / (clk + CVR_PRIOR_CLICKS)
    with np.errstate(divide="ignore", invalid="ignore"):
        score = np.log(ctr_s) + np.log(cvr_s)
    return np.where(np.nan_to_num(imp) > 0, score, np.nan)


def pooled_priors(impressions: np.ndarray, clicks: np.ndarray, conversions: np.ndarray,
                  groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row prior CTR and CVR: the pooled rate of the row's group (e.g. account), falling back
    to the pooled rate of all rows when the group has no impressions / clicks."""
    frame = pd.DataFrame({"g": groups, "imp": np.nan_to_num(impressions), "clk": np.nan_to_num(clicks),
                          "conv": np.nan_to_num(conversions)})
    total = frame[["imp", "clk", "conv"]].sum()
    g_ctr_all = total["clk"] / total["imp"] if total["imp"] > 0 else 0.01
    g_cvr_all = total["conv"] / total["clk"] if total["clk"] > 0 else 0.02
    sums = frame.groupby("g")[["imp", "clk", "conv"]].transform("sum")
    ctr = np.where(sums["imp"] > 0, sums["clk"] / sums["imp"].where(sums["imp"] > 0, 1), g_ctr_all)
    cvr = np.where(sums["clk"] > 0, sums["conv"] / sums["clk"].where(sums["clk"] > 0, 1), g_cvr_all)
    return ctr.astype(float), cvr.astype(float)


def maturity_window_outcomes(outcomes: pd.DataFrame, daily_metrics: pd.DataFrame) -> pd.DataFrame:
    """Sum each creative's metric rows with launch_date <= date < mature_date.

    outcomes: creative_id, launch_date, mature_date. daily_metrics: creative_id, date and the
    count columns. Returns creative_id + OUTCOME_COUNT_COLUMNS (0 where nothing was delivered).
    """
    keys = outcomes[["creative_id", "launch_date", "mature_date"]].copy()
    keys["creative_id"] = keys["creative_id"].astype(str)
    keys["launch_date"] = pd.to_datetime(keys["launch_date"])
    keys["mature_date"] = pd.to_datetime(keys["mature_date"])
    cols = [c for c in OUTCOME_COUNT_COLUMNS if c in daily_metrics.columns]
    rows = daily_metrics[["creative_id", "date", *cols]].copy()
    rows["creative_id"] = rows["creative_id"].astype(str)
    rows["date"] = pd.to_datetime(rows["date"])
    rows = rows.merge(keys, on="creative_id", how="inner")
    inside = (rows["date"] >= rows["launch_date"]) & (rows["date"] < rows["mature_date"])
    sums = rows.loc[inside, ["creative_id", *cols]].astype({c: "float64" for c in cols}).groupby("creative_id").sum()
    out = keys[["creative_id"]].merge(sums, left_on="creative_id", right_index=True, how="left")
    for c in OUTCOME_COUNT_COLUMNS:
        out[c] = out[c].fillna(0.0) if c in out.columns else 0.0
    return out


def block_vectors(table: pd.DataFrame | None, creative_ids: pd.Series, block: str) -> tuple[np.ndarray | None, dict[str, Any]]:
    """Align an embeddings.<block> table (creative_id, vector) to `creative_ids`.

    Returns ((n, d) float32 with NaN rows where missing, report) or (None, report) when the table
    is absent/empty. Rows with a vector of the wrong length or non-finite values count as missing
    and are reported (`bad_rows`); duplicate creative_ids keep the last row (`duplicates`).
    """
    report: dict[str, Any] = {"block": block, "available": False, "rows": 0, "dim": 0, "bad_rows": 0, "duplicates": 0}
    if table is None or len(table) == 0 or "vector" not in table.columns:
        report["reason"] = "no rows (model unavailable or block not materialised)"
        return None, report
    frame = table[["creative_id", "vector"]].copy()
    frame["creative_id"] = frame["creative_id"].astype(str)
    report["duplicates"] = int(frame["creative_id"].duplicated().sum())
    frame = frame.drop_duplicates("creative_id", keep="last")
    lengths = frame["vector"].map(vector_length)
    valid_lengths = lengths[lengths > 0]
    if valid_lengths.empty:
        report["reason"] = "every vector is empty"
        return None, report
    dim = int(valid_lengths.mode().iloc[0])
    good = lengths == dim
    report["bad_rows"] = int((~good).sum())
    lookup = dict(zip(frame.loc[good, "creative_id"], frame.loc[good, "vector"]))
    out = np.full((len(creative_ids), dim), np.nan, dtype=np.float32)
    for i, cid in enumerate(creative_ids.astype(str)):
        v = as_vector(lookup.get(cid), dim)
        if v is not None:
            out[i] = v
    usable = np.isfinite(out).all(axis=1) & (np.abs(np.nan_to_num(out)).sum(axis=1) > 0)
    report["bad_rows"] += int(sum(1 for cid in creative_ids.astype(str) if cid in lookup) - usable.sum())
    out[~usable] = np.nan
    report.update(available=bool(usable.any()), rows=int(usable.sum()), dim=dim)
    if not usable.any():
        report["reason"] = "no usable vector for any creative in features.prelaunch"
        return None, report
    return out, report


def reduce_block(matrix: np.ndarray, fit_rows: np.ndarray, n_components: int, seed: int = 0) -> tuple[np.ndarray, dict[str, Any]]:
    """PCA-reduce one block, fitted only on `fit_rows` (bool (n,)) so later creatives never shape it.

    Rows that are NaN (missing) stay NaN. Returns ((n, k) float32, report with explained variance).
    """
    from sklearn.decomposition import PCA

    present = np.isfinite(matrix).all(axis=1)
    fit = present & fit_rows
    k = int(min(n_components, matrix.shape[1], max(fit.sum() - 1, 0)))
    if k < 2:
        return matrix, {"pca": "skipped", "reason": f"{int(fit.sum())} creatives to fit on before the cutoff"}
    normed, _ = l2_normalize(np.nan_to_num(matrix[fit]))
    pca = PCA(n_components=k, random_state=seed).fit(normed)
    out = np.full((matrix.shape[0], k), np.nan, dtype=np.float32)
    rows, _ = l2_normalize(np.nan_to_num(matrix[present]))
    out[present] = pca.transform(rows).astype(np.float32)
    return out, {"pca": k, "explained_variance": round(float(pca.explained_variance_ratio_.sum()), 4),
                 "fitted_on": int(fit.sum())}


def build_case_base(prelaunch: pd.DataFrame, outcomes: pd.DataFrame, block_tables: Mapping[str, pd.DataFrame | None],
                    daily_metrics: pd.DataFrame | None = None, *, context_encoder: ContextEncoder | None = None,
                    pca_dims: Mapping[str, int] | None = None, pca_fit_before: Any = None) -> CaseBaseBuild:
    """Build `cbr.case_base` from features.prelaunch, features.outcomes, embeddings.<block> tables.

    prelaunch: one row per creative (creative_id, account_id, campaign_id, launch_date + context
    columns). outcomes: features.outcomes (creative_id, mature_date, is_mature, counts).
    block_tables: {block: embeddings.<block> frame or None}; absent/empty blocks are simply
    absent. daily_metrics: raw.daily_metrics for maturity-window outcomes (None = lifetime).
    pca_dims: {block: components}; each PCA is fitted on creatives launched before
    `pca_fit_before` only (required when pca_dims is given).
    """
    missing = [c for c in ("creative_id", "account_id", "launch_date") if c not in prelaunch.columns]
    if missing:
        raise KeyError(f"features.prelaunch lacks {missing}; re-materialise features/prelaunch")
    if "creative_id" not in outcomes.columns or "mature_date" not in outcomes.columns:
        raise KeyError("features.outcomes lacks creative_id / mature_date; re-materialise features/outcomes")
    if pca_dims and pca_fit_before is None:
        raise ValueError("pca_dims given without pca_fit_before: the PCA must be fitted as-of a cutoff date "
                         "(e.g. the end of the backtest warm-up) so that later creatives do not shape it")
    base = prelaunch.copy()
    base["creative_id"] = base["creative_id"].astype(str)
    if base["creative_id"].duplicated().any():
        dup = base.loc[base["creative_id"].duplicated(), "creative_id"].iloc[0]
        raise ValueError(f"features.prelaunch has duplicate creative_id {dup!r}; fix raw.creatives and re-run ingest")
    base = base.sort_values("creative_id").reset_index(drop=True)
    out = pd.DataFrame({"creative_id": base["creative_id"], "account_id": base["account_id"].astype(str)})
    out["campaign_id"] = base["campaign_id"].astype(str) if "campaign_id" in base.columns else None
    out["launch_date"] = pd.to_datetime(base["launch_date"]).dt.date
    outc = outcomes.copy()
    outc["creative_id"] = outc["creative_id"].astype(str)
    outc = outc.drop_duplicates("creative_id", keep="last").set_index("creative_id")
    mature = pd.Series(pd.to_datetime(outc["mature_date"].reindex(out["creative_id"]).to_numpy()))
    launch = pd.Series(pd.to_datetime(out["launch_date"]).to_numpy())
    # A case without a mature_date (no outcome row) is never available as a neighbour.
    available = pd.concat([mature, launch], axis=1).max(axis=1, skipna=False)
    out["mature_date"] = _dates_or_none(mature)
    out["available_date"] = _dates_or_none(available)
    context_cols = [c for c in CONTEXT_COLUMNS if c in base.columns]
    for c in context_cols:
        out[c] = base[c]

    report: dict[str, Any] = {"blocks": {}}
    matrices: dict[str, np.ndarray] = {}
    for block in EMBEDDING_BLOCKS:
        mat, rep = block_vectors(block_tables.get(block), out["creative_id"], block)
        if mat is not None:
            matrices[block] = mat
        report["blocks"][block] = rep
    encoder = context_encoder or ContextEncoder()
    encoder.fit(base)
    if encoder.dim > 0:
        ctx = encoder.transform(base)
        ctx[np.abs(ctx).sum(axis=1) == 0] = np.nan
        matrices[CONTEXT] = ctx
    report["blocks"][CONTEXT] = {"block": CONTEXT, "available": encoder.dim > 0, "rows": int(np.isfinite(matrices[CONTEXT]).all(axis=1).sum()) if CONTEXT in matrices else 0,
                                 "dim": encoder.dim, "columns": list(encoder.categories_) + list(encoder.scales_)}
    if pca_dims:
        fit_rows = (to_days(out["launch_date"]) < to_days(pca_fit_before))
        for block, k in pca_dims.items():
            if block in matrices and matrices[block].shape[1] > k:
                matrices[block], rep = reduce_block(matrices[block], np.asarray(fit_rows), int(k))
                report["blocks"][block].update(rep)
                report["blocks"][block]["dim"] = int(matrices[block].shape[1])

    blocks = tuple(b for b in BLOCKS if b in matrices)
    layout = BlockLayout(blocks, tuple(int(matrices[b].shape[1]) for b in blocks)) if blocks else None
    n = len(out)
    if layout is not None:
        vectors, presence = concat_blocks(layout, {b: np.nan_to_num(matrices[b]) for b in blocks}, n)
    for i, block in enumerate(BLOCKS):
        if layout is None or block not in layout.blocks:
            out[block] = pd.Series([None] * n, dtype="object")
            continue
        j = layout.blocks.index(block)
        sub = vectors[:, layout.slice(block)]
        out[block] = pd.Series([sub[r].tolist() if presence[r, j] else None for r in range(n)], dtype="object")
    out["blocks_present"] = [",".join(b for b in BLOCKS if out.at[r, b] is not None) for r in range(n)]

    # Outcome group: counts over the maturity window (or lifetime), rates and the composite label.
    if daily_metrics is not None and len(daily_metrics):
        counts = maturity_window_outcomes(outc.reset_index().loc[:, ["creative_id", "launch_date", "mature_date"]], daily_metrics)
        counts = counts.set_index("creative_id").reindex(out["creative_id"])
        report["outcome_window"] = "maturity window (launch_date <= date < mature_date)"
    else:
        counts = outc.reindex(out["creative_id"])[[c for c in OUTCOME_COUNT_COLUMNS if c in outc.columns]]
        report["outcome_window"] = "lifetime (raw.daily_metrics unavailable): includes days after mature_date"
    from creative_dag import metrics

    for c in OUTCOME_COUNT_COLUMNS:
        out[OUTCOME_PREFIX + c] = counts[c].to_numpy(dtype=float) if c in counts.columns else np.nan
    rates = metrics.add_rate_columns(pd.DataFrame({c: out[OUTCOME_PREFIX + c].to_numpy() for c in OUTCOME_COUNT_COLUMNS}))
    for c in ("ctr", "cvr", "roas", "cpa"):
        out[OUTCOME_PREFIX + c] = rates[c].to_numpy(dtype=float)
    prior_ctr, prior_cvr = pooled_priors(out["outcome_impressions"].to_numpy(), out["outcome_clicks"].to_numpy(),
                                         out["outcome_conversions"].to_numpy(), out["account_id"].to_numpy())
    out["outcome_score"] = outcome_score(out["outcome_impressions"], out["outcome_clicks"], out["outcome_conversions"],
                                         prior_ctr, prior_cvr)
    is_mature = outc["is_mature"].reindex(out["creative_id"]) if "is_mature" in outc.columns else pd.Series(True, index=out["creative_id"])
    out["outcome_is_mature"] = is_mature.fillna(False).astype(bool).to_numpy()
    report["layout"] = layout.to_dict() if layout is not None else None
    report["n_cases"] = n
    return CaseBaseBuild(frame=out, layout=layout, report=report)


def _dates_or_none(values: pd.Series) -> np.ndarray:
    return np.array([None if pd.isna(v) else pd.Timestamp(v).date() for v in values], dtype=object)


def case_arrays(frame: pd.DataFrame, blocks: tuple[str, ...] | None = None) -> CaseArrays:
    """Arrays for the index from a case base frame (as built or as read back from DuckDB)."""
    blocks = tuple(b for b in (blocks or BLOCKS) if b in frame.columns)
    dims: dict[str, int] = {}
    for b in blocks:
        first = next((v for v in frame[b] if not is_missing_vector(v)), None)
        if first is not None:
            dims[b] = len(first)
    present_blocks = tuple(b for b in blocks if b in dims)
    if not present_blocks:
        raise ValueError("the case base has no block vectors at all: materialise at least one embeddings.<block> "
                         "table or give features.prelaunch context columns")
    layout = BlockLayout(present_blocks, tuple(dims[b] for b in present_blocks))
    n = len(frame)
    mats = {}
    for b in present_blocks:
        mat = np.zeros((n, dims[b]), dtype=np.float32)
        for r, v in enumerate(frame[b].tolist()):
            if not is_missing_vector(v):
                if len(v) != dims[b]:
                    raise ValueError(f"cbr.case_base row {frame['creative_id'].iloc[r]!r}: block {b!r} has "
                                     f"{len(v)} values, expected {dims[b]}; re-materialise cbr/case_base")
                mat[r] = np.asarray(v, dtype=np.float32)
        mats[b] = mat
    vectors, presence = concat_blocks(layout, mats, n)
    available = to_days(frame["available_date"]) if "available_date" in frame.columns else np.full(n, np.iinfo(np.int64).min)
    return CaseArrays(layout=layout, vectors=vectors, presence=presence,
                      available_days=np.asarray(available, dtype=np.int64),
                      ids=frame["creative_id"].astype(str).to_numpy(dtype=object))

"""Decision-time inputs of the forecast, one row per case of `cbr.case_base`.

Input groups (each is an input set of the evaluation table, `INPUT_SETS`):

* `context`     account and the prelaunch context columns (categorical codes). Category
                vocabularies are prelaunch facts, so coding every row at once leaks nothing.
                Codes number the levels in the order creatives launched (`first_seen_codes`), so a
                level that first appears on a new day never recodes an earlier creative.
* `attributes`  the interpretable attribute frame (colour, layout, OCR, faces, CTA, tags) as
                numbers; categorical attributes as codes.
* `block:<b>`   each available block's vector, reduced by a PCA that the model fits on its
                training window only (`reduce_blocks`), so later creatives never shape it.
* `cbr`         case-based evidence per KPI: the similarity-weighted residual of the K most
                similar *as-of* neighbours (available before the creative's launch) against their
                own account's level — the `cbr` predictor of the backtest as a feature — plus
                the top and mean similarity and the number of neighbours with an outcome.

Nothing here reads an `outcome_*` column of the creative itself; the CBR features read the
neighbours' outcomes only through the as-of search.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from creative_dag.blocks import CONTEXT, DEFAULT_WEIGHTS, EMBEDDING_BLOCKS
from creative_dag.cbr.context import CONTEXT_COLUMNS
from creative_dag.cbr.query import CaseMemory
from creative_dag.forecast.targets import KpiTarget
from creative_dag.vectors import as_vector


@dataclass
class ForecastInputs:
    """static: frame aligned to the case base rows (context codes, attributes, CBR features);
    groups: input group -> its static columns; blocks: block -> (n, d) float matrix (NaN rows where
    the block is missing); categorical: static columns that are category codes;
    neighbors: (n, k) case rows of each creative's as-of neighbours (-1 = none), best first;
    pca_cache: the reductions of these blocks fitted so far (`reduce_blocks`' cache: one PCA per block and
    training rows, whichever model of the run asks); digest_cache: the refit memo's row digests of each set
    of blocks (`row_digests`), shared by the rolling forecasts that read the same blocks."""

    static: pd.DataFrame
    groups: dict[str, list[str]]
    blocks: dict[str, np.ndarray]
    categorical: list[str]
    neighbors: np.ndarray
    neighbor_similarity: np.ndarray
    notes: list[str] = field(default_factory=list)
    pca_cache: dict = field(default_factory=dict, repr=False)
    digest_cache: dict = field(default_factory=dict, repr=False)


def launch_order(case_base: pd.DataFrame) -> np.ndarray:
    """Row positions in the order creatives entered the memory: by launch date, then creative id (row order
    where a frame has neither)."""
    keys = [case_base[c].astype("string").fillna("").to_numpy(dtype=object)
            for c in ("creative_id", "launch_date") if c in case_base.columns]
    return np.lexsort(keys) if keys else np.arange(len(case_base))


def first_seen_codes(values: pd.Series, order: np.ndarray) -> np.ndarray:
    """Category codes numbered in the order the levels first appear along `order` (NaN = missing).

    A level that first appears with a later creative gets the next code, so every earlier row keeps its
    code. Sorted codes shifted whenever a new level sorted before the others (a new day's first "left" face
    position recoded 1,955 of 1,970 creatives), which changed the inputs of every past refit and made the
    refit memo fit them all again. The models read the codes as categories, never as an order."""
    in_order, _ = pd.factorize(values.astype("string").iloc[order], sort=False, use_na_sentinel=True)
    codes = np.empty(len(values), dtype=float)
    codes[order] = np.where(in_order >= 0, in_order, np.nan)  # the -1 sentinel -> NaN: missing for the boosters
    return codes


def context_features(case_base: pd.DataFrame) -> pd.DataFrame:
    """account_id + prelaunch context columns as category codes (`first_seen_codes`; NaN = missing)."""
    cols = [c for c in ("account_id", *CONTEXT_COLUMNS) if c in case_base.columns]
    order = launch_order(case_base)
    return pd.DataFrame({f"ctx_{col}": first_seen_codes(case_base[col], order) for col in cols},
                        index=case_base.index)


def attribute_features(case_base: pd.DataFrame, attributes: pd.DataFrame | None) -> tuple[pd.DataFrame, list[str]]:
    """The attribute frame aligned to the case base: numbers and booleans as floats, other columns as codes."""
    if attributes is None or attributes.empty or attributes.shape[1] <= 1:
        return pd.DataFrame(index=case_base.index), []
    aligned = case_base[["creative_id"]].merge(attributes.drop_duplicates("creative_id"), on="creative_id",
                                               how="left").drop(columns="creative_id")
    aligned.index = case_base.index
    order = launch_order(case_base)
    out, categorical = {}, []
    for col in aligned.columns:
        s = aligned[col]
        name = f"attr_{col}"
        if s.dtype == bool or pd.api.types.is_numeric_dtype(s):
            out[name] = pd.to_numeric(s, errors="coerce").astype(float)
            continue
        as_bool = s.map(lambda v: v if isinstance(v, (bool, np.bool_)) else None)
        if as_bool.notna().sum() == s.notna().sum() and s.notna().any():
            out[name] = as_bool.map(lambda v: np.nan if v is None else float(v)).astype(float)
            continue
        out[name] = first_seen_codes(s, order)
        categorical.append(name)
    return pd.DataFrame(out, index=case_base.index), categorical


def block_matrices(case_base: pd.DataFrame, blocks: Sequence[str] = EMBEDDING_BLOCKS) -> dict[str, np.ndarray]:
    """Each block's vectors as an (n, d) matrix with NaN rows where missing; blocks nobody has are left out."""
    out: dict[str, np.ndarray] = {}
    for b in blocks:
        if b not in case_base.columns:
            continue
        vecs = [as_vector(v) for v in case_base[b]]
        dims = [len(v) for v in vecs if v is not None]
        if not dims:
            continue
        dim = max(set(dims), key=dims.count)
        mat = np.full((len(vecs), dim), np.nan)
        for i, v in enumerate(vecs):
            if v is not None and len(v) == dim:
                mat[i] = v
        out[b] = mat
    return out


def reduce_blocks(blocks: Mapping[str, np.ndarray], train: np.ndarray, dims: int, seed: int = 0,
                  cache: dict | None = None) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
    """PCA of each block fitted on the `train` rows that have it; returns (block -> (n, c) scores with NaN
    rows where missing, block -> {"components", "mean"} to apply the same reduction later).

    cache: a dict shared by calls on the SAME block matrices (one forecast run): a block reduced on the same
    rows is fitted once. Every input set and target of a refit that uses a block trains on the same rows, so
    a run fits each (block, refit, KPI) once instead of once per model. Cached scores are read-only."""
    from sklearn.decomposition import PCA

    reduced, fitted = {}, {}
    for b, mat in blocks.items():
        have = np.isfinite(mat).all(axis=1)
        fit_rows = train[have[train]]
        n_comp = int(min(dims, mat.shape[1], max(len(fit_rows) - 1, 0)))
        if n_comp < 1:
            continue
        key = (b, n_comp, seed, fit_rows.tobytes())
        if cache is not None and key in cache:
            reduced[b], fitted[b] = cache[key]
            continue
        pca = PCA(n_components=n_comp, random_state=seed).fit(mat[fit_rows])
        fitted[b] = {"components": pca.components_.tolist(), "mean": pca.mean_.tolist()}
        reduced[b] = apply_pca(mat, fitted[b])
        if cache is not None:
            reduced[b].flags.writeable = False
            cache[key] = reduced[b], fitted[b]
    return reduced, fitted


def apply_pca(mat: np.ndarray, pca: Mapping[str, list]) -> np.ndarray:
    """(n, c) scores of a block under a fitted reduction (`reduce_blocks`), NaN rows where the block is missing.
    The fitted and the kept refits (creative_dag.forecast.learners) both score through here, so they agree."""
    components = np.asarray(pca["components"], dtype=np.float64)
    mat = np.asarray(mat, dtype=np.float64)
    have = np.isfinite(mat).all(axis=1)
    scores = np.full((len(mat), len(components)), np.nan)
    # scikit-learn's PCA.transform: project, then subtract the projected mean
    scores[have] = mat[have] @ components.T - np.asarray(pca["mean"], dtype=np.float64)[None, :] @ components.T
    return scores


def cbr_features(memory: CaseMemory, targets: Mapping[str, KpiTarget], k: int = 20,
                 weights: Mapping[str, float] | None = None, similarity_power: float = 4.0,
                 shrinkage: float = 0.0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Per case row, as of its own launch: neighbour residual per KPI, top / mean similarity, neighbour count.

    A neighbour's residual for a KPI is its label minus its own account's trailing level in the
    model space of that target (the cube-rooted ratio for rates, the score difference for the
    composite): the part of its outcome its account does not explain. Residuals are averaged with
    weights max(S, 0)^p. Not shrunk by default (`shrinkage` pseudo-weight): a shrunk mean is small while the
    memory is thin and larger later, a drift a model fitted on early cases would misread.
    Returns (features, neighbour rows (n, k), their similarities (n, k)).
    """
    cb = memory.case_base
    n = len(cb)
    weights = dict(weights or {b: DEFAULT_WEIGHTS.get(b, 0.0) for b in memory.layout.blocks})
    # Retrieval is over cases with a score label; each KPI then uses the neighbours it has a value for.
    labelled = np.isfinite(cb["outcome_score"].to_numpy(dtype=float))
    result = memory.search_rows(np.arange(n), weights, k=k, mask=labelled)
    rows, scores = result.rows, np.where(result.rows >= 0, result.scores, np.nan)
    ok = (rows >= 0) & np.isfinite(scores)
    safe = np.maximum(rows, 0)
    a = np.where(ok, np.clip(np.nan_to_num(scores), 0.0, None) ** similarity_power, 0.0)
    out = {
        "cbr_top_similarity": np.where(ok[:, 0], scores[:, 0], np.nan) if rows.shape[1] else np.full(n, np.nan),
        "cbr_mean_similarity": np.where(ok.any(axis=1), np.nansum(np.where(ok, scores, 0), axis=1)
                                        / np.maximum(ok.sum(axis=1), 1), np.nan),
        "cbr_neighbors": ok.sum(axis=1).astype(float),
    }
    launch = next(iter(targets.values())).launch if targets else np.zeros(n, np.int64)
    for kpi, target in targets.items():
        if kpi == "score":
            # Composite labels depend on shrinkage priors: recompute them as of each query's day.
            resid = np.full(rows.shape, np.nan)
            for day in np.unique(launch):
                at = launch == day
                resid[at] = _relative(target, target.labels_at(int(day)))[safe[at]]
            resid = np.where(ok, resid, np.nan)
        else:  # a rate and its level are fixed once the neighbour is available
            resid = np.where(ok, _relative(target, target.value)[safe], np.nan)
        use = ok & np.isfinite(resid)
        w = np.where(use, a, 0.0)
        num, den = (w * np.nan_to_num(resid)).sum(axis=1), w.sum(axis=1) + shrinkage
        out[f"cbr_residual_{kpi}"] = np.divide(num, den, out=np.full(n, np.nan), where=use.any(axis=1) & (den > 0))
    return pd.DataFrame(out, index=cb.index), rows, scores


def _relative(target: KpiTarget, value: np.ndarray) -> np.ndarray:
    """A case's KPI relative to its own trailing account level: the normalised target when the target is
    normalised; otherwise the difference (score) or log ratio (rates), so the feature means the same
    whatever the account's scale."""
    if target.spec.normalise:
        return target.to_model(value, np.arange(len(value)), training=True)
    level = target.train_level
    if target.kpi == "score":
        return value - level
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((value > 0) & (level > 0), np.log(value / level), np.nan)


def build_inputs(memory: CaseMemory, attributes: pd.DataFrame | None, targets: Mapping[str, KpiTarget],
                 k: int = 20, weights: Mapping[str, float] | None = None) -> ForecastInputs:
    """Every input group for the case base of `memory` (see module doc)."""
    cb = memory.case_base
    ctx = context_features(cb)
    attrs, attr_cat = attribute_features(cb, attributes)
    cbr, nb_rows, nb_sim = cbr_features(memory, targets, k=k, weights=weights)
    blocks = {b: m for b, m in block_matrices(cb).items() if b != CONTEXT}
    notes = []
    if attrs.empty:
        notes.append("no interpretable attributes: the attributes input set is empty")
    missing = [b for b in EMBEDDING_BLOCKS if b not in blocks]
    if missing:
        notes.append(f"blocks without vectors (left out): {', '.join(missing)}")
    static = pd.concat([ctx, attrs, cbr], axis=1)
    # Only the residuals feed the model: neighbour counts and similarities grow as the memory fills, so a
    # model trained on early cases would read them as a trend (they stay in `static` as evidence).
    residuals = [c for c in cbr.columns if c.startswith("cbr_residual_")]
    groups = {"context": list(ctx.columns), "attributes": list(attrs.columns), "cbr": residuals}
    return ForecastInputs(static=static, groups=groups, blocks=blocks, categorical=list(ctx.columns) + attr_cat,
                          neighbors=nb_rows, neighbor_similarity=nb_sim, notes=notes)

"""Creative repetition: similarity density, near-duplicate clusters, the "tired or repetitive" view.

- similarity_density: how many OTHER creatives of the same account, launched in the trailing
  `window_days` up to and including this creative's launch date, have fused similarity >= tau.
  High density = the account keeps launching the same idea.
- near-duplicate clusters: connected components of the graph "S >= dup_threshold" inside an
  account (stricter than tau); singletons get no cluster id.
- is_repetitive: in a near-duplicate cluster, or similarity_density >= density_threshold.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

from creative_dag.marts.similarity import BlockVectors


@dataclass(frozen=True)
class RepetitionParams:
    """tau: similarity for density; dup_threshold: similarity for near-duplicate edges (stricter);
    window_days: trailing launch window for density; density_threshold: density that flags
    repetition on its own; weights: block weights of the fused similarity (None = defaults)."""

    tau: float = 0.85
    dup_threshold: float = 0.92
    window_days: int = 28
    density_threshold: int = 3
    weights: Mapping[str, float] | None = None


def creative_repetition(creatives: pd.DataFrame, vectors: BlockVectors,
                        params: RepetitionParams | None = None) -> pd.DataFrame:
    """One row per creative: similarity_density, max_similarity, most_similar_id, near_duplicate_cluster,
    cluster_size, is_repetitive, vector_status.

    creatives: creative_id, account_id, launch_date. vectors: fused-similarity inputs for (a
    superset of) those creatives. Creatives without any vector get vector_status 'no vectors',
    density NA and no cluster (not silently counted as unique).
    """
    p = params or RepetitionParams()
    if p.dup_threshold < p.tau:
        raise ValueError(f"dup_threshold ({p.dup_threshold}) must be >= tau ({p.tau}): near-duplicates are the stricter test")
    info = creatives[["creative_id", "account_id", "launch_date"]].copy()
    info["creative_id"] = info["creative_id"].astype(str)
    info["launch_date"] = pd.to_datetime(info["launch_date"])
    has_vec = dict(zip(vectors.ids, vectors.has_any()))
    rows = []
    for acc, g in info.groupby("account_id", sort=True):
        g = g[[has_vec.get(c, False) for c in g["creative_id"]]].reset_index(drop=True)
        if g.empty:
            continue
        sub = vectors.subset(g["creative_id"].tolist())
        sim = sub.similarity_matrix(p.weights)
        np.fill_diagonal(sim, np.nan)
        s = np.nan_to_num(sim, nan=-np.inf)
        launch = g["launch_date"].to_numpy("datetime64[D]")
        lag = (launch[:, None] - launch[None, :]).astype("int64")  # row launched lag days after column
        in_window = (lag >= 0) & (lag <= p.window_days)
        density = ((s >= p.tau) & in_window).sum(axis=1)
        best = np.argmax(s, axis=1) if len(g) > 1 else np.zeros(len(g), dtype=int)
        max_sim = s[np.arange(len(g)), best] if len(g) > 1 else np.full(len(g), np.nan)
        adj = csr_matrix(s >= p.dup_threshold)
        n_comp, labels = connected_components(adj, directed=False)
        sizes = np.bincount(labels, minlength=n_comp)
        # Stable, readable cluster ids: numbered by each cluster's earliest member.
        order = {}
        for k in np.lexsort((np.arange(len(g)), launch.astype("int64"))):
            lab = labels[k]
            if sizes[lab] > 1 and lab not in order:
                order[lab] = len(order) + 1
        for k, rec in g.iterrows():
            lab = labels[k]
            rows.append({
                "creative_id": rec["creative_id"], "account_id": acc,
                "similarity_density": int(density[k]),
                "max_similarity": float(max_sim[k]) if np.isfinite(max_sim[k]) else np.nan,
                "most_similar_id": g["creative_id"].iloc[best[k]] if len(g) > 1 and np.isfinite(max_sim[k]) else None,
                "near_duplicate_cluster": f"{acc}-dup{order[lab]:03d}" if sizes[lab] > 1 else None,
                "cluster_size": int(sizes[lab]),
                "vector_status": "ok",
            })
    out = pd.DataFrame(rows, columns=["creative_id", "account_id", "similarity_density", "max_similarity",
                                      "most_similar_id", "near_duplicate_cluster", "cluster_size", "vector_status"])
    missing = info[~info["creative_id"].isin(out["creative_id"])]
    if len(missing):
        extra = pd.DataFrame({"creative_id": missing["creative_id"], "account_id": missing["account_id"],
                              "similarity_density": pd.NA, "max_similarity": np.nan, "most_similar_id": None,
                              "near_duplicate_cluster": None, "cluster_size": 1,
                              "vector_status": "no vectors"})
        out = pd.concat([out, extra], ignore_index=True) if len(out) else extra
    out["similarity_density"] = out["similarity_density"].astype("Int64")
    out["is_repetitive"] = out["near_duplicate_cluster"].notna() | (
        out["similarity_density"].fillna(0).astype("int64") >= p.density_threshold)
    return out.merge(info[["creative_id", "launch_date"]], on="creative_id", how="left").assign(
        launch_date=lambda f: f["launch_date"].dt.date)[
        ["creative_id", "account_id", "launch_date", "similarity_density", "max_similarity", "most_similar_id",
         "near_duplicate_cluster", "cluster_size", "is_repetitive", "vector_status"]
    ].sort_values(["account_id", "creative_id"]).reset_index(drop=True)


def tired_or_repetitive(repetition: pd.DataFrame, fatigue: pd.DataFrame | None) -> pd.DataFrame:
    """The combined view: one row per creative with fatigue status, repetition and a reason.

    repetition: creative_repetition output; fatigue: marts.creative_fatigue (creative_id, status,
    fatigue_onset_date) or None when unavailable. is_tired = status in (fatiguing, fatigued).
    """
    out = repetition[["creative_id", "account_id", "similarity_density", "near_duplicate_cluster",
                      "cluster_size", "is_repetitive"]].copy()
    if fatigue is not None and len(fatigue):
        out = out.merge(fatigue[["creative_id", "status", "fatigue_onset_date", "current_vs_peak"]].rename(
            columns={"status": "fatigue_status"}), on="creative_id", how="left")
    else:
        out["fatigue_status"] = None
        out["fatigue_onset_date"] = None
        out["current_vs_peak"] = np.nan
    out["is_tired"] = out["fatigue_status"].isin(["fatiguing", "fatigued"])
    out["tired_or_repetitive"] = out["is_tired"] | out["is_repetitive"].astype(bool)

    def reason(r: pd.Series) -> str:
        parts = []
        if r["is_tired"]:
            parts.append(f"{r['fatigue_status']} since {r['fatigue_onset_date']}")
        if isinstance(r["near_duplicate_cluster"], str):
            parts.append(f"near-duplicate of {int(r['cluster_size']) - 1} other creative(s) ({r['near_duplicate_cluster']})")
        elif r["is_repetitive"]:
            parts.append(f"{int(r['similarity_density'])} similar creatives launched recently")
        return "; ".join(parts)

    out["reason"] = out.apply(reason, axis=1) if len(out) else pd.Series(dtype="object")
    return out

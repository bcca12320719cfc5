"""The creative landscape: a deterministic 2-D map of the fused case vectors, clusters, a summary.

- Coordinates: UMAP (umap-learn, cosine metric, fixed `random_state`, which makes UMAP
  single-threaded and reproducible). With fewer than `min_umap` creatives UMAP's neighbour
  graph is meaningless, so PCA (2 components) is used instead; `method` says which.
- Clusters: scikit-learn HDBSCAN on the 2-D coordinates (label -1 = not in any cluster);
  with fewer than `min_umap` creatives, k-means with k = min(3, n).
- Summary (`marts.landscape_clusters`): size, mean score, share fatigued, and the dominant
  attributes (indicator levels most over-represented in the cluster vs all creatives).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class LandscapeParams:
    """min_umap: fewest creatives for UMAP (else PCA); n_neighbors: UMAP neighbourhood;
    min_cluster_size: HDBSCAN's smallest cluster (None = max(5, n // 25)); seed: random_state."""

    min_umap: int = 15
    n_neighbors: int = 15
    min_dist: float = 0.1
    min_cluster_size: int | None = None
    seed: int = 0


def landscape_coordinates(ids: list[str], vectors: np.ndarray, params: LandscapeParams | None = None,
                          cache_dir: str | Path | None = None) -> pd.DataFrame:
    """creative_id, x, y, cluster (int, -1 = noise), method ('umap' | 'pca' | 'single').

    vectors: (n, d) float32 fused case vectors (rows L2-normalised), aligned with ids.
    cache_dir: where a map is kept under the hash of its inputs, so an unchanged set of creatives
    and vectors is not fitted again (a UMAP fit and its numba compilation take tens of seconds).
    """
    p = params or LandscapeParams()
    cached = _cache_path(cache_dir, ids, vectors, p) if cache_dir else None
    if cached is not None and cached.exists():
        return pd.read_parquet(cached)
    frame = _fit_landscape(ids, vectors, p)
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_name(f".tmp-{cached.name}")
        frame.to_parquet(tmp, index=False)
        tmp.replace(cached)
    return frame


def _cache_path(cache_dir: str | Path, ids: list[str], vectors: np.ndarray, p: LandscapeParams) -> Path:
    digest = hashlib.sha256(repr((list(map(str, ids)), p)).encode())
    digest.update(np.ascontiguousarray(vectors, dtype=np.float32).tobytes())
    return Path(cache_dir) / f"landscape-{digest.hexdigest()[:24]}.parquet"


def _fit_landscape(ids: list[str], vectors: np.ndarray, p: LandscapeParams) -> pd.DataFrame:
    x = np.asarray(vectors, dtype=np.float32)
    n = len(ids)
    if x.shape[0] != n:
        raise ValueError(f"landscape: {n} ids but {x.shape[0]} vectors")
    if n == 0:
        return pd.DataFrame({"creative_id": [], "x": [], "y": [], "cluster": [], "method": []})
    if n < 3:
        coords, method = np.zeros((n, 2)), "single"
        coords[:, 0] = np.arange(n)
    elif n < p.min_umap:
        from sklearn.decomposition import PCA

        coords, method = PCA(n_components=2, random_state=p.seed).fit_transform(x), "pca"
    else:
        import umap

        reducer = umap.UMAP(n_components=2, n_neighbors=min(p.n_neighbors, n - 1), min_dist=p.min_dist,
                            metric="cosine", random_state=p.seed, init="spectral" if n > 30 else "random")
        coords, method = reducer.fit_transform(x), "umap"
    labels = _cluster(np.asarray(coords, dtype=np.float64), p)
    return pd.DataFrame({"creative_id": ids, "x": coords[:, 0].astype(float), "y": coords[:, 1].astype(float),
                         "cluster": labels.astype("int64"), "method": method})


def _cluster(coords: np.ndarray, p: LandscapeParams) -> np.ndarray:
    n = len(coords)
    if n < 3:
        return np.zeros(n, dtype=int)
    if n < p.min_umap:
        from sklearn.cluster import KMeans

        return KMeans(n_clusters=min(3, n), n_init=10, random_state=p.seed).fit_predict(coords)
    from sklearn.cluster import HDBSCAN

    size = p.min_cluster_size or max(5, n // 25)
    return HDBSCAN(min_cluster_size=size).fit_predict(coords)


def cluster_summary(landscape: pd.DataFrame, ranking: pd.DataFrame | None = None,
                    fatigue: pd.DataFrame | None = None, attributes: pd.DataFrame | None = None,
                    top_attributes: int = 3) -> pd.DataFrame:
    """One row per cluster: cluster, size, mean_score, share_fatigued, dominant_attributes, example_ids.

    landscape: landscape_coordinates output (+ account_id optional). ranking: creative_id, score.
    fatigue: creative_id, status. attributes: plain attribute frame (creative_id + columns).
    """
    from creative_dag.marts.recommendations import attribute_indicators

    d = landscape.copy()
    if "score" in d.columns:
        pass
    elif ranking is not None and "score" in ranking.columns:
        d = d.merge(ranking[["creative_id", "score"]], on="creative_id", how="left")
    else:
        d["score"] = np.nan
    if fatigue is not None and "status" in fatigue.columns:
        d = d.drop(columns=["status"], errors="ignore").merge(fatigue[["creative_id", "status"]], on="creative_id", how="left")
        d["fatigued"] = d["status"].isin(["fatiguing", "fatigued"]).astype(float).where(d["status"].notna())
    else:
        d["fatigued"] = np.nan
    ind = None
    if attributes is not None and len(attributes) and attributes.shape[1] > 1:
        ind = attribute_indicators(attributes, min_support=2).reindex(d["creative_id"])
        ind.index = d.index
    rows = []
    for label, g in d.groupby("cluster", sort=True):
        dominant = ""
        if ind is not None and ind.shape[1]:
            inside = ind.loc[g.index].mean()
            overall = ind.mean()
            lift = (inside - overall).where(inside >= 0.5)
            top = lift.dropna().sort_values(ascending=False).head(top_attributes)
            dominant = ", ".join(f"{k} ({inside[k]:.0%})" for k in top.index if top[k] > 0)
        best = g.sort_values("score", ascending=False)["creative_id"].head(3).tolist()
        rows.append({"cluster": int(label), "size": len(g),
                     "mean_score": float(g["score"].mean()) if g["score"].notna().any() else np.nan,
                     "share_fatigued": float(g["fatigued"].mean()) if g["fatigued"].notna().any() else np.nan,
                     "dominant_attributes": dominant, "example_ids": best,
                     "x": float(g["x"].mean()), "y": float(g["y"].mean())})
    return pd.DataFrame(rows, columns=["cluster", "size", "mean_score", "share_fatigued", "dominant_attributes",
                                       "example_ids", "x", "y"])


def plot_landscape(landscape: pd.DataFrame, path: str | Path, title: str = "Creative landscape",
                   dpi: int = 110) -> Path:
    """Write a PNG scatter of the map (colour = cluster, marker size ~ score when present)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 6), dpi=dpi)
    try:
        clusters = sorted(landscape["cluster"].unique()) if len(landscape) else []
        cmap = plt.get_cmap("tab20")
        for i, c in enumerate(clusters):
            g = landscape[landscape["cluster"] == c]
            size = 18.0
            if "score" in g.columns and g["score"].notna().any():
                size = 10 + 40 * (g["score"].rank(pct=True).fillna(0.5)).to_numpy()
            ax.scatter(g["x"], g["y"], s=size, alpha=0.75, color="lightgrey" if c == -1 else cmap(i % 20),
                       label="unclustered" if c == -1 else f"cluster {c}", edgecolors="none")
        ax.set_title(f"{title} ({len(landscape)} creatives)")
        ax.set_xticks([])
        ax.set_yticks([])
        if 0 < len(clusters) <= 20:
            ax.legend(fontsize=7, loc="best", markerscale=0.8)
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)
    return path

"""The creative landscape: a deterministic 2-D map of the fused case vectors, clusters, a summary.

- Coordinates: UMAP (umap-learn, cosine metric, fixed `random_state`, which makes UMAP
  single-threaded and reproducible). With fewer than `min_umap` creatives UMAP's neighbour
  graph is meaningless, so PCA (2 components) is used instead; `method` says which.
- Clusters: Ward clustering of the vectors themselves (PCA-reduced), not of the map: UMAP's layout
  moves with input changes of 1e-8 (run-to-run float noise of an encoder gave the demo 3, 5 or 8
  clusters on the map), while Ward's merges only change when distances do. The number of clusters
  is the smallest with a silhouette within `silhouette_tolerance` of the best. When no number has
  a silhouette of at least `clear_structure` (0.25: below it Kaufman & Rousseeuw find "no
  substantial structure"), the silhouette cannot choose (the demo: 0.07-0.12 for every k, and a
  cold run picked 2), so the choice is made within `readable_clusters` (4-8): enough regions to
  navigate and label on a BI chart, few enough to read. Clusters smaller than `min_cluster_size`
  are label -1 (not in any cluster). Labels are numbered by size, largest first.
  With fewer than `min_umap` creatives, k-means on the map with k = min(3, n).
- Clusters keep their labels from run to run (`keep_clusters`): while at most `recluster_share` of
  the creatives are new since the previous run, every creative keeps its previous cluster and a
  new one joins the cluster whose centre (of the current vectors) is nearest if it is as close as
  the cluster's own members typically are, else -1. A Ward clustering of 1 % fewer creatives can
  differ as much as a different clustering (adjusted Rand 0.1-0.6 on the demo): without this a BI
  chart would relabel the landscape every day.
- The map keeps its coordinates from run to run too (`keep_map`): a UMAP fit of a slightly larger set
  is a different map (rotated, mirrored, regions moved), so a BI chart read day after day would jump.
  While at most `recluster_share` of the creatives were not in the last fit, every creative keeps
  its previous x, y and a new one is placed at the similarity-weighted mean of its `place_neighbors`
  most similar fitted creatives (UMAP's own initialisation of `transform`), `method` 'umap-placed';
  beyond that share the map is fitted again. No fit is paid on those days.
- Summary (`marts.landscape_clusters`): a name made of what distinguishes the cluster (indicator
  levels most over-represented in it vs the rest of the map), size, spend share, mean and median
  score, share fatigued.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from creative_dag.marts.attributes import (
    TAG_PREFIX,
    attribute_family,
    describe_indicator,
    naming_priority,
)


@dataclass(frozen=True)
class LandscapeParams:
    """min_umap: fewest creatives for UMAP (else PCA); n_neighbors: UMAP neighbourhood;
    min_cluster_size: smallest cluster (None = max(5, n // 25)); max_clusters: most clusters tried;
    cluster_dims: PCA components the clustering uses; silhouette_tolerance, clear_structure,
    readable_clusters, recluster_share, place_neighbors: see module doc; seed: random_state."""

    min_umap: int = 15
    n_neighbors: int = 15
    min_dist: float = 0.1
    min_cluster_size: int | None = None
    max_clusters: int = 12
    cluster_dims: int = 20
    silhouette_tolerance: float = 0.01
    clear_structure: float = 0.25
    readable_clusters: tuple[int, int] = (4, 8)
    recluster_share: float = 0.2
    place_neighbors: int = 5
    seed: int = 0


def landscape_coordinates(ids: list[str], vectors: np.ndarray, params: LandscapeParams | None = None,
                          cache_dir: str | Path | None = None) -> pd.DataFrame:
    """creative_id, x, y, cluster (int, -1 = noise), method ('umap' | 'pca' | 'single').

    vectors: (n, d) float32 fused case vectors (rows L2-normalised), aligned with ids.
    cache_dir: where a map is kept under the hash of its inputs, so an unchanged set of creatives
    and vectors is not fitted again (UMAP's compiled code is cached too: cache_umap_compilation).
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


# umap-learn / pynndescent modules whose numba functions a fit compiles (none of them asks numba to cache).
_NUMBA_MODULES = ("umap.umap_", "umap.layouts", "umap.utils", "umap.distances", "umap.sparse", "umap.spectral",
                  "pynndescent.pynndescent_", "pynndescent.distances", "pynndescent.sparse", "pynndescent.utils",
                  "pynndescent.rp_trees", "pynndescent.graph_utils", "pynndescent.sparse_nndescent")


def cache_umap_compilation() -> int:
    """Keep the machine code numba compiles for a UMAP fit on disk (numba's own cache, keyed by source
    file and signature and refreshed when the library changes; beside the library when its folder is
    writable, else numba's user cache or $NUMBA_CACHE_DIR), so only the first fit of an installation
    compiles (~12 s; every later process used to pay it again). Returns how many functions this call
    switched to caching (0 when already done in this process)."""
    import importlib

    from numba.core.caching import NullCache
    from numba.core.registry import CPUDispatcher

    switched = 0
    for name in _NUMBA_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:  # another version's layout: that module's functions just compile
            continue
        for obj in vars(module).values():
            if isinstance(obj, CPUDispatcher) and isinstance(obj._cache, NullCache):
                obj.enable_caching()
                switched += 1
    return switched


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

        from creative_dag.marts.cosine_matrix import UMAP_EXACT_BELOW, cosine_matrix

        cache_umap_compilation()
        exact = n < UMAP_EXACT_BELOW  # UMAP's own exact path, with its distances computed in compiled code
        # n_jobs=1: a seeded UMAP runs on one thread anyway (it warned when told otherwise)
        reducer = umap.UMAP(n_components=2, n_neighbors=min(p.n_neighbors, n - 1), min_dist=p.min_dist,
                            metric="precomputed" if exact else "cosine", random_state=p.seed, n_jobs=1,
                            init="spectral" if n > 30 else "random")
        with warnings.catch_warnings():  # the map is never inverted, so its missing inverse_transform is no news
            warnings.filterwarnings("ignore", message="using precomputed metric", category=UserWarning)
            coords, method = reducer.fit_transform(cosine_matrix(x) if exact else x), "umap"
    labels = cluster_vectors(x, p) if method == "umap" else _cluster_map(np.asarray(coords, dtype=np.float64), p)
    return pd.DataFrame({"creative_id": ids, "x": coords[:, 0].astype(float), "y": coords[:, 1].astype(float),
                         "cluster": labels.astype("int64"), "method": method})


def _cluster_map(coords: np.ndarray, p: LandscapeParams) -> np.ndarray:
    """A handful of creatives: k-means on the 2-D map."""
    n = len(coords)
    if n < 3:
        return np.zeros(n, dtype=int)
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=min(3, n), n_init=10, random_state=p.seed).fit_predict(coords)


def cluster_vectors(vectors: np.ndarray, p: LandscapeParams | None = None) -> np.ndarray:
    """Cluster labels of the (n, d) vectors (see module doc): -1 for creatives in no cluster of at least
    `min_cluster_size`, clusters numbered 0, 1, ... by size (ties: the cluster of the earliest row first)."""
    from scipy.cluster.hierarchy import fcluster, linkage
    from sklearn.metrics import silhouette_score

    p = p or LandscapeParams()
    x = np.asarray(vectors, dtype=np.float64)
    n = len(x)
    if n < 3:
        return np.zeros(n, dtype=int)
    centred = x - x.mean(axis=0)
    u, sv, _ = np.linalg.svd(centred, full_matrices=False)  # deterministic, unlike a randomised PCA
    dims = int(min(p.cluster_dims, np.sum(sv > sv[0] * 1e-6) if sv[0] > 0 else 1))
    z = u[:, :dims] * sv[:dims]
    tree = linkage(z, method="ward")
    size = p.min_cluster_size or max(5, n // 25)
    best: list[tuple[int, float, np.ndarray]] = []
    for k in range(2, min(p.max_clusters, n - 1) + 1):
        cut = fcluster(tree, t=k, criterion="maxclust")
        if len(np.unique(cut)) < 2:
            continue
        best.append((k, float(silhouette_score(z, cut)), cut))
    if not best:
        return np.zeros(n, dtype=int)
    lo, hi = p.readable_clusters
    readable = [b for b in best if lo <= b[0] <= hi]
    if readable and max(score for _, score, _ in best) < p.clear_structure:
        best = readable
    top = max(score for _, score, _ in best)
    _, _, cut = next(b for b in best if b[1] >= top - p.silhouette_tolerance)
    labels, counts = np.unique(cut, return_counts=True)
    first_row = {label: int(np.flatnonzero(cut == label)[0]) for label in labels}
    order = sorted(labels, key=lambda label: (-counts[labels == label][0], first_row[label]))
    kept = [label for label in order if counts[labels == label][0] >= size]
    number = {label: i for i, label in enumerate(kept)}
    return np.array([number.get(label, -1) for label in cut], dtype=int)


def cluster_summary(landscape: pd.DataFrame, ranking: pd.DataFrame | None = None,
                    fatigue: pd.DataFrame | None = None, attributes: pd.DataFrame | None = None,
                    top_attributes: int = 3, min_share: float = 0.5, min_lift: float = 0.2) -> pd.DataFrame:
    """One row per cluster: cluster, cluster_name, size, spend_share, mean_score, median_score,
    share_fatigued, dominant_attributes, example_ids, x, y.

    landscape: landscape_coordinates output (+ account_id, score, spend optional). ranking:
    creative_id, score (+ spend). fatigue: creative_id, status. attributes: plain attribute frame
    (creative_id + columns). cluster_name: the `top_attributes` indicator levels that distinguish the
    cluster from the REST of the map (held by >= min_share of the cluster and >= min_lift more often
    than outside it), in words ("warm dominant hue family, face, high brightness"); "unclustered" for
    creatives in no cluster (-1), "mixed (cluster k)" when nothing stands out; names are unique.
    spend_share: the cluster's share of the mapped creatives' spend (NaN without spend).
    """
    from creative_dag.marts.recommendations import attribute_indicators

    d = landscape.copy()
    for col in ("score", "spend"):
        if col not in d.columns and ranking is not None and col in ranking.columns:
            d = d.merge(ranking[["creative_id", col]].drop_duplicates("creative_id"), on="creative_id", how="left")
        if col not in d.columns:
            d[col] = np.nan
    if fatigue is not None and "status" in fatigue.columns:
        d = d.drop(columns=["status"], errors="ignore").merge(fatigue[["creative_id", "status"]], on="creative_id", how="left")
        d["fatigued"] = d["status"].isin(["fatiguing", "fatigued"]).astype(float).where(d["status"].notna())
    else:
        d["fatigued"] = np.nan
    ind = None
    if attributes is not None and len(attributes) and attributes.shape[1] > 1:
        ind = attribute_indicators(attributes, min_support=2).reindex(d["creative_id"])
        ind.index = d.index
    total_spend = float(d["spend"].sum()) if d["spend"].notna().any() else np.nan
    rows = []
    for label, g in d.groupby("cluster", sort=True):
        dominant, distinctive = "", []
        if ind is not None and ind.shape[1]:
            inside = ind.loc[g.index].mean()
            rest = ind.drop(index=g.index)
            outside = rest.mean() if len(rest) else ind.mean()
            # Lift against the rest of the map, not the whole: a big cluster would otherwise be
            # compared mostly with itself and read as "nothing special".
            lift = (inside - outside.reindex(inside.index).fillna(0.0)).where(inside >= min_share)
            ranked = lift.dropna().sort_values(ascending=False)
            top = ranked.head(top_attributes)
            # in words, as cluster_name: the report's "what stands out" column shows it as is
            dominant = ", ".join(f"{trait_name(k)} ({inside[k]:.0%})" for k in top.index if top[k] > 0)
            distinctive = distinct_traits(list(ranked.index[ranked >= min_lift]), top_attributes)
        scores = g["score"].dropna()
        rows.append({"cluster": int(label),
                     "cluster_name": "unclustered" if int(label) == -1 else (
                         ", ".join(trait_name(k) for k in distinctive) or f"mixed (cluster {int(label)})"),
                     "size": len(g),
                     "spend_share": float(g["spend"].sum() / total_spend) if total_spend and total_spend > 0 else np.nan,
                     "mean_score": float(scores.mean()) if len(scores) else np.nan,
                     "median_score": float(scores.median()) if len(scores) else np.nan,
                     "share_fatigued": float(g["fatigued"].mean()) if g["fatigued"].notna().any() else np.nan,
                     "dominant_attributes": dominant,
                     "example_ids": g.sort_values("score", ascending=False)["creative_id"].head(3).tolist(),
                     "x": float(g["x"].mean()), "y": float(g["y"].mean())})
    out = pd.DataFrame(rows, columns=["cluster", "cluster_name", "size", "spend_share", "mean_score", "median_score",
                                      "share_fatigued", "dominant_attributes", "example_ids", "x", "y"])
    dup = out["cluster_name"].duplicated(keep=False) & (out["cluster"] >= 0)
    out.loc[dup, "cluster_name"] = out.loc[dup].apply(lambda r: f"{r['cluster_name']} (cluster {r['cluster']})", axis=1)
    return out


def distinct_traits(indicators: list[str], limit: int) -> list[str]:
    """Up to `limit` of `indicators` (most distinctive first), one per thing measured: the indicators of
    one attribute family (warm dominant hue, warm background hue, a high warm share) are one trait,
    named by the family's headline column among them. Without this, a warm cluster was named
    "warm background hue family, high warm share, warm dominant hue family"."""
    groups: dict[str, list[str]] = {}
    for indicator in indicators:
        attribute = indicator.partition("=")[0]
        groups.setdefault(attribute_family(attribute) or attribute, []).append(indicator)
    chosen = list(groups.values())[:limit]
    return [min(members, key=lambda k: naming_priority(*k.partition("=")[::2])) for members in chosen]


_ABSENT = {"faces": "no faces", "text": "no text on the image", "cta": "no call-to-action button"}


def trait_name(indicator: str) -> str:
    """An indicator as a cluster label, in the words of marts.recommendations ("Colour temperature: warm",
    "Faces in the creative", an object tag's own name); the absent level of faces, text or a CTA reads
    "no faces" rather than "Face position: none"."""
    attribute, _, level = indicator.partition("=")
    if attribute.startswith(TAG_PREFIX) and level == "true":
        return attribute[len(TAG_PREFIX):].replace("_", " ")
    if attribute.endswith("top_tag"):
        return level.replace("_", " ")
    family = attribute_family(attribute)
    if family in _ABSENT and level.lower() in ("", "none", "no", "0"):
        return _ABSENT[family]
    return describe_indicator(attribute, level)


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


PLACED = "umap-placed"  # `method` of a creative placed among the fitted ones since the last UMAP fit


def keep_map(ids: list[str], vectors: np.ndarray, previous: pd.DataFrame | None,
             p: LandscapeParams | None = None) -> tuple[pd.DataFrame | None, str]:
    """(creative_id, x, y, cluster (-1: for keep_clusters), method) with the previous run's coordinates kept and
    new creatives placed among the fitted ones, or (None, why) when the map is to be fitted again: no previous
    UMAP map, or more than `recluster_share` of `ids` not in the last fit (see module doc)."""
    p = p or LandscapeParams()
    n = len(ids)
    if previous is None or not n or not {"creative_id", "x", "y", "method"} <= set(previous.columns):
        return None, "fitted (no previous map)"
    prev = previous.assign(creative_id=previous["creative_id"].astype(str)).drop_duplicates("creative_id")
    xy_prev = prev[["x", "y"]].apply(pd.to_numeric, errors="coerce")
    prev = prev[prev["method"].isin(["umap", PLACED]) & np.isfinite(xy_prev).all(axis=1)].set_index("creative_id")
    method = prev["method"].reindex(ids)
    fitted = (method == "umap").to_numpy()
    known = method.notna().to_numpy()
    outside = 1.0 - fitted.mean()
    if outside > p.recluster_share or fitted.sum() < p.min_umap:
        return None, (f"fitted again: {outside:.0%} of the creatives were not in the last fit "
                      f"(> {p.recluster_share:.0%})" if fitted.any() else "fitted (no previous UMAP map)")
    xy = np.full((n, 2), np.nan)
    xy[known] = prev.loc[[c for c, k in zip(ids, known) if k], ["x", "y"]].to_numpy(dtype=np.float64)
    new_rows = np.flatnonzero(~known)
    if len(new_rows):
        x = np.asarray(vectors, dtype=np.float64)
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        anchors = np.flatnonzero(fitted)
        k = min(p.place_neighbors, len(anchors))
        sims = x[new_rows] @ x[anchors].T
        top = np.argsort(-sims, axis=1, kind="stable")[:, :k]
        weight = np.clip(np.take_along_axis(sims, top, axis=1), 1e-6, None)
        xy[new_rows] = (weight[..., None] * xy[anchors][top]).sum(axis=1) / weight.sum(axis=1, keepdims=True)
    frame = pd.DataFrame({"creative_id": ids, "x": xy[:, 0], "y": xy[:, 1], "cluster": np.full(n, -1, dtype="int64"),
                          "method": np.where(known, method.fillna(PLACED).to_numpy(), PLACED)})
    return frame, (f"kept from the previous run; {len(new_rows)} new creative(s) placed among their nearest "
                   f"fitted ones ({outside:.0%} not in the last fit)")


def keep_clusters(ids: list[str], vectors: np.ndarray, fresh: np.ndarray | Callable[[], np.ndarray],
                  previous: pd.Series | None, p: LandscapeParams | None = None) -> tuple[np.ndarray, str]:
    """(labels, how): the previous run's clusters (creative_id -> cluster) carried over, or `fresh` labels
    (or what calling it gives: a kept map has no fresh clustering) when there is no previous run, it had
    fewer than 2 clusters, or more than `recluster_share` of the creatives are new (see module doc). `how`
    says which, for the asset's metadata."""
    p = p or LandscapeParams()
    n = len(ids)
    if callable(fresh):
        fresh_labels = fresh
    else:
        def fresh_labels() -> np.ndarray:
            return fresh
    if previous is None or not n:
        return fresh_labels(), "clustered (no previous run)"
    prev = pd.to_numeric(previous, errors="coerce").dropna().astype(int)
    prev = prev[~prev.index.duplicated()]
    known = np.array([c in prev.index for c in ids])
    new_share = 1.0 - known.mean()
    clusters = sorted(set(prev.reindex([c for c in ids if c in prev.index])) - {-1})
    if new_share > p.recluster_share or len(clusters) < 2:
        why = (f"{new_share:.0%} of the creatives are new (> {p.recluster_share:.0%})" if new_share > p.recluster_share
               else "the previous run had fewer than 2 clusters")
        return fresh_labels(), f"clustered again: {why}"
    x = np.asarray(vectors, dtype=np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    labels = np.array([int(prev[c]) if k else -1 for c, k in zip(ids, known)], dtype=int)
    centres, typical = [], []
    for c in clusters:
        members = x[labels == c]
        centre = members.mean(axis=0)
        centre /= max(np.linalg.norm(centre), 1e-12)
        centres.append(centre)
        typical.append(float(np.quantile(members @ centre, 0.1)))  # how close its members typically are
    centres = np.vstack(centres)
    new_rows = np.flatnonzero(~known)
    if len(new_rows):
        sims = x[new_rows] @ centres.T
        best = sims.argmax(axis=1)
        close = sims[np.arange(len(new_rows)), best] >= np.asarray(typical)[best]
        labels[new_rows] = np.where(close, np.asarray(clusters)[best], -1)
    return labels, f"kept from the previous run; {len(new_rows)} new creative(s) assigned to the nearest cluster"

"""Creative repetition: similarity density, creative families (near-duplicates), the "tired or repetitive" view.

- similarity_density: how many OTHER creatives of the same account, launched in the trailing
  `window_days` up to and including this creative's launch date, have fused similarity >= tau.
  High density = the account keeps launching the same idea.
- families: connected components (single linkage, union of pair edges) inside an account of
  the graph whose edges are variant pairs. A pair is a variant pair when
  (a) its fused similarity is >= dup_threshold (copies, re-encodes: every block agrees), or
  (b) with at least `min_evidence_blocks` blocks, the mean per-block evidence is >= min_evidence.
  Per-block evidence = -log10 of the share of UNRELATED pairs (creatives of different accounts,
  which cannot be variants of each other) that are at least as similar in that block, capped at
  `evidence_cap`. It puts every block (and encoder) on one scale without tuning per block, and a
  block that disagrees only adds zero: a variant changes one thing (headline, CTA label, colour,
  crop, aspect ratio), so the other blocks still carry the pair, where a fused cosine is dragged
  below any fixed threshold by the one block that changed.
  Shape matters to that null: with an `aspect_ratio` per creative, pairs of the same shape and
  pairs of different shapes (log ratio apart by > `shape_tolerance`) each get their own. Pooled,
  the many less-similar cross-shape pairs made same-shape look-alikes (two designs of one
  packshot) look rarer than they are, and a resize (whose CNN and layout views change with the
  canvas) look less related than it is.
  A family of 4+ members is then split by average linkage where its parts are, on average over
  their cross pairs, related by less than `split_below` evidence: single linkage alone chained two
  families through one look-alike pair.
  For a pair of different shapes, the blocks whose encoders see only the centre square of the canvas
  (`crop_blocks`: CNN and CLIP centre-crop) count with `cross_shape_weight` in that mean: a resize
  moves the headline or the CTA out of (or into) that square, so those blocks disagree on a resize
  about as often as they agree.
  Singletons get no family id.
- is_repetitive: in a family, or similarity_density >= density_threshold.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

from creative_dag.blocks import CLIP, CNN, DEFAULT_WEIGHTS
from creative_dag.marts.block_vectors import BlockVectors
from creative_dag.wording import count_of

REPETITION_COLUMNS = [
    "creative_id", "account_id", "launch_date", "similarity_density", "max_similarity", "most_similar_id",
    "family_id", "near_duplicate_cluster", "cluster_size", "closest_variant_id", "variant_evidence",
    "blocks_agree", "blocks_differ", "block_similarity", "is_repetitive", "vector_status",
]


@dataclass(frozen=True)
class RepetitionParams:
    """tau: similarity for density; dup_threshold: fused similarity that makes a pair variants on its
    own (stricter); window_days: trailing launch window for density; density_threshold: density that
    flags repetition on its own; weights: block weights of the fused similarity (None = defaults; a
    block with weight 0 gives no evidence either).
    min_evidence: mean per-block evidence (-log10 share of unrelated pairs as similar) of a variant
    pair, 2.0 = on average as similar as the top 1 % of unrelated pairs; evidence_cap: most evidence
    one block can give (so two blocks must agree); min_evidence_blocks: fewest blocks for the evidence
    rule (3: one may differ while the others still outvote it); agree_evidence: evidence at which a
    block is listed as agreeing; null_pairs: unrelated pairs sampled per block; seed: that sample;
    mutual_neighbours: evidence edges only between creatives within each other's top k (0 = off);
    shape_tolerance: |log aspect ratio| difference from which a pair counts as two shapes (needs an
    `aspect_ratio` column; 0 = one null for every pair); split_below: a family (4+ members) is split
    where its parts are, on average over all their cross pairs, less related than this evidence
    (average linkage inside the single-linkage family; 0 = off); cross_shape_weight: weight of each of
    `crop_blocks` in the mean evidence of a pair of different shapes (1 = as any block; they still
    count towards min_evidence_blocks)."""

    tau: float = 0.85
    dup_threshold: float = 0.92
    window_days: int = 28
    density_threshold: int = 3
    weights: Mapping[str, float] | None = None
    min_evidence: float = 2.0
    evidence_cap: float = 4.0
    min_evidence_blocks: int = 3
    agree_evidence: float = 2.0
    null_pairs: int = 200_000
    seed: int = 0
    mutual_neighbours: int = 3
    shape_tolerance: float = 0.1
    split_below: float = 1.75
    cross_shape_weight: float = 0.15
    crop_blocks: tuple[str, ...] = (CNN, CLIP)


class BlockEvidence:
    """Per-block null distributions (similarities of unrelated pairs) and the evidence they give.

    nulls: block -> sorted (m,) float64 similarities; cross_nulls: the same for pairs of different
    shapes (where there are enough). Built with `fit`; `evidence(block, s, cross)` maps similarities
    (any shape) to -log10 of the share of null pairs at least as similar, capped.
    """

    _MIN_NULL = 50  # fewer pairs than this cannot calibrate a block
    _GRAM_MAX = 4000  # up to this many creatives the null's similarities come from one Gram matrix (64 MB)

    def __init__(self, nulls: Mapping[str, np.ndarray], cap: float, source: Mapping[str, str],
                 cross_nulls: Mapping[str, np.ndarray] | None = None):
        self.nulls = dict(nulls)
        self.cap = cap
        self.source = dict(source)
        self.cross_nulls = dict(cross_nulls or {})

    @classmethod
    def fit(cls, vectors: BlockVectors, accounts: np.ndarray, blocks: list[str], p: RepetitionParams,
            shapes: np.ndarray | None = None) -> BlockEvidence:
        """accounts: (n,) account of each of vectors.ids; shapes: (n,) log aspect ratios or None.
        Unrelated pairs = different accounts; with a single account (no such pairs) the account's
        own pairs stand in, whose upper tail holds the families, which lowers the evidence (fewer
        families found, never more). A shape null needs _MIN_NULL pairs of each kind, else one null."""
        rng = np.random.default_rng(p.seed)
        nulls, cross_nulls, source = {}, {}, {}
        for block in blocks:
            idx = np.flatnonzero(vectors.present[block])
            m = len(idx)
            if m < 2:
                continue
            if m * (m - 1) // 2 <= p.null_pairs:
                i, j = np.triu_indices(m, 1)
            else:
                i, j = rng.integers(0, m, p.null_pairs), rng.integers(0, m, p.null_pairs)
                keep = i != j
                i, j = i[keep], j[keep]
            acc = accounts[idx]
            unrelated = acc[i] != acc[j]
            if unrelated.sum() >= cls._MIN_NULL:
                i, j, source[block] = i[unrelated], j[unrelated], "other accounts"
            else:
                source[block] = "same account"
            if len(i) < cls._MIN_NULL:
                continue
            mat = vectors.blocks[block][idx]
            if m <= cls._GRAM_MAX:  # one matrix product beats gathering two rows per pair (~10x at 300 x 1280)
                sims = (mat @ mat.T)[i, j].astype(np.float64)
            else:
                sims = np.concatenate([np.einsum("ij,ij->i", mat[i[k:k + 20_000]], mat[j[k:k + 20_000]])
                                       for k in range(0, len(i), 20_000)]).astype(np.float64)
            cross = _shapes_differ(shapes[idx][i], shapes[idx][j], p) if shapes is not None else None
            if cross is not None and cross.sum() >= cls._MIN_NULL and (~cross).sum() >= cls._MIN_NULL:
                nulls[block], cross_nulls[block] = np.sort(sims[~cross]), np.sort(sims[cross])
            else:
                nulls[block] = np.sort(sims)
        return cls(nulls, p.evidence_cap, source, cross_nulls)

    def evidence(self, block: str, sims: np.ndarray, cross: np.ndarray | None = None) -> np.ndarray:
        """cross: where True (same shape as sims), score against the cross-shape null if there is one."""
        out = self._against(self.nulls[block], sims)
        if cross is not None and block in self.cross_nulls:
            out = np.where(cross, self._against(self.cross_nulls[block], sims), out)
        return out

    def _against(self, null: np.ndarray, sims: np.ndarray) -> np.ndarray:
        at_least = len(null) - np.searchsorted(null, sims - 1e-9, side="left")
        return np.minimum(self.cap, -np.log10((at_least + 1.0) / (len(null) + 1.0)))


def _shapes_differ(a: np.ndarray, b: np.ndarray, p: RepetitionParams) -> np.ndarray | None:
    """Pairs whose log aspect ratios differ by more than the tolerance (NaN shapes: never)."""
    if p.shape_tolerance <= 0:
        return None
    with np.errstate(invalid="ignore"):
        return np.abs(a - b) > p.shape_tolerance


def creative_repetition(creatives: pd.DataFrame, vectors: BlockVectors,
                        params: RepetitionParams | None = None) -> pd.DataFrame:
    """One row per creative: similarity_density, max_similarity, most_similar_id, family_id (=
    near_duplicate_cluster, kept for existing readers), cluster_size, the evidence against its closest
    family member (closest_variant_id, variant_evidence, blocks_agree, blocks_differ (+ "aspect_ratio"
    when the two differ in shape), block_similarity as JSON {block: cosine}), is_repetitive,
    vector_status.

    creatives: creative_id, account_id, launch_date (+ aspect_ratio, width / height of the image,
    optional: pairs of different shapes are then scored against cross-shape pairs). vectors:
    per-block inputs for (a superset of) those creatives. Creatives without any vector get
    vector_status 'no vectors', density NA and no family (not silently counted as unique).
    """
    p = params or RepetitionParams()
    if p.dup_threshold < p.tau:
        raise ValueError(f"dup_threshold ({p.dup_threshold}) must be >= tau ({p.tau}): near-duplicates are the stricter test")
    info = creatives[["creative_id", "account_id", "launch_date"]].copy()
    info["creative_id"] = info["creative_id"].astype(str)
    info["launch_date"] = pd.to_datetime(info["launch_date"])
    ratio = pd.to_numeric(creatives["aspect_ratio"], errors="coerce") if "aspect_ratio" in creatives else np.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        info["log_aspect"] = np.log(pd.Series(ratio, index=info.index).where(lambda r: r > 0)).astype(np.float64)
    has_vec = dict(zip(vectors.ids, vectors.has_any()))
    # A numpy mask: an empty Python list would select no *columns* on an empty export.
    mask = np.array([has_vec.get(c, False) for c in info["creative_id"]], dtype=bool)
    info_vec = info.loc[mask].drop_duplicates("creative_id")
    weights = dict(DEFAULT_WEIGHTS if p.weights is None else p.weights)
    blocks = [b for b in vectors.blocks if weights.get(b, 0.0) > 0]
    evidence = None
    if len(info_vec):
        scope = vectors.subset(info_vec["creative_id"].tolist())
        # unknown shapes (no column, NaN) never differ: then one null serves every pair
        evidence = BlockEvidence.fit(scope, info_vec["account_id"].astype(str).to_numpy(), blocks, p,
                                     info_vec["log_aspect"].to_numpy(np.float64))
    rows = []
    for acc, g in info_vec.groupby("account_id", sort=True):
        g = g.reset_index(drop=True)
        rows.extend(_account_rows(acc, g, vectors.subset(g["creative_id"].tolist()), blocks, evidence, p))
    out = pd.DataFrame(rows, columns=[c for c in REPETITION_COLUMNS if c not in ("launch_date", "is_repetitive")])
    missing = info[~info["creative_id"].isin(out["creative_id"])]
    if len(missing):
        extra = pd.DataFrame({"creative_id": missing["creative_id"], "account_id": missing["account_id"],
                              "similarity_density": pd.NA, "max_similarity": np.nan, "most_similar_id": None,
                              "family_id": None, "near_duplicate_cluster": None, "cluster_size": 1,
                              "closest_variant_id": None, "variant_evidence": np.nan, "blocks_agree": None,
                              "blocks_differ": None, "block_similarity": None, "vector_status": "no vectors"})
        out = pd.concat([out, extra], ignore_index=True) if len(out) else extra
    out["similarity_density"] = out["similarity_density"].astype("Int64")
    out["cluster_size"] = out["cluster_size"].astype("int64")
    out["variant_evidence"] = out["variant_evidence"].astype("float64")
    out["max_similarity"] = out["max_similarity"].astype("float64")
    out["is_repetitive"] = out["family_id"].notna() | (
        out["similarity_density"].fillna(0).astype("int64") >= p.density_threshold)
    return out.merge(info[["creative_id", "launch_date"]].drop_duplicates("creative_id"), on="creative_id",
                     how="left").assign(launch_date=lambda f: f["launch_date"].dt.date)[REPETITION_COLUMNS].sort_values(
        ["account_id", "creative_id"]).reset_index(drop=True)


def _account_rows(acc: str, g: pd.DataFrame, sub: BlockVectors, blocks: list[str], evidence: BlockEvidence | None,
                  p: RepetitionParams) -> list[dict]:
    n = len(g)
    weights = dict(DEFAULT_WEIGHTS if p.weights is None else p.weights)
    # Per-block cosine for every pair (NaN where a creative lacks the block); the fused similarity
    # (docs/cbr.md, as BlockVectors.similarity_matrix) is their weighted mean over shared blocks.
    cos = {}
    num, den = np.zeros((n, n)), np.zeros((n, n))
    for b in blocks:
        present = sub.present[b]
        both = np.outer(present, present)
        mat = sub.blocks[b].astype(np.float64)
        cos[b] = np.where(both, mat @ mat.T, np.nan)
        num += weights[b] * np.nan_to_num(cos[b])
        den += weights[b] * both
    with np.errstate(invalid="ignore", divide="ignore"):
        sim = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    np.fill_diagonal(sim, np.nan)
    s = np.nan_to_num(sim, nan=-np.inf)
    launch = g["launch_date"].to_numpy("datetime64[D]")
    lag = (launch[:, None] - launch[None, :]).astype("int64")  # row launched lag days after column
    in_window = (lag >= 0) & (lag <= p.window_days)
    density = ((s >= p.tau) & in_window).sum(axis=1)
    best = np.argmax(s, axis=1) if n > 1 else np.zeros(n, dtype=int)
    max_sim = s[np.arange(n), best] if n > 1 else np.full(n, np.nan)

    shape = g["log_aspect"].to_numpy(np.float64)
    cross = _shapes_differ(shape[:, None], shape[None, :], p)
    ev = {b: np.where(np.isfinite(cos[b]), evidence.evidence(b, np.nan_to_num(cos[b]), cross), np.nan)
          for b in blocks if evidence is not None and b in evidence.nulls}
    if ev:
        stack = np.stack(list(ev.values()))
        n_blocks = np.isfinite(stack).sum(axis=0)
        mean_ev = _mean_evidence(stack, list(ev), cross, p)
    else:
        n_blocks, mean_ev = np.zeros((n, n), int), np.full((n, n), np.nan)
    strong = (n_blocks >= p.min_evidence_blocks) & (np.nan_to_num(mean_ev, nan=-1) >= p.min_evidence)
    if p.mutual_neighbours and n > p.mutual_neighbours:
        # Evidence edges only between mutual near neighbours (each among the other's top k by
        # evidence): a look-alike that scrapes past min_evidence with many creatives would otherwise
        # chain whole families together (single linkage).
        score = np.where(np.isfinite(mean_ev), mean_ev, -np.inf)
        np.fill_diagonal(score, -np.inf)
        kth = -np.sort(-score, axis=1)[:, p.mutual_neighbours - 1]
        near = score >= kth[:, None]
        strong &= near & near.T
    edges = (s >= p.dup_threshold) | strong
    np.fill_diagonal(edges, False)
    n_comp, labels = connected_components(csr_matrix(edges), directed=False)
    if p.split_below > 0 and ev:
        labels, n_comp = _split_weak_bridges(labels, n_comp, mean_ev, p)
    sizes = np.bincount(labels, minlength=n_comp)
    # Stable, readable family ids: numbered by each family's earliest member.
    order: dict[int, int] = {}
    for k in np.lexsort((np.arange(n), launch.astype("int64"))):
        lab = labels[k]
        if sizes[lab] > 1 and lab not in order:
            order[lab] = len(order) + 1
    # Each member's closest relative inside its family: most evidence, then fused similarity.
    rank = np.where(np.isfinite(mean_ev), mean_ev, -np.inf) * 1e3 + np.where(np.isfinite(sim), sim, -1.0)
    rows = []
    for k, rec in g.iterrows():
        lab = labels[k]
        family = f"{acc}-fam{order[lab]:03d}" if sizes[lab] > 1 else None
        row = {
            "creative_id": rec["creative_id"], "account_id": acc,
            "similarity_density": int(density[k]),
            "max_similarity": float(max_sim[k]) if np.isfinite(max_sim[k]) else np.nan,
            "most_similar_id": g["creative_id"].iloc[best[k]] if n > 1 and np.isfinite(max_sim[k]) else None,
            "family_id": family, "near_duplicate_cluster": family, "cluster_size": int(sizes[lab]),
            "closest_variant_id": None, "variant_evidence": np.nan, "blocks_agree": None, "blocks_differ": None,
            "block_similarity": None, "vector_status": "ok",
        }
        if family is not None:
            mates = np.flatnonzero((labels == lab) & (np.arange(n) != k))
            j = int(mates[np.argmax(rank[k, mates])])
            agree = [b for b in ev if np.isfinite(ev[b][k, j]) and ev[b][k, j] >= p.agree_evidence]
            differ = [b for b in ev if np.isfinite(ev[b][k, j]) and ev[b][k, j] < p.agree_evidence]
            if cross is not None and cross[k, j]:
                differ.append("aspect_ratio")  # a resize: its blocks are judged against cross-shape pairs
            row.update(closest_variant_id=g["creative_id"].iloc[j],
                       variant_evidence=float(mean_ev[k, j]) if np.isfinite(mean_ev[k, j]) else np.nan,
                       blocks_agree=", ".join(agree), blocks_differ=", ".join(differ),
                       block_similarity=json.dumps({b: round(float(cos[b][k, j]), 4) for b in blocks
                                                    if np.isfinite(cos[b][k, j])}))
        rows.append(row)
    return rows


def _mean_evidence(stack: np.ndarray, blocks: list[str], cross: np.ndarray | None,
                   p: RepetitionParams) -> np.ndarray:
    """(n, n) weighted mean over blocks of (blocks, n, n) evidence (NaN = block missing): weight 1, and
    `cross_shape_weight` for the centre-cropping blocks on pairs of different shapes."""
    present = np.isfinite(stack)
    weight = np.ones_like(stack)
    if cross is not None:
        for k, block in enumerate(blocks):
            if block in p.crop_blocks:
                weight[k] = np.where(cross, p.cross_shape_weight, 1.0)
    weight = np.where(present, weight, 0.0)
    total = weight.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (np.where(present, stack, 0.0) * weight).sum(axis=0) / total
    return np.where(total > 0, mean, np.nan)


def _split_weak_bridges(labels: np.ndarray, n_comp: int, mean_ev: np.ndarray,
                        p: RepetitionParams) -> tuple[np.ndarray, int]:
    """Split each family of 4+ members by average linkage on its pairs' evidence, cut at `split_below`.

    Single linkage joins two families through one pair that passes the evidence rule (two designs
    around one packshot, one of them resized): every other pair across them is weak. Average linkage
    keeps a family whose members are related on average (variants of one base differ from each other
    in different blocks, but each is close to the base) and separates such bridged ones."""
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    out = labels.copy()
    next_label = n_comp
    for lab in range(n_comp):
        members = np.flatnonzero(labels == lab)
        if len(members) < 4:
            continue
        related = np.minimum(np.nan_to_num(mean_ev[np.ix_(members, members)], nan=0.0), p.evidence_cap)
        distance = p.evidence_cap - (related + related.T) / 2
        np.fill_diagonal(distance, 0.0)
        parts = fcluster(linkage(squareform(distance, checks=False), method="average"),
                         t=p.evidence_cap - p.split_below, criterion="distance")
        for part in np.unique(parts)[1:]:
            out[members[parts == part]] = next_label
            next_label += 1
    return out, next_label


def tired_or_repetitive(repetition: pd.DataFrame, fatigue: pd.DataFrame | None) -> pd.DataFrame:
    """The combined view: one row per creative with fatigue status, repetition and a reason.

    repetition: creative_repetition output; fatigue: marts.creative_fatigue (creative_id, status,
    fatigue_onset_date) or None when unavailable. is_tired = status in (fatiguing, fatigued).
    """
    out = repetition[["creative_id", "account_id", "similarity_density", "near_duplicate_cluster",
                      "cluster_size", "is_repetitive"]].copy()
    rule = ["cpa_rule_triggered", "cpa_multiple"]
    if fatigue is not None and len(fatigue):
        have = [c for c in rule if c in fatigue.columns]
        out = out.merge(fatigue[["creative_id", "status", "fatigue_onset_date", "current_vs_peak", *have]].rename(
            columns={"status": "fatigue_status"}), on="creative_id", how="left")
        # read back from DuckDB a DATE is a Timestamp (NaT when NULL): keep it a date, as in creative_fatigue
        onset = pd.to_datetime(out["fatigue_onset_date"], errors="coerce")
        out["fatigue_onset_date"] = [d.date() if pd.notna(d) else None for d in onset]
    else:
        out["fatigue_status"] = None
        out["fatigue_onset_date"] = None
        out["current_vs_peak"] = np.nan
    for c in rule:
        if c not in out.columns:
            out[c] = np.nan
    out["is_tired"] = out["fatigue_status"].isin(["fatiguing", "fatigued"])
    out["tired_or_repetitive"] = out["is_tired"] | out["is_repetitive"].astype(bool)

    def reason(r: pd.Series) -> str:
        parts = []
        if r["is_tired"] and r["fatigue_onset_date"] is not None:
            parts.append(f"{r['fatigue_status']} since {r['fatigue_onset_date']:%Y-%m-%d}")
        elif r["is_tired"] and pd.notna(r["cpa_rule_triggered"]) and bool(r["cpa_rule_triggered"]) \
                and pd.notna(r["cpa_multiple"]):
            parts.append(f"{r['fatigue_status']} by the CPA rule (recent CPA {r['cpa_multiple']:.1f}x its first 7 days')")
        elif r["is_tired"]:
            parts.append(str(r["fatigue_status"]))
        if isinstance(r["near_duplicate_cluster"], str):
            parts.append(f"near-duplicate of {count_of(int(r['cluster_size']) - 1, 'other creative')} "
                         f"({r['near_duplicate_cluster']})")
        elif r["is_repetitive"]:
            parts.append(f"{count_of(r['similarity_density'], 'similar creative')} launched recently")
        return "; ".join(parts)

    out["reason"] = out.apply(reason, axis=1) if len(out) else pd.Series(dtype="object")
    return out.drop(columns=rule)

"""DO / DON'T / TEST findings over interpretable creative attributes: a short list, each cause once.

Input is a plain attribute frame (creative_id + one column per attribute: categorical,
boolean or numeric), so the same code runs on ground-truth attributes in tests and on
detected attributes (embeddings.visual / layout / cnn tags / context) in the pipeline.

Method, per scope (each account, and `ALL` accounts together):

1. Indicators: a boolean column -> `attr=true`; a categorical column -> one indicator per level
   (level vs every other level); a numeric column -> `attr=high` (above its median). Levels with
   fewer than `min_support` creatives on either side are not tested.
2. Screening (`attribute_effects`): per metric (composite `score`; `ctr`, `cvr`, `roas` as log raw
   rates weighted by inverse variance, see `_response`), WLS of the creative's log metric on one
   indicator plus fixed effects for the strata (account, platform|placement, audience, objective),
   so a placement mix cannot pose as a creative effect; standard errors clustered by near-duplicate
   cluster. Benjamini-Hochberg over the screening tests of each scope (one family per scope).
3. Causes (`indicator_clusters`): indicators that measure the same thing are one cause: average-
   linkage clustering on |correlation| >= `cluster_correlation`, or >= `family_correlation` within a
   declared family (`attributes.ATTRIBUTE_FAMILIES`: face_present / face_count / face_area_ratio).
   Two levels of one attribute are never merged (they are different contrasts). In each scope a
   cause is estimated through its representative: the member with the strongest screening signal.
4. Joint model, per scope and metric: the representatives of screened causes (some member with
   q <= `fdr` and |lift| >= `min_lift`) enter one multivariable WLS with the strata fixed effects;
   forward selection keeps those the others do not explain (p <= `keep_p`), and the union over
   metrics is held equal in every metric's model. Every cause's
   effect is then its coefficient in that model (added to it when not selected): a proxy of
   another cause (a tag that co-occurs with faces) is adjusted away. BH over all these
   conditional tests of the run gives `q_value`.
5. Finding = a screened cause with conditional q <= `fdr` and |lift| >= `min_lift` in some metric,
   a prevalence of at least `min_prevalence` (object tags: `min_tag_prevalence`), and stable: in
   `n_resamples` cluster-bootstrap resamples of its primary-metric model it stays significant with
   the same sign in at least `min_stability` of them (object tags: `min_tag_stability`). One row
   per finding with its effect on every metric (`lift_score`, `lift_ctr`, ...); the primary
   metric (smallest q) gives `lift`, CI, p, q.
6. Pairs: the interaction of two causes' representatives in the scope's joint model (so a pair
   that restates a single effect adds nothing); kept when significant (its own BH family), large
   and stable, like singles.
7. TEST: a cause that is not a finding, with a positive conditional score effect (p <
   `test_max_p`), rare among recent launches (share <= `rare_share` over the last `recent_days`)
   and >= `near_winner_ratio` x over-represented near winners (cbr.neighbors, or the winners).
8. Ranking per scope: expected_impact = |lift| x spend of the creatives that could change (those
   without it for DO/TEST, with it for DON'T); findings first, then TEST rows. The top `top_n`
   per scope are `shown` (the default view); the rest stay in the table with their `rank`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform

from creative_dag.marts.attributes import (
    TAG_PREFIX,
    attribute_family,
    describe_indicator,
    naming_priority,
)

ALL_SCOPE = "ALL"
METRIC_NAMES = {"score": "composite score", "ctr": "CTR", "cvr": "CVR", "roas": "ROAS"}


@dataclass(frozen=True)
class RecommendationParams:
    """metrics: responses tested; strata: context columns absorbed as fixed effects;
    min_support: creatives needed on each side of an indicator (min_combination_support for a
    pair, whose interaction needs more data); min_effective_support: creatives an estimate must
    effectively rest on once the strata (and the other causes) are held equal, see
    `effective_support`; fdr: Benjamini-Hochberg level;
    min_lift: smallest |relative lift| reported as DO/DON'T; combinations: test pairs;
    max_levels: at most this many most-frequent levels per categorical attribute;
    cluster_correlation / family_correlation: |r| at which indicators are one cause (any / same
    declared family); keep_p: forward-selection level of the joint model;
    min_prevalence / min_tag_prevalence: smallest share of the scope's creatives with a finding;
    n_resamples: cluster-bootstrap resamples of a finding's model; min_stability / min_tag_stability: share
    of them in which it must stay significant with the same sign (object tags: the stricter);
    top_n: rows per scope in the default view (`shown`);
    rare_share / recent_days: "rare in recent launches" for TEST rows; n_evidence: example ids."""

    metrics: tuple[str, ...] = ("score", "ctr", "cvr", "roas")
    strata: tuple[str, ...] = ("platform_placement", "audience", "objective")
    min_support: int = 8
    min_combination_support: int = 20
    min_effective_support: float = 4.0
    fdr: float = 0.05
    min_lift: float = 0.03
    combinations: bool = True
    max_levels: int = 12
    cluster_correlation: float = 0.7
    family_correlation: float = 0.5
    keep_p: float = 0.01
    min_prevalence: float = 0.05
    min_tag_prevalence: float = 0.10
    n_resamples: int = 50
    min_stability: float = 0.6
    min_tag_stability: float = 0.8
    top_n: int = 10
    rare_share: float = 0.15
    test_max_p: float = 0.2
    near_winner_ratio: float = 1.5
    max_tests_per_scope: int = 3
    recent_days: int = 28
    n_evidence: int = 3
    seed: int = 0
    scopes: tuple[str, ...] = field(default_factory=tuple)  # empty = every account + ALL


RECOMMENDATION_COLUMNS: dict[str, str] = {
    "scope": "object", "rank": "int64", "shown": "bool", "recommendation": "object", "finding_id": "object",
    "finding": "object", "kind": "object", "members": "object", "attribute": "object", "value": "object",
    "attribute_b": "object", "value_b": "object", "metric": "object", "lift": "float64", "ci_low": "float64",
    "ci_high": "float64", "p_value": "float64", "q_value": "float64", "lift_score": "float64",
    "lift_ctr": "float64", "lift_cvr": "float64", "lift_roas": "float64", "significant_metrics": "object",
    "n_with": "int64", "n_without": "int64", "prevalence": "float64", "spend": "float64",
    "spend_share": "float64", "stability": "float64", "expected_impact": "float64", "recent_share": "float64",
    "evidence_creatives": "object", "sentence": "object",
}


def attribute_indicators(attributes: pd.DataFrame, min_support: int = 8, max_levels: int = 12) -> pd.DataFrame:
    """creative_id-indexed 0/1 frame, one column per tested indicator named `attr=value`.

    attributes: creative_id + attribute columns. Booleans -> `attr=true`; numerics with more
    than two distinct values -> `attr=high` (above the median); other columns -> one column
    per level (two-level columns: only the rarer level, the other is its mirror image).
    """
    if "creative_id" not in attributes.columns:
        raise ValueError("attribute frame needs a creative_id column (creative_id + one column per attribute)")
    if attributes["creative_id"].duplicated().any():
        dup = attributes.loc[attributes["creative_id"].duplicated(), "creative_id"].iloc[0]
        raise ValueError(f"attribute frame has creative {dup} more than once; pass one row per creative")
    frame = attributes.set_index("creative_id")
    frame.attrs = {}  # pandas deep-copies a frame's attrs (the attribute sources) into every result derived from it
    cols: dict[str, pd.Series] = {}
    n = len(frame)
    for name in frame.columns:
        s = frame[name]
        if s.isna().all():
            continue
        values = s.dropna()
        if s.dtype == bool or (len(values) and set(values.unique()) <= {True, False}):
            # Booleans (and 0/1 flags): one indicator, the False side is its mirror image.
            ind = values.astype(bool).astype(float).reindex(s.index)
            cols[f"{name}=true"] = ind
            continue
        if pd.api.types.is_numeric_dtype(s) and s.nunique() > 2:
            med = s.median()
            ind = (s > med).astype(float)
            ind[s.isna()] = np.nan
            cols[f"{name}=high"] = ind
            continue
        levels = s.dropna().astype(str).value_counts()
        levels = levels[(levels >= min_support) & (levels <= n - min_support)].head(max_levels)
        if s.dropna().nunique() == 2 and len(levels) == 2:
            levels = levels.iloc[[-1]]
        for level in levels.index:
            ind = (s.astype(str) == level).astype(float)
            ind[s.isna()] = np.nan
            cols[f"{name}={level}"] = ind
    out = pd.DataFrame(cols, index=frame.index)
    support = out.sum()
    keep = (support >= min_support) & ((out.notna().sum() - support) >= min_support)
    return out.loc[:, keep[keep].index]


def attribute_effects(attributes: pd.DataFrame, performance: pd.DataFrame,
                      params: RecommendationParams | None = None) -> pd.DataFrame:
    """Screening: every (scope, indicator, metric) tested on its own (strata-adjusted), with lift,
    CI, p, BH q over the scope's tests and support. See module docstring, step 2.

    performance: one row per creative: creative_id, account_id, spend, and the response
        columns: score, raw counts (impressions, clicks, conversions, revenue) or ctr_shrunk,
        cvr_shrunk, roas_shrunk (marts.creative_ranking), plus the strata columns (platform,
        placement, audience, objective) when available.
    Returns columns: scope, rule, attribute, value, attribute_b, value_b, kind (single), metric,
    lift, ci_low, ci_high, beta, se, p_value, q_value, n_creatives, n_without, spend, spend_share.
    """
    p = params or RecommendationParams()
    perf = _prepare_performance(performance, p)
    ind = attribute_indicators(attributes, p.min_support, p.max_levels)
    data = perf.join(ind, on="creative_id", how="inner")
    if data.empty or ind.shape[1] == 0:
        return _empty_effects()
    rows: list[dict] = []
    for scope, d in _scopes(data, p):
        for metric in p.metrics:
            inputs = _weighted_inputs(d, metric, _strata(scope, p), 2 * p.min_support)
            if inputs is None:
                continue
            dm, y, sw, q, groups = inputs
            rows += _single_tests(dm, y, q, groups, list(ind.columns), scope, metric, p, sw)
    if not rows:
        return _empty_effects()
    out = pd.DataFrame(rows)
    # One BH family per scope: each scope's list is read on its own (an account's strategist does
    # not pay for the number of other accounts).
    out["q_value"] = out.groupby("scope")["p_value"].transform(lambda s: benjamini_hochberg(s.to_numpy()))
    return out


def indicator_clusters(indicators: pd.DataFrame, cluster_correlation: float = 0.7,
                       family_correlation: float = 0.5) -> pd.Series:
    """indicator name -> cause id: indicators that measure the same thing share a cause.

    indicators: (n_creatives, k) 0/1 frame (NaN = not measured), columns `attr=value`.
    Complete-linkage clustering on 1 - |r| (pairwise-complete Pearson r), cut so that every pair
    in a cause has |r| >= cluster_correlation, or >= family_correlation when both attributes are in
    one declared family (`attributes.ATTRIBUTE_FAMILIES`). Two levels of one attribute are never
    one cause. The cause id is its member named first (`attributes.naming_priority`).
    """
    cols = list(indicators.columns)
    if len(cols) <= 1:
        return pd.Series({c: c for c in cols}, dtype="object")
    r = np.nan_to_num(indicators.astype(float).corr().abs().to_numpy(), nan=0.0)
    attrs = np.array([c.partition("=")[0] for c in cols], dtype=object)
    family = np.array([attribute_family(a) or f"__{a}" for a in attrs], dtype=object)
    dist = 1.0 - r
    # Rescale within a family so that |r| = family_correlation sits exactly at the cut.
    dist = np.where(np.equal.outer(family, family), dist * (1 - cluster_correlation) / (1 - family_correlation), dist)
    dist = np.where(np.equal.outer(attrs, attrs), 1.0, dist)
    dist = np.clip((dist + dist.T) / 2, 0.0, None)
    np.fill_diagonal(dist, 0.0)
    labels = fcluster(linkage(squareform(dist, checks=False), method="complete"), t=1 - cluster_correlation,
                      criterion="distance")
    out = pd.Series(labels, index=cols)
    anchor = {lab: min(group.index, key=_priority) for lab, group in out.groupby(out)}
    return out.map(anchor).astype("object")


def recommend(attributes: pd.DataFrame, performance: pd.DataFrame, params: RecommendationParams | None = None,
              neighbors: pd.DataFrame | None = None, effects: pd.DataFrame | None = None) -> pd.DataFrame:
    """The `marts.recommendations` table: one row per finding and scope (columns
    `RECOMMENDATION_COLUMNS`, docs/marts.md), ranked by expected impact, top `top_n` `shown`.

    attributes, performance: as in `attribute_effects` (performance may also carry is_winner,
    launch_date for TEST rows). neighbors: optional cbr.neighbors (creative_id + neighbour id).
    effects: precomputed `attribute_effects` output (recomputed when None). The returned frame's
    `.attrs["n_tests"]` counts the screening, joint-model and pair tests behind it.
    """
    p = params or RecommendationParams()
    perf = _prepare_performance(performance, p)
    ind = attribute_indicators(attributes, p.min_support, p.max_levels)
    data = perf.join(ind, on="creative_id", how="inner")
    if data.empty or ind.shape[1] == 0:
        return _empty_recommendations()
    screen = attribute_effects(attributes, performance, p) if effects is None else effects
    if "kind" in screen.columns:
        screen = screen[screen["kind"] == "single"]
    if screen.empty:
        return _empty_recommendations()
    causes = indicator_clusters(data[ind.columns], p.cluster_correlation, p.family_correlation)
    tests: list[dict] = []
    models: dict[tuple[str, str], _JointModel] = {}
    reps_by_scope: dict[str, dict[str, str]] = {}
    screened_by_scope: dict[str, set[str]] = {}
    scope_data = dict(_scopes(data, p))
    for scope, d in scope_data.items():
        s = screen[screen["scope"] == scope]
        if s.empty:
            continue
        reps, screened = _representatives(s, causes, p)
        reps_by_scope[scope], screened_by_scope[scope] = reps, screened
        scope_models = {}
        for metric in p.metrics:
            model = _JointModel.build(d, metric, _strata(scope, p), list(reps.values()), p)
            if model is None:
                continue
            strength = s[s["metric"] == metric].assign(z=lambda f: (f["beta"] / f["se"]).abs()).set_index("rule")["z"]
            # Object tags are demoted: they are tested given the interpretable causes but never adjust
            # one away (a tag that co-occurs with faces would otherwise split the faces effect).
            candidates = sorted((reps[c] for c in screened if not _is_tag_cause(c, causes)),
                                key=lambda r: -float(strength.get(r, 0.0)))
            scope_models[metric] = (model, model.select(candidates, p.keep_p))
        # One set of adjusters for every metric: a cause kept for CTR is held equal in the ROAS
        # model too, or its CTR effect would resurface there through a correlated attribute.
        union = list(dict.fromkeys(r for _, kept in scope_models.values() for r in kept))
        for metric, (model, _) in scope_models.items():
            model.hold(union)
            models[(scope, metric)] = model
            for cause, rep in reps.items():
                est = model.conditional(rep, p.min_effective_support)
                if est is not None:
                    tests.append({"scope": scope, "kind": "single", "metric": metric, "cause": cause, "rule": rep,
                                  "cause_b": None, "rule_b": None, "beta": est[0], "se": est[1], "df": est[2]})
            if p.combinations:
                tests += model.pair_tests(scope, metric, reps, p)
    n_screen = len(screen)
    if not tests:
        return _empty_recommendations(n_screen)
    tests = _cause_level_q(pd.DataFrame(tests), p)
    rng = np.random.default_rng(p.seed)
    rows = _finding_rows(tests, scope_data, models, screened_by_scope, causes, p, rng)
    found = {(r["scope"], r["finding_id"]) for r in rows}
    rows += _test_rows(tests, scope_data, found, causes, p, neighbors)
    if not rows:
        return _empty_recommendations(n_screen + len(tests))
    out = pd.DataFrame(rows)
    out["evidence_creatives"] = [_evidence(scope_data[r.scope], r, p.n_evidence) for r in out.itertuples(index=False)]
    out = _rank(out, p.top_n)
    out["sentence"] = [_sentence(r) for r in out.itertuples(index=False)]
    out = out.assign(_s=out["scope"].eq(ALL_SCOPE)).sort_values(["_s", "scope", "rank"]).drop(columns="_s")
    out = out.reindex(columns=list(RECOMMENDATION_COLUMNS)).reset_index(drop=True)
    out = out.astype({c: t for c, t in RECOMMENDATION_COLUMNS.items() if t != "object"})
    out.attrs["n_tests"] = n_screen + len(tests)
    return out


def benjamini_hochberg(p_values: np.ndarray) -> np.ndarray:
    """BH adjusted p-values (q-values) of a 1-D array; NaN stays NaN."""
    p = np.asarray(p_values, dtype="float64")
    q = np.full_like(p, np.nan)
    ok = np.isfinite(p)
    m = int(ok.sum())
    if m == 0:
        return q
    pv = p[ok]
    order = np.argsort(pv)
    ranked = pv[order] * m / np.arange(1, m + 1)
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    adj = np.empty(m)
    adj[order] = np.minimum(ranked, 1.0)
    q[ok] = adj
    return q


# -- the joint model -------------------------------------------------------------------------------
class _JointModel:
    """One scope x metric: WLS of the log response on cause representatives + strata fixed effects.

    Every column is residualised on the strata once (Frisch-Waugh-Lovell), so a fit on any subset
    of representatives is a small (k, k) solve. Missing indicator values are imputed with the
    scope mean (they then carry no contrast). Standard errors are cluster-robust (CR1) over
    near-duplicate clusters.
    """

    def __init__(self, x_raw: np.ndarray, names: list[str], y: np.ndarray, sw: np.ndarray, q: np.ndarray,
                 groups: np.ndarray):
        self.names = names
        self.index = {c: i for i, c in enumerate(names)}
        self.x_raw, self.sw, self.q, self.groups = x_raw, sw, q, groups
        self.xr = _residualise(q, x_raw * sw[:, None])
        self.yr = _residualise(q, y)
        self.n_groups = int(groups.max()) + 1 if len(groups) else 0
        self.leverage = (q * q).sum(axis=1)
        self.cluster_sums = _cluster_matrix(groups, self.n_groups)  # @ (n, k): per-cluster sums (np.add.at: 10x slower)
        self.selected: list[str] = []

    @classmethod
    def build(cls, d: pd.DataFrame, metric: str, strata: list[str], reps: list[str],
              p: RecommendationParams) -> _JointModel | None:
        inputs = _weighted_inputs(d, metric, strata, 2 * p.min_support)
        if inputs is None or not reps:
            return None
        dm, y, sw, q, groups = inputs
        raw = dm[reps].to_numpy(float)
        means = np.nan_to_num(np.nanmean(np.where(np.isfinite(raw), raw, np.nan), axis=0)) if len(raw) else 0.0
        raw = np.where(np.isfinite(raw), raw, means)
        xs = raw * sw[:, None]
        xr = _residualise(q, xs)
        # A representative (nearly) collinear with the strata has no within-stratum contrast.
        keep = (xr * xr).sum(axis=0) >= 0.05 * xs.var(axis=0) * len(xs)
        keep &= xs.var(axis=0) > 0
        if not keep.any():
            return None
        return cls(raw[:, keep], [r for r, k in zip(reps, keep) if k], y, sw, q, groups)

    def design(self, names: list[str], extra: np.ndarray | None = None) -> np.ndarray:
        x = self.xr[:, [self.index[c] for c in names]]
        return np.column_stack([x, extra]) if extra is not None else x

    def fit(self, names: list[str], extra: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray] | None:
        """Coefficients and CR1 standard errors of `names` (+ an extra residualised column)."""
        x = self.design(names, extra)
        if x.shape[1] == 0:
            return None
        a = x.T @ x
        if not np.all(np.isfinite(a)) or np.linalg.cond(a) > 1e10:
            return None
        a_inv = np.linalg.inv(a)
        beta = a_inv @ (x.T @ self.yr)
        scores = self._group_sums(x * self._inflated(self.yr - x @ beta, x, a_inv)[:, None])
        v = self._correction() * a_inv @ (scores.T @ scores) @ a_inv
        return beta, np.sqrt(np.clip(np.diag(v), 0.0, None))

    def select(self, candidates: list[str], keep_p: float) -> list[str]:
        """Forward selection among the screened representatives: repeatedly add the one with the
        smallest p given those already in, while p <= keep_p. Forward, not backward: a parent level
        (hue family cool) enters before its parts (blue, teal, ...), which then add nothing; started
        from all of them, backward elimination would drop the parent and keep the parts. A candidate
        the model already measures (VIF > 10) cannot enter."""
        kept: list[str] = []
        remaining = [c for c in dict.fromkeys(candidates) if c in self.index]
        while remaining:
            best, best_p = None, keep_p
            for c in remaining:
                if self._already_measured(kept, c):
                    continue
                est = self.fit([*kept, c])
                if est is None or est[1][-1] <= 0:
                    continue
                pv = float(2 * stats.t.sf(abs(est[0][-1] / est[1][-1]), self.df(len(kept) + 1)))
                if pv <= best_p:
                    best, best_p = c, pv
            if best is None:
                break
            kept.append(best)
            remaining.remove(best)
        self.selected = kept
        return kept

    def hold(self, names: list[str]) -> list[str]:
        """Fix the adjuster set (skipping any the others already measure, VIF > 10)."""
        kept: list[str] = []
        for c in names:
            if c in self.index and not self._already_measured(kept, c):
                kept.append(c)
        self.selected = kept
        return kept

    def _already_measured(self, kept: list[str], name: str) -> bool:
        """True when the columns in `kept` explain > 90 % of `name`'s variation (VIF > 10)."""
        if not kept:
            return False
        x = self.xr[:, self.index[name]]
        k = self.design(kept)
        resid = x - k @ np.linalg.lstsq(k, x, rcond=None)[0]
        return bool(resid @ resid < 0.1 * (x @ x))

    def conditional(self, name: str, min_effective_support: float = 0.0) -> tuple[float, float, float] | None:
        """(beta, se, df) of `name` in the selected model (added to it when not selected); None when
        its contrast given the others rests on fewer than `min_effective_support` creatives."""
        if name not in self.index:
            return None
        names = self.selected if name in self.selected else [*self.selected, name]
        est = self.fit(names)
        if est is None:
            return None
        i = names.index(name)
        others = self.design([c for c in names if c != name])
        contrast = self.xr[:, self.index[name]]
        if others.shape[1]:
            contrast = contrast - others @ np.linalg.lstsq(others, contrast, rcond=None)[0]
        if effective_support(contrast) < min_effective_support:
            return None
        return float(est[0][i]), float(est[1][i]), self.df(len(names))

    def interaction(self, a: str, b: str) -> np.ndarray:
        """The product of two representatives, weighted and residualised on the strata."""
        return _residualise(self.q, self.x_raw[:, self.index[a]] * self.x_raw[:, self.index[b]] * self.sw)

    def pair_tests(self, scope: str, metric: str, reps: dict[str, str], p: RecommendationParams) -> list[dict]:
        """Interaction of every two representatives of different attributes, beyond the selected
        model and both main effects (FWL: residualise on the selected columns once).

        All pairs of a chunk at once, as (n, pairs) arrays: a Python loop of small solves per pair was
        half the recommendations' time on a 2,000-creative account (24,000 pairs over its scopes)."""
        names = [(c, r) for c, r in reps.items() if r in self.index]
        sel = self.design(self.selected) if self.selected else np.zeros((len(self.yr), 0))
        basis = np.linalg.qr(sel)[0] if sel.shape[1] else sel
        base_leverage = self.leverage + (basis * basis).sum(axis=1)
        y_m = self.yr - basis @ (basis.T @ self.yr)
        x_m = self.xr - basis @ (basis.T @ self.xr)
        has = np.where(self.x_raw >= 0.5, 1.0, 0.0)
        counts = has.T @ has
        n = len(self.yr)
        min_both = max(p.min_support, p.min_combination_support)
        pairs = []
        for (ca, ra), (cb, rb) in itertools.combinations(names, 2):
            i, j = self.index[ra], self.index[rb]
            if ra.partition("=")[0] == rb.partition("=")[0] or counts[i, j] < min_both or n - counts[i, j] < min_both:
                continue
            if min(counts[i, i] - counts[i, j], counts[j, j] - counts[i, j],
                   n - counts[i, i] - counts[j, j] + counts[i, j]) < p.min_support:
                continue
            pairs.append((ca, ra, cb, rb))
        g = int(np.count_nonzero(np.bincount(self.groups)))  # clusters present
        df = self.df(len(self.selected) + 3)
        rows = []
        for start in range(0, len(pairs), _PAIR_CHUNK):
            chunk = pairs[start:start + _PAIR_CHUNK]
            i = np.array([self.index[ra] for _, ra, _, _ in chunk])
            j = np.array([self.index[rb] for _, _, _, rb in chunk])
            # a selected representative is already in the basis: its main-effect slot stays empty
            use_i = np.array([ra not in self.selected for _, ra, _, _ in chunk])
            use_j = np.array([rb not in self.selected for _, _, _, rb in chunk])
            z_raw = self.x_raw[:, i] * self.x_raw[:, j] * self.sw[:, None]
            z_raw_var = z_raw.var(axis=0) * n
            z = _residualise(self.q, z_raw)
            z = z - basis @ (basis.T @ z)
            xi, xj = x_m[:, i] * use_i, x_m[:, j] * use_j
            inv, ok = _main_effects_inverse((xi * xi).sum(axis=0), (xj * xj).sum(axis=0), (xi * xj).sum(axis=0),
                                            use_i, use_j)
            coef_z = _times(inv, (xi * z).sum(axis=0), (xj * z).sum(axis=0))
            coef_y = _times(inv, xi.T @ y_m, xj.T @ y_m)
            z = z - xi * coef_z[0] - xj * coef_z[1]
            y_r = y_m[:, None] - xi * coef_y[0] - xj * coef_y[1]
            sxx = (z * z).sum(axis=0)
            ok &= sxx >= 0.05 * z_raw_var
            ok &= effective_support(z) >= p.min_effective_support
            lev = base_leverage[:, None] + inv[0] * xi * xi + 2.0 * inv[1] * xi * xj + inv[2] * xj * xj
            with np.errstate(divide="ignore", invalid="ignore"):
                beta = (z * y_r).sum(axis=0) / sxx
                e = (y_r - beta * z) / (1.0 - np.clip(lev + z * z / sxx, 0.0, 0.95))
            scores = self.cluster_sums @ (z * e)
            se = np.sqrt(g / max(g - 1, 1) * (scores * scores).sum(axis=0)) / sxx
            for k in np.flatnonzero(ok):
                ca, ra, cb, rb = chunk[k]
                rows.append({"scope": scope, "kind": "combination", "metric": metric, "cause": ca, "rule": ra,
                             "cause_b": cb, "rule_b": rb, "beta": float(beta[k]), "se": float(se[k]), "df": df})
        return rows

    def stability(self, names: list[str], target: int, sign: float, n_resamples: int, rng: np.random.Generator,
                  extra: np.ndarray | None = None) -> float:
        """Share of cluster-bootstrap resamples (near-duplicate clusters drawn with replacement) in
        which coefficient `target` stays significant at 5 % with the same sign. The strata
        adjustment is held at its full-sample value (it is not what is being resampled)."""
        x = self.design(names, extra)
        g = self.n_groups
        critical = float(stats.t.ppf(0.975, self.df(x.shape[1])))
        hits = 0
        for _ in range(n_resamples):
            draws = np.bincount(rng.integers(0, g, g), minlength=g).astype(float)
            w = draws[self.groups]
            xw = x * w[:, None]
            a = x.T @ xw
            if np.linalg.cond(a) > 1e10:
                continue  # the resample lost the contrast: no evidence either way
            a_inv = np.linalg.inv(a)
            beta = a_inv @ (xw.T @ self.yr)
            scores = self._group_sums(x * self._inflated(self.yr - x @ beta, x, a_inv, w)[:, None])
            var = (a_inv @ ((scores.T * draws) @ scores) @ a_inv)[target, target] * self._correction()
            if var > 0 and sign * beta[target] / np.sqrt(var) >= critical:
                hits += 1
        return hits / max(n_resamples, 1)

    def _group_sums(self, m: np.ndarray) -> np.ndarray:
        return self.cluster_sums @ m

    def df(self, k: int) -> float:
        """Degrees of freedom of a t reference: clusters minus parameters (small accounts have heavier tails)."""
        return float(max(self.n_groups - self.q.shape[1] - k, 1))

    def _inflated(self, e: np.ndarray, x: np.ndarray, a_inv: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
        """Residuals / (1 - leverage) (HC3 / CR3-style, see `_robust_effect`); w: resample counts."""
        h = self.leverage + np.einsum("ij,jk,ik->i", x, a_inv, x) * (1.0 if w is None else w)
        return e / (1.0 - np.clip(h, 0.0, 0.95))

    def _correction(self) -> float:
        g = self.n_groups
        return g / max(g - 1, 1)


# -- findings --------------------------------------------------------------------------------------
def _representatives(screen: pd.DataFrame, causes: pd.Series, p: RecommendationParams) -> tuple[dict[str, str], set[str]]:
    """Per cause tested in this scope: the member with the strongest screening signal (near ties,
    within 5 %, go to the better name), and the causes that passed screening."""
    s = screen.assign(z=(screen["beta"] / screen["se"].where(screen["se"] > 0)).abs().fillna(0.0))
    strength = s.groupby("rule")["z"].max()
    passed = s.loc[(s["q_value"] <= p.fdr) & (s["lift"].abs() >= p.min_lift), "rule"]
    reps: dict[str, str] = {}
    for cause, members in causes.groupby(causes):
        tested = [m for m in members.index if m in strength.index]
        if not tested:
            continue
        best = max(strength[m] for m in tested)
        near = [m for m in tested if strength[m] >= 0.95 * best]
        reps[cause] = min(near, key=_priority)
    screened = {causes[r] for r in passed if r in causes.index and causes[r] in reps}
    return reps, screened


def _finding_rows(tests: pd.DataFrame, scope_data: dict[str, pd.DataFrame], models: dict, screened: dict[str, set[str]],
                  causes: pd.Series, p: RecommendationParams, rng: np.random.Generator) -> list[dict]:
    """DO / DON'T rows: significant, large, prevalent and stable causes (singles) and pairs."""
    sig = tests[(tests["q_value"] <= p.fdr) & tests["significant"]]
    rows = []
    for (scope, kind, cause, cause_b), g in sig.groupby(["scope", "kind", "cause", sig["cause_b"].fillna("")],
                                                         sort=True):
        if kind == "single" and cause not in screened.get(scope, set()):
            continue  # no member passed the screening: a joint-model artefact, not a finding
        primary = g.iloc[0]
        if abs(primary["lift"]) < p.min_lift:
            continue
        d = scope_data[scope]
        rules = [primary["rule"]] + ([primary["rule_b"]] if kind == "combination" else [])
        has, observed = _has(d, rules)
        tag = all(_is_tag_cause(c, causes) for c in [cause] + ([cause_b] if kind == "combination" else []))
        prevalence = float(has.sum() / max(observed.sum(), 1))
        min_prev = p.min_tag_prevalence if tag else p.min_prevalence
        if not (min_prev <= prevalence <= 1 - min_prev):
            continue
        model = models[(scope, primary["metric"])]
        sign = float(np.sign(primary["beta"]))
        if kind == "single":
            names = model.selected if primary["rule"] in model.selected else [*model.selected, primary["rule"]]
            stability = model.stability(names, names.index(primary["rule"]), sign, p.n_resamples, rng)
        else:
            names = [*model.selected] + [r for r in rules if r not in model.selected]
            stability = model.stability(names, len(names), sign, p.n_resamples, rng,
                                         extra=model.interaction(*rules))
        if stability < (p.min_tag_stability if tag else p.min_stability):
            continue
        lifts = _metric_lifts(tests, scope, kind, cause, cause_b)
        rows.append(_finding_row(primary, d, has, observed, causes, lifts, list(g["metric"]), stability,
                                 "DO" if sign > 0 else "DON'T"))
    return rows


def _cause_level_q(tests: pd.DataFrame, p: RecommendationParams) -> pd.DataFrame:
    """p, q per test; q_value per cause (or pair) and scope, not per metric.

    A cause is tested on several metrics; counting each metric as a discovery would let one real
    cause buy lenient thresholds for the others. So per (scope, cause): the Simes combination of
    its metric p-values (valid for positively dependent tests), then Benjamini-Hochberg over the
    scope's causes (singles and pairs separately: pairs are ~10x as many and exploratory). The metrics in the
    Simes rejection set at the BH cutoff are `significant`; rows come out primary metric first.
    """
    t = tests.copy()
    z = (t["beta"] / t["se"].where(t["se"] > 0)).abs().fillna(0.0)
    t["p_value"] = np.where(t["se"] > 0, 2 * stats.t.sf(z, t["df"]), 1.0)
    t["lift"] = np.expm1(t["beta"])
    t["_o"] = t["metric"].map({m: i for i, m in enumerate(p.metrics)})
    t["_key"] = list(zip(t["scope"], t["kind"], t["cause"], t["cause_b"].fillna("")))
    t = t.sort_values(["p_value", "_o"]).reset_index(drop=True)
    by = t.groupby("_key", sort=False)
    rank = by.cumcount() + 1
    simes_k = t["p_value"] * by["p_value"].transform("size") / rank
    simes = simes_k.groupby(t["_key"]).transform("min")
    first = rank == 1
    t["q_value"] = np.nan
    t["significant"] = False
    for scope, kind in t[["scope", "kind"]].drop_duplicates().itertuples(index=False):
        head = first & (t["kind"] == kind) & (t["scope"] == scope)
        q = pd.Series(benjamini_hochberg(simes[head].to_numpy()), index=t.loc[head, "_key"].to_numpy())
        accepted = simes[head].to_numpy()[q.to_numpy() <= p.fdr]
        cutoff = float(accepted.max()) if len(accepted) else -1.0
        rows = (t["kind"] == kind) & (t["scope"] == scope)
        t.loc[rows, "q_value"] = t.loc[rows, "_key"].map(q).to_numpy()
        # Simes step-up: the metrics ranked at or above the last one with m p_(k) / k <= cutoff.
        last = rank.where(rows & (simes_k <= cutoff)).groupby(t["_key"]).transform("max")
        t.loc[rows, "significant"] = (rank <= last.fillna(0))[rows]
    return t.drop(columns=["_o", "_key"])


def _metric_lifts(tests: pd.DataFrame, scope: str, kind: str, cause: str, cause_b: str) -> dict[str, float]:
    t = tests[(tests["scope"] == scope) & (tests["kind"] == kind) & (tests["cause"] == cause)
              & (tests["cause_b"].fillna("") == cause_b)]
    return dict(zip(t["metric"], t["lift"]))


def _finding_row(r: pd.Series, d: pd.DataFrame, has: pd.Series, observed: pd.Series, causes: pd.Series,
                 lifts: dict[str, float], significant: list[str], stability: float, recommendation: str) -> dict:
    pair = r["kind"] == "combination"
    attr, _, value = r["rule"].partition("=")
    attr_b, _, value_b = r["rule_b"].partition("=") if pair else (None, None, None)
    name = _cause_name(d, r["rule"], r["cause"])
    members = _members(d, r["rule"], causes)
    if pair:
        name = f"{name} together with {_cause_name(d, r['rule_b'], r['cause_b'])}"
        members = members + _members(d, r["rule_b"], causes)
    half_width = float(stats.t.ppf(0.975, r["df"])) * float(r["se"])
    spend = d["spend"].to_numpy(float)
    total = float(spend.sum())
    with_spend = float(spend[has.to_numpy()].sum())
    return {
        "scope": r["scope"], "recommendation": recommendation, "kind": r["kind"],
        "finding_id": r["cause"] if not pair else f"{r['cause']} & {r['cause_b']}", "finding": name,
        "members": members, "attribute": attr, "value": value, "attribute_b": attr_b, "value_b": value_b,
        "metric": r["metric"], "lift": float(r["lift"]), "ci_low": float(np.expm1(r["beta"] - half_width)),
        "ci_high": float(np.expm1(r["beta"] + half_width)), "p_value": float(r["p_value"]),
        "q_value": float(r["q_value"]), **{f"lift_{m}": float(lifts.get(m, np.nan)) for m in METRIC_NAMES},
        "significant_metrics": significant, "n_with": int(has.sum()), "n_without": int(observed.sum() - has.sum()),
        "prevalence": float(has.sum() / max(observed.sum(), 1)), "spend": with_spend,
        "spend_share": with_spend / total if total > 0 else np.nan, "stability": float(stability),
        # Spend of the creatives that could change: those without a DO (or TEST), those with a DON'T.
        "expected_impact": abs(float(r["lift"])) * (with_spend if recommendation == "DON'T" else total - with_spend),
        "recent_share": np.nan,
    }


def _test_rows(tests: pd.DataFrame, scope_data: dict[str, pd.DataFrame], found: set, causes: pd.Series,
               p: RecommendationParams, neighbors: pd.DataFrame | None) -> list[dict]:
    """TEST: promising-but-unproven causes (positive conditional score effect, p < test_max_p, not a
    finding, not an object tag) that are rare lately and at least `near_winner_ratio` x as common among the winners'
    top neighbours (or the winners themselves without cbr.neighbors) as in the scope overall.
    At most `max_tests_per_scope` per scope, the largest z first."""
    c = tests[(tests["kind"] == "single") & (tests["metric"] == "score") & (tests["beta"] > 0)
              & (tests["p_value"] < p.test_max_p)]
    # Object tags are not leads: only a proven, stable tag effect is worth a line.
    c = c[[(s, cause) not in found and not _is_tag_cause(cause, causes) for s, cause in zip(c["scope"], c["cause"])]]
    if c.empty:
        return []
    rows: list[dict] = []
    c = c.assign(_z=c["beta"] / c["se"]).sort_values("_z", ascending=False)
    for scope, g in c.groupby("scope", sort=False):
        d = scope_data[scope]
        if "is_winner" not in d.columns:
            continue
        reference = _winner_neighbourhood(d[d["is_winner"].fillna(False).astype(bool)], d, neighbors)
        launch = pd.to_datetime(d["launch_date"]) if "launch_date" in d.columns else None
        recent = launch >= launch.max() - pd.Timedelta(days=p.recent_days) if launch is not None else None
        for r in g.itertuples(index=False):
            has, observed = _has(d, [r.rule])
            prevalence = float(has.sum() / max(observed.sum(), 1))
            if not (p.min_prevalence <= prevalence <= 1 - p.min_prevalence) or not len(reference):
                continue
            recent_share = float(has[recent].mean()) if recent is not None and recent.any() else float(has.mean())
            near_winners = float(_has(reference, [r.rule])[0].mean())
            if recent_share > p.rare_share or near_winners < p.near_winner_ratio * float(has.mean()):
                continue
            row = _finding_row(pd.Series(r._asdict()), d, has, observed, causes,
                               _metric_lifts(tests, scope, "single", r.cause, ""), [], np.nan, "TEST")
            row["recent_share"] = recent_share
            rows.append(row)
            if sum(x["scope"] == scope for x in rows) >= p.max_tests_per_scope:
                break
    return rows


def _rank(out: pd.DataFrame, top_n: int) -> pd.DataFrame:
    """Rank per scope: DO/DON'T by expected impact, then TEST rows; the top `top_n` are shown."""
    out = out.assign(_t=out["recommendation"].eq("TEST")).sort_values(
        ["scope", "_t", "expected_impact"], ascending=[True, True, False])
    out["rank"] = out.groupby("scope").cumcount() + 1
    out["shown"] = out["rank"] <= top_n
    return out.drop(columns="_t")


def _members(d: pd.DataFrame, rep: str, causes: pd.Series) -> list[str]:
    """The representative first, then the other indicators of its cause; `!=` marks one that
    measures the opposite side (face_position!=none for faces)."""
    if rep not in causes.index:
        return [rep]
    others = [m for m in causes.index[causes == causes[rep]] if m != rep]
    out = [rep]
    for m in sorted(others, key=_priority):
        r = d[[rep, m]].astype(float).corr().iloc[0, 1] if m in d.columns else np.nan
        out.append(m.replace("=", "!=", 1) if np.isfinite(r) and r < 0 else m)
    return out


def _cause_name(d: pd.DataFrame, rep: str, cause: str) -> str:
    """The human name of a cause: its first-named member (the `finding_id`: a product category before
    an object tag that co-occurs with it), or the representative's own name where that member measures
    the opposite side (naming it would invert the finding)."""
    rule = rep
    if cause != rep and {rep, cause} <= set(d.columns):
        r = d[[rep, cause]].astype(float).corr().iloc[0, 1]
        rule = cause if np.isfinite(r) and r > 0 else rep
    attr, _, value = rule.partition("=")
    return describe_indicator(attr, value)


def _is_tag_cause(cause: str, causes: pd.Series) -> bool:
    members = causes.index[causes == cause] if cause in set(causes) else [cause]
    return all(str(m).startswith(TAG_PREFIX) for m in members)


def _priority(rule: str) -> tuple:
    attr, _, value = rule.partition("=")
    return naming_priority(attr, value)


def _has(d: pd.DataFrame, rules: list[str]) -> tuple[pd.Series, pd.Series]:
    """(creatives with every rule, creatives where every rule is measured) as boolean Series."""
    has = pd.Series(True, index=d.index)
    observed = pd.Series(True, index=d.index)
    for rule in rules:
        col = d[rule] if rule in d.columns else pd.Series(np.nan, index=d.index)
        has &= col.fillna(0) == 1
        observed &= col.notna()
    return has & observed, observed


def _evidence(d: pd.DataFrame, r, k: int) -> list[str]:
    rules = [f"{r.attribute}={r.value}"] + ([f"{r.attribute_b}={r.value_b}"] if isinstance(r.attribute_b, str) else [])
    d = d[_has(d, rules)[0]]
    if "score" in d.columns:
        d = d.sort_values("score", ascending=(r.recommendation == "DON'T"))
    return d["creative_id"].astype(str).head(k).tolist()


def _describe_rule(rule: str) -> str:
    """A member of `members` for people: `face_count=high` -> "Face count: high"; `face_position!=none`
    (a member that measures the other side) -> "Face position: not none"."""
    negated = "!=" in rule
    attr, _, value = rule.partition("!=" if negated else "=")
    if not negated:
        return describe_indicator(attr, value)
    if value == "true":
        return f"not {describe_indicator(attr, value)}"
    return f"{describe_indicator(attr, 'true')}: not {'none' if value == '' else value}"


def _sentence(r) -> str:
    where = "across all accounts" if r.scope == ALL_SCOPE else f"in {r.scope}"
    ci = f"95% CI {r.ci_low * 100:+.0f}% to {r.ci_high * 100:+.0f}%"
    eg = f" E.g. {', '.join(r.evidence_creatives)}." if len(r.evidence_creatives) else ""
    support = f"{int(r.n_with)} of {int(r.n_with + r.n_without)} creatives ({r.prevalence:.0%})"
    measured = _describe_rule(f"{r.attribute}={r.value}")
    if r.kind == "single" and measured != r.finding:
        # the cause is named for its first-named member but estimated (and counted) on its representative:
        # "Colour temperature: warm" measured as "Warm colours: high" counts the latter's creatives
        support = f"measured as {measured}: {support}"
    also = [_describe_rule(m) for m in r.members[1:]]
    also = [m for m in dict.fromkeys(also) if m not in (r.finding, measured)]
    same = f" Also seen as {', '.join(also)}." if r.kind == "single" and also else ""
    if r.recommendation == "TEST":
        return (f"TEST: {r.finding} → looks promising for the {METRIC_NAMES['score']} ({r.lift * 100:+.0f}%, {ci}, "
                f"not yet proven) {where}; common near winners but only {r.recent_share:.0%} of recent launches; "
                f"{support} have it.{same}{eg}")
    effects = f"{METRIC_NAMES.get(r.metric, r.metric)} {r.lift * 100:+.0f}% ({ci})"
    others = [f"{METRIC_NAMES.get(m, m)} {getattr(r, f'lift_{m}') * 100:+.0f}%" for m in r.significant_metrics
              if m != r.metric and np.isfinite(getattr(r, f"lift_{m}", np.nan))]
    if others:
        effects += ", " + ", ".join(others)
    beyond = " beyond their separate effects" if r.kind == "combination" else ""
    return (f"{r.recommendation}: {r.finding} → {effects}{beyond} {where}, other findings held equal; {support}, "
            f"stable in {r.stability:.0%} of resamples.{same}{eg}")


# -- screening internals ---------------------------------------------------------------------------
def _scopes(data: pd.DataFrame, p: RecommendationParams):
    """(scope, rows) for every account (or `p.scopes`) and ALL with at least 2 x min_support creatives."""
    scopes = list(p.scopes) or sorted(data["account_id"].astype(str).unique()) + [ALL_SCOPE]
    for scope in scopes:
        d = data if scope == ALL_SCOPE else data[data["account_id"].astype(str) == scope]
        if len(d) >= 2 * p.min_support:
            yield scope, d


def _strata(scope: str, p: RecommendationParams) -> list[str]:
    return list(p.strata) + (["account_id"] if scope == ALL_SCOPE else [])


def _weighted_inputs(d: pd.DataFrame, metric: str, strata: list[str], min_rows: int):
    """(rows with a finite response, sqrt(w) * y, sqrt(w), strata basis scaled by sqrt(w), cluster
    labels) for a weighted least-squares fit, or None with fewer than min_rows usable creatives."""
    y, noise_var = _response(d, metric)
    ok = np.isfinite(y) & np.isfinite(noise_var)
    if ok.sum() < min_rows:
        return None
    dm = d[ok]
    sw = np.sqrt(_inverse_variance_weights(y[ok], noise_var[ok], _fixed_effects(dm, strata)))
    # Weighted least squares = OLS on rows scaled by sqrt(weight). The sandwich SEs stay valid
    # even if the weights are off.
    q = _fixed_effects(dm, strata, sw)
    return dm, sw * y[ok], sw, q, _relabel(dm["_group"].to_numpy())

def _prepare_performance(performance: pd.DataFrame, p: RecommendationParams) -> pd.DataFrame:
    need = {"creative_id", "account_id", "spend"}
    missing = need - set(performance.columns)
    if missing:
        raise ValueError(f"performance frame is missing {sorted(missing)} (one row per creative from marts.creative_ranking)")
    perf = performance.copy()
    # Near-duplicate variants are one piece of evidence: they are clustered in the standard errors.
    cluster = perf["near_duplicate_cluster"] if "near_duplicate_cluster" in perf.columns else pd.Series(
        None, index=perf.index, dtype="object")
    perf["_group"] = cluster.where(cluster.notna(), "solo:" + perf["creative_id"].astype(str)).astype(str)
    if "platform_placement" in p.strata and "platform_placement" not in perf.columns:
        if {"platform", "placement"} <= set(perf.columns):
            perf["platform_placement"] = perf["platform"].astype(str) + "|" + perf["placement"].astype(str)
        elif "placement" in perf.columns:
            perf["platform_placement"] = perf["placement"].astype(str)
    return perf


def _response(d: pd.DataFrame, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """The creative-level response and its sampling variance (both (n,)).

    score: the composite from marts.creative_ranking (already shrunk; noise variance 0 ->
    unweighted). ctr / cvr / roas: the log of the RAW rate with a half-event continuity
    correction, sampling variance ~ 1 / events (delta method), used for inverse-variance
    weights. Raw rather than shrunk rates: shrinkage pulls every creative toward its account
    mean, which attenuates attribute effects by the shrinkage factor; weighting keeps the
    thin creatives from adding noise instead. Without raw counts, the *_shrunk column is used.
    """
    if metric == "score":
        if "score" not in d.columns:
            raise ValueError("metric 'score' needs a score column (marts.creative_ranking)")
        return d["score"].to_numpy(float), np.zeros(len(d))
    counts = {"ctr": ("clicks", "impressions"), "cvr": ("conversions", "clicks"), "roas": ("revenue", "spend")}
    if metric in counts and set(counts[metric]) <= set(d.columns) and (metric != "roas" or "conversions" in d.columns):
        num, den = (d[c].to_numpy(float) for c in counts[metric])
        if metric == "roas":
            conv = d["conversions"].to_numpy(float)
            aov = num.sum() / max(conv.sum(), 1.0)
            events = conv
            with np.errstate(divide="ignore", invalid="ignore"):
                y = np.where(den > 0, np.log((num + 0.5 * aov) / np.where(den > 0, den, 1.0)), np.nan)
        else:
            events = num
            with np.errstate(divide="ignore", invalid="ignore"):
                y = np.where(den > 0, np.log((num + 0.5) / (np.where(den > 0, den, 1.0) + 1.0)), np.nan)
        return y, 1.0 / (events + 0.5)
    col = f"{metric}_shrunk" if f"{metric}_shrunk" in d.columns else metric
    if col not in d.columns:
        raise ValueError(f"metric {metric!r} needs raw counts or a {metric}_shrunk / {metric} column in the "
                         f"performance frame")
    v = d[col].to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(v > 0, np.log(np.where(v > 0, v, 1.0)), np.nan), np.zeros(len(d))


def _inverse_variance_weights(y: np.ndarray, noise_var: np.ndarray, q: np.ndarray) -> np.ndarray:
    """w_i = 1 / (tau^2 + s_i^2): between-creative variance tau^2 (moment estimate from the
    strata residuals) plus each creative's sampling variance. All ones when s_i = 0."""
    if not np.any(noise_var > 0):
        return np.ones(len(y))
    resid = _residualise(q, y)
    tau2 = max(float(np.mean(resid**2) - np.mean(noise_var)), 0.01 * float(np.var(y)) + 1e-6)
    w = 1.0 / (tau2 + noise_var)
    return w / w.mean()


def _fixed_effects(d: pd.DataFrame, strata: list[str], row_scale: np.ndarray | None = None) -> np.ndarray:
    """(n, r) orthonormal basis of intercept + drop-first dummies of each stratum column present
    (rows multiplied by row_scale = sqrt(weight) for weighted least squares)."""
    parts = [np.ones((len(d), 1))]
    for col in strata:
        if col in d.columns and d[col].nunique() > 1:
            parts.append(pd.get_dummies(d[col].astype(str), drop_first=True).to_numpy(float))
    z = np.hstack(parts)
    if row_scale is not None:
        z = z * row_scale[:, None]
    # Orthonormal basis (SVD drops collinear strata columns), so residualising is M - Q (Q' M).
    u, s, _ = np.linalg.svd(z, full_matrices=False)
    return u[:, s > 1e-8 * s[0]]


def _residualise(q: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Residuals of m (n,) or (n, k) after least squares on the basis q (Frisch-Waugh-Lovell)."""
    return m - q @ (q.T @ m)


def effective_support(contrast: np.ndarray) -> np.ndarray | float:
    """How many creatives a coefficient effectively rests on: (sum c^2)^2 / sum c^4 of its contrast
    c (the column after residualising on the strata and the other regressors), per column of an
    (n, k) array. About n_with for a rare indicator, n for a balanced one; 2 when the strata leave
    one creative with the attribute against one without in the same cell. Below a few, the fit is
    (nearly) exact where the contrast lives, the sandwich standard error collapses towards 0 and a
    single pair of creatives would pass as a significant finding."""
    c2 = contrast * contrast
    with np.errstate(divide="ignore", invalid="ignore"):
        out = c2.sum(axis=0) ** 2 / (c2 * c2).sum(axis=0)
    return np.nan_to_num(out, nan=0.0)


_PAIR_CHUNK = 256  # pairs per (n, pairs) block: 2,000 creatives x 256 pairs is 4 MB per array


def _cluster_matrix(groups: np.ndarray, n_groups: int):
    """Sparse (clusters, n) 0/1 matrix: its product with an (n, k) array sums each column per cluster."""
    from scipy import sparse

    return sparse.csr_matrix((np.ones(len(groups)), (groups, np.arange(len(groups)))), shape=(n_groups, len(groups)))


def _main_effects_inverse(aa: np.ndarray, bb: np.ndarray, ab: np.ndarray, use_a: np.ndarray,
                          use_b: np.ndarray) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], np.ndarray]:
    """Per pair, the inverse of the Gram matrix of its main-effect columns (both, one or none used):
    ((inv_aa, inv_ab, inv_bb), usable). Not usable: a column with no variation left, or two columns
    with a condition number above 1e8 (what np.linalg.cond measured here before)."""
    both = use_a & use_b
    half_gap = np.sqrt(((aa - bb) / 2.0) ** 2 + ab * ab)
    low, high = (aa + bb) / 2.0 - half_gap, (aa + bb) / 2.0 + half_gap  # eigenvalues of the 2 x 2 Gram
    usable = np.where(both, low * 1e8 >= high, True) & np.where(use_a, aa > 0, True) & np.where(use_b, bb > 0, True)
    with np.errstate(divide="ignore", invalid="ignore"):
        det = aa * bb - ab * ab
        inv_aa = np.where(both, bb / det, 1.0 / aa)
        inv_bb = np.where(both, aa / det, 1.0 / bb)
        inv_ab = np.where(both, -ab / det, 0.0)
    inv = tuple(np.where(usable & use, v, 0.0) for v, use in ((inv_aa, use_a), (inv_ab, both), (inv_bb, use_b)))
    return inv, usable


def _times(inv: tuple[np.ndarray, np.ndarray, np.ndarray], a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 2 x 2 symmetric inverse times (a, b), per pair."""
    return inv[0] * a + inv[1] * b, inv[1] * a + inv[2] * b


def _robust_effect(x_r: np.ndarray, y_r: np.ndarray, groups: np.ndarray,
                   base_leverage: np.ndarray) -> tuple[float, float]:
    """OLS slope of residualised y on residualised x, with a cluster-robust standard error.

    groups: (n,) int cluster labels (near-duplicate clusters; singletons get their own label),
    because variants of one creative share attributes AND quality and are not independent
    evidence. base_leverage: (n,) leverage of the columns x and y were residualised on. Residuals
    are inflated by 1 / (1 - leverage) (HC3 / CR3-style): with dozens of fixed effects and a rare
    level, the plain sandwich (HC1) is too small and finds twice the nominal false positives.
    """
    sxx = float(x_r @ x_r)
    beta = float(x_r @ y_r) / sxx
    e = (y_r - beta * x_r) / (1.0 - np.clip(base_leverage + x_r * x_r / sxx, 0.0, 0.95))
    score = np.bincount(groups, weights=x_r * e)
    g = int(np.count_nonzero(np.bincount(groups)))  # clusters present (= len(np.unique(groups)), without a sort)
    return beta, float(np.sqrt(g / max(g - 1, 1) * float(score @ score)) / sxx)


def _single_tests(d: pd.DataFrame, y: np.ndarray, q: np.ndarray, groups: np.ndarray, ind_cols: list[str],
                  scope: str, metric: str, p: RecommendationParams, sw: np.ndarray) -> list[dict]:
    """y, q: already scaled by sw = sqrt(weights); indicators are scaled here."""
    raw = d[ind_cols].to_numpy(float)
    x = raw * sw[:, None]
    rows = []
    y_r = _residualise(q, y)
    total_spend = float(d["spend"].sum())
    spend = d["spend"].to_numpy(float)
    for j, col in enumerate(ind_cols):
        xj = x[:, j]
        ok = np.isfinite(xj)
        n_with = int(np.nansum(raw[ok, j]))
        n_without = int(ok.sum() - n_with)
        if n_with < p.min_support or n_without < p.min_support:
            continue
        if ok.all():
            xr, yr, qq, gg = _residualise(q, xj), y_r, q, groups
        else:
            qq = _fixed_basis_subset(q, ok)
            xr, yr, gg = _residualise(qq, xj[ok]), _residualise(qq, y[ok]), groups[ok]
        if xr @ xr < 0.05 * xj[ok].var() * ok.sum():
            continue  # collinear with the strata: no within-stratum contrast to estimate from
        if effective_support(xr) < p.min_effective_support:
            continue  # the strata leave the contrast to a handful of creatives: no estimate of its noise
        gg = _relabel(gg)
        beta, se = _robust_effect(xr, yr, gg, (qq * qq).sum(axis=1))
        rows.append(_row(scope, col, None, metric, beta, se, n_with, n_without,
                         float(spend[ok & (raw[:, j] == 1)].sum()), total_spend, int(gg.max()) - qq.shape[1]))
    return rows


def _fixed_basis_subset(q: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Orthonormal basis of the strata restricted to rows `ok` (attribute missing elsewhere)."""
    u, s, _ = np.linalg.svd(q[ok], full_matrices=False)
    return u[:, s > 1e-8 * (s[0] if len(s) else 1.0)]


def _relabel(groups: np.ndarray) -> np.ndarray:
    return np.unique(groups, return_inverse=True)[1]



def _row(scope: str, col: str, col_b: str | None, metric: str, beta: float, se: float, n_with: int, n_without: int,
         spend: float, total_spend: float, df: int) -> dict:
    attr, _, value = col.partition("=")
    attr_b, _, value_b = col_b.partition("=") if col_b else (None, None, None)
    z = beta / se if se > 0 else 0.0
    return {
        "scope": scope, "rule": col if col_b is None else f"{col} & {col_b}",
        "attribute": attr, "value": value, "attribute_b": attr_b, "value_b": value_b,
        "kind": "single" if col_b is None else "combination", "metric": metric,
        "lift": float(np.expm1(beta)), "ci_low": float(np.expm1(beta - 1.96 * se)),
        "ci_high": float(np.expm1(beta + 1.96 * se)), "beta": beta, "se": se,
        "p_value": float(2 * stats.t.sf(abs(z), max(df, 1))) if se > 0 else 1.0,
        "n_creatives": n_with, "n_without": n_without, "spend": spend,
        "spend_share": spend / total_spend if total_spend > 0 else np.nan,
    }


def _winner_neighbourhood(winners: pd.DataFrame, data: pd.DataFrame, neighbors: pd.DataFrame | None) -> pd.DataFrame:
    """Creatives among the top neighbours of winners (or the winners themselves without neighbours)."""
    from creative_dag.marts.ranking import similar_ids_by_creative

    near = similar_ids_by_creative(neighbors, k=5)
    ids = {n for w in winners["creative_id"] for n in near.get(w, [])}
    if ids:
        return data[data["creative_id"].isin(ids)]
    return winners


def _empty_effects() -> pd.DataFrame:
    return pd.DataFrame(columns=["scope", "rule", "attribute", "value", "attribute_b", "value_b", "kind", "metric",
                                 "lift", "ci_low", "ci_high", "beta", "se", "p_value", "q_value", "n_creatives",
                                 "n_without", "spend", "spend_share"])


def _empty_recommendations(n_tests: int = 0) -> pd.DataFrame:
    out = pd.DataFrame({c: pd.Series(dtype=t) for c, t in RECOMMENDATION_COLUMNS.items()})
    out.attrs["n_tests"] = n_tests
    return out

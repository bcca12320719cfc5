"""DO / DON'T / TEST recommendations over interpretable creative attributes.

Input is a plain attribute frame (creative_id + one column per attribute: categorical,
boolean or numeric), so the same code runs on ground-truth attributes in tests and on
detected attributes (embeddings.visual / layout / cnn tags / context) in the pipeline.

Method, per scope (each account, and `ALL` accounts together) and per metric
(composite `score`; `ctr`, `cvr`, `roas` as log raw rates weighted by inverse variance, see
`_response`):

1. Indicators: a boolean column -> `attr = true`; a categorical column -> one indicator per
   level (level vs every other level); a numeric column -> `attr = high` (above its median).
   Levels with fewer than `min_support` creatives on either side are not tested.
2. Effect: OLS of the creative's log metric on the indicator plus additive fixed effects for
   the strata (account, platform|placement, audience, objective when present). The fixed
   effects absorb placement / audience mix, so an attribute that is merely more common in a
   cheap placement does not look like a creative effect. An indicator that is (nearly)
   collinear with the strata (e.g. portrait orientation = stories/reels) is not testable and
   is skipped. Standard errors are heteroskedasticity-robust (HC1); the 95 % CI and p-value
   are normal-approximation. Reported as a relative lift exp(beta) - 1.
3. Two-attribute combinations (levels of different attributes, both with support): the
   interaction term of a model with both main effects -> "together they add X % beyond
   their separate effects" (a combination is only reported for what it adds; combinations
   that merely repeat a strong single attribute are not).
4. Benjamini-Hochberg over every test in the run (all scopes, rules and metrics), in two
   families each at level `fdr`: single attributes, and combinations: a row is a finding
   when q <= `fdr` and |lift| >= `min_lift`. DO = positive finding, DON'T = negative.
5. TEST: promising but unproven rules: not a finding, positive score effect with p <
   `test_max_p`, rare among the scope's recent launches (share <= `rare_share` over the last
   `recent_days`), and >= `near_winner_ratio` x over-represented among the top neighbours of
   winners (cbr.neighbors) or, without neighbours, among the winners themselves.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

ALL_SCOPE = "ALL"
METRIC_NAMES = {"score": "the composite score", "ctr": "CTR", "cvr": "CVR", "roas": "ROAS"}


@dataclass(frozen=True)
class RecommendationParams:
    """metrics: responses tested; strata: context columns absorbed as fixed effects;
    min_support: creatives needed on each side of an indicator (min_combination_support for a
    pair, whose interaction needs more data); fdr: Benjamini-Hochberg level;
    min_lift: smallest |relative lift| reported as DO/DON'T; combinations: test pairs;
    max_levels: at most this many most-frequent levels per categorical attribute;
    rare_share / recent_days: "rare in recent launches" for TEST rows; n_evidence: example ids."""

    metrics: tuple[str, ...] = ("score", "ctr", "cvr", "roas")
    strata: tuple[str, ...] = ("platform_placement", "audience", "objective")
    min_support: int = 8
    min_combination_support: int = 20
    fdr: float = 0.05
    min_lift: float = 0.03
    combinations: bool = True
    max_levels: int = 12
    rare_share: float = 0.15
    test_max_p: float = 0.2
    near_winner_ratio: float = 1.5
    max_tests_per_scope: int = 5
    recent_days: int = 28
    n_evidence: int = 3
    scopes: tuple[str, ...] = field(default_factory=tuple)  # empty = every account + ALL


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
    """Every tested (scope, rule, metric) with lift, CI, p, q and support. See module docstring.

    performance: one row per creative: creative_id, account_id, spend, and the response
        columns: score, ctr_shrunk, cvr_shrunk, roas_shrunk (marts.creative_ranking), plus the
        strata columns (platform, placement, audience, objective) when available.
    Returns columns: scope, rule, attribute, value, attribute_b, value_b, kind (single|combination),
    metric, lift, ci_low, ci_high, beta, se, p_value, q_value, n_creatives, n_without, spend, spend_share.
    """
    p = params or RecommendationParams()
    perf = _prepare_performance(performance, p)
    ind = attribute_indicators(attributes, p.min_support, p.max_levels)
    data = perf.join(ind, on="creative_id", how="inner")
    if data.empty or ind.shape[1] == 0:
        return _empty_effects()
    scopes = list(p.scopes) or sorted(data["account_id"].unique()) + [ALL_SCOPE]
    rows: list[dict] = []
    for scope in scopes:
        d = data if scope == ALL_SCOPE else data[data["account_id"] == scope]
        if len(d) < 2 * p.min_support:
            continue
        strata = list(p.strata) + (["account_id"] if scope == ALL_SCOPE else [])
        for metric in p.metrics:
            y, noise_var = _response(d, metric)
            ok = np.isfinite(y) & np.isfinite(noise_var)
            if ok.sum() < 2 * p.min_support:
                continue
            dm = d[ok]
            sw = np.sqrt(_inverse_variance_weights(y[ok], noise_var[ok], _fixed_effects(dm, strata)))
            # Weighted least squares = OLS on rows scaled by sqrt(weight); the indicators are scaled
            # inside the tests. The sandwich SEs stay valid even if the weights are off.
            q = _fixed_effects(dm, strata, sw)
            groups = _relabel(dm["_group"].to_numpy())
            rows += _single_tests(dm, sw * y[ok], q, groups, list(ind.columns), scope, metric, p, sw)
            if p.combinations:
                rows += _combination_tests(dm, sw * y[ok], q, groups, list(ind.columns), scope, metric, p, sw)
    if not rows:
        return _empty_effects()
    out = pd.DataFrame(rows)
    # Two BH families: single attributes (the main findings) and combinations (exploratory, and
    # about 10x as many tests) each at level fdr, so combinations do not drown the singles' power.
    out["q_value"] = np.nan
    for idx in out.groupby("kind").groups.values():
        out.loc[idx, "q_value"] = benjamini_hochberg(out.loc[idx, "p_value"].to_numpy())
    return out


def recommend(attributes: pd.DataFrame, performance: pd.DataFrame, params: RecommendationParams | None = None,
              neighbors: pd.DataFrame | None = None, effects: pd.DataFrame | None = None) -> pd.DataFrame:
    """The `marts.recommendations` table: DO / DON'T / TEST rows with evidence ids and a sentence.

    attributes, performance: as in `attribute_effects` (performance may also carry is_winner and
    launch_date for TEST rows). neighbors: optional cbr.neighbors (creative_id + neighbour id).
    effects: precomputed `attribute_effects` output (recomputed when None).
    """
    p = params or RecommendationParams()
    eff = attribute_effects(attributes, performance, p) if effects is None else effects
    if eff.empty:
        return _empty_recommendations()
    perf = _prepare_performance(performance, p)
    ind = attribute_indicators(attributes, p.min_support, p.max_levels)
    data = perf.join(ind, on="creative_id", how="inner")
    finding = (eff["q_value"] <= p.fdr) & (eff["lift"].abs() >= p.min_lift)
    out = eff[finding].copy()
    out["recommendation"] = np.where(out["lift"] > 0, "DO", "DON'T")
    tests = _test_rows(eff[~finding], data, ind, p, neighbors)
    out = pd.concat([out, tests], ignore_index=True) if len(tests) else out
    if out.empty:
        return _empty_recommendations()
    out["evidence_ids"] = [_evidence(data, r, p.n_evidence) for r in out.itertuples(index=False)]
    out["sentence"] = [_sentence(r) for r in out.itertuples(index=False)]
    order = {"DO": 0, "DON'T": 1, "TEST": 2}
    out = out.assign(_o=out["recommendation"].map(order), _s=out["scope"].eq(ALL_SCOPE)).sort_values(
        ["_s", "scope", "_o", "q_value"]).drop(columns=["_o", "_s"])
    cols = ["scope", "recommendation", "rule", "kind", "attribute", "value", "attribute_b", "value_b", "metric",
            "lift", "ci_low", "ci_high", "p_value", "q_value", "n_creatives", "n_without", "spend", "spend_share",
            "recent_share", "evidence_ids", "sentence"]
    for c in cols:
        if c not in out.columns:
            out[c] = np.nan
    return out[cols].reset_index(drop=True)


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


# -- internals -----------------------------------------------------------------------------------
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


def _robust_effect(x_r: np.ndarray, y_r: np.ndarray, n_params: int, groups: np.ndarray) -> tuple[float, float]:
    """OLS slope of residualised y on residualised x, with a cluster-robust (CR1) standard error.

    groups: (n,) int cluster labels (near-duplicate clusters; singletons get their own label),
    because variants of one creative share attributes AND quality and are not independent
    evidence. With every creative its own cluster this is HC1.
    """
    sxx = float(x_r @ x_r)
    beta = float(x_r @ y_r) / sxx
    e = y_r - beta * x_r
    score = np.bincount(groups, weights=x_r * e)
    n, g = len(y_r), len(np.unique(groups))
    correction = g / max(g - 1, 1) * (n - 1) / max(n - n_params, 1)
    return beta, float(np.sqrt(correction * float(score @ score)) / sxx)


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
        beta, se = _robust_effect(xr, yr, qq.shape[1] + 1, _relabel(gg))
        rows.append(_row(scope, col, None, metric, beta, se, n_with, n_without,
                         float(spend[ok & (raw[:, j] == 1)].sum()), total_spend))
    return rows


def _combination_tests(d: pd.DataFrame, y: np.ndarray, q: np.ndarray, groups: np.ndarray, ind_cols: list[str],
                       scope: str, metric: str, p: RecommendationParams, sw: np.ndarray) -> list[dict]:
    """Interaction (synergy) of two levels of different attributes, both main effects controlled.

    y, q: already scaled by sw = sqrt(weights); indicators are scaled here."""
    x = d[ind_cols].fillna(0).to_numpy(float)
    x_r = _residualise(q, x * sw[:, None])
    y_r = _residualise(q, y)
    rows = []
    total_spend = float(d["spend"].sum())
    spend = d["spend"].to_numpy(float)
    min_both = max(p.min_support, p.min_combination_support)
    attr_of = [c.split("=")[0] for c in ind_cols]
    counts = x.T @ x  # co-occurrence counts
    n = len(y)
    for a, b in itertools.combinations(range(len(ind_cols)), 2):
        if attr_of[a] == attr_of[b] or counts[a, b] < min_both or n - counts[a, b] < min_both:
            continue
        # Every cell of the 2x2 table needs support, or the main effects rest on a handful of ads.
        if min(counts[a, a] - counts[a, b], counts[b, b] - counts[a, b],
               n - counts[a, a] - counts[b, b] + counts[a, b]) < p.min_support:
            continue
        both = x[:, a] * x[:, b]
        both_w = both * sw
        # FWL: residualise the interaction and y on strata + both main effects.
        main = x_r[:, [a, b]]
        gram = main.T @ main
        if np.linalg.cond(gram) > 1e8:
            continue
        both_r = _residualise(q, both_w)
        coef = np.linalg.solve(gram, main.T @ both_r)
        xr = both_r - main @ coef
        if xr @ xr < 0.05 * both_w.var() * n:
            continue
        yr = y_r - main @ np.linalg.solve(gram, main.T @ y_r)
        beta, se = _robust_effect(xr, yr, q.shape[1] + 3, groups)
        rows.append(_row(scope, ind_cols[a], ind_cols[b], metric, beta, se, int(counts[a, b]),
                         int(n - counts[a, b]), float(spend[both == 1].sum()), total_spend))
    return rows


def _fixed_basis_subset(q: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Orthonormal basis of the strata restricted to rows `ok` (attribute missing elsewhere)."""
    u, s, _ = np.linalg.svd(q[ok], full_matrices=False)
    return u[:, s > 1e-8 * (s[0] if len(s) else 1.0)]


def _relabel(groups: np.ndarray) -> np.ndarray:
    return np.unique(groups, return_inverse=True)[1]



def _row(scope: str, col: str, col_b: str | None, metric: str, beta: float, se: float, n_with: int, n_without: int,
         spend: float, total_spend: float) -> dict:
    attr, _, value = col.partition("=")
    attr_b, _, value_b = col_b.partition("=") if col_b else (None, None, None)
    z = beta / se if se > 0 else 0.0
    return {
        "scope": scope, "rule": col if col_b is None else f"{col} & {col_b}",
        "attribute": attr, "value": value, "attribute_b": attr_b, "value_b": value_b,
        "kind": "single" if col_b is None else "combination", "metric": metric,
        "lift": float(np.expm1(beta)), "ci_low": float(np.expm1(beta - 1.96 * se)),
        "ci_high": float(np.expm1(beta + 1.96 * se)), "beta": beta, "se": se,
        "p_value": float(2 * stats.norm.sf(abs(z))) if se > 0 else 1.0,
        "n_creatives": n_with, "n_without": n_without, "spend": spend,
        "spend_share": spend / total_spend if total_spend > 0 else np.nan,
    }


def _test_rows(candidates: pd.DataFrame, data: pd.DataFrame, ind: pd.DataFrame, p: RecommendationParams,
               neighbors: pd.DataFrame | None) -> pd.DataFrame:
    """TEST: promising-but-unproven score effects that are rare lately and common near winners.

    A candidate (not a finding) qualifies when its score effect is positive with p < test_max_p,
    it makes up at most `rare_share` of the scope's launches in the last `recent_days`, and it is
    at least `near_winner_ratio` times as common among the winners' top neighbours (or the
    winners themselves when cbr.neighbors is absent) as in the scope overall. At most
    `max_tests_per_scope` rows per scope, the most promising (largest z) first.
    """
    if candidates.empty or "is_winner" not in data.columns:
        return pd.DataFrame()
    c = candidates[(candidates["metric"] == "score") & (candidates["lift"] > 0)
                   & (candidates["p_value"] < p.test_max_p)].copy()
    if c.empty:
        return pd.DataFrame()
    winners = data[data["is_winner"].astype(bool)]
    reference = _winner_neighbourhood(winners, data, neighbors)
    launch = pd.to_datetime(data["launch_date"]) if "launch_date" in data.columns else None
    keep, recent_shares = [], []
    for r in c.itertuples(index=False):
        d = data if r.scope == ALL_SCOPE else data[data["account_id"] == r.scope]
        ref = reference if r.scope == ALL_SCOPE else reference[reference["account_id"] == r.scope]
        has = _has_rule(d, r)
        if launch is not None:
            last = launch.loc[d.index].max()
            recent = launch.loc[d.index] >= last - pd.Timedelta(days=p.recent_days)
            recent_share = float(has[recent].mean()) if recent.any() else float(has.mean())
        else:
            recent_share = float(has.mean())
        near_winners = float(_has_rule(ref, r).mean()) if len(ref) else np.nan
        keep.append(bool(recent_share <= p.rare_share and np.isfinite(near_winners)
                         and near_winners >= p.near_winner_ratio * float(has.mean())))
        recent_shares.append(recent_share)
    c["recent_share"] = recent_shares
    c = c[keep]
    if c.empty:
        return c
    c = c.assign(_z=c["beta"] / c["se"]).sort_values("_z", ascending=False)
    c = c.groupby("scope", sort=False).head(p.max_tests_per_scope).drop(columns="_z")
    c["recommendation"] = "TEST"
    return c


def _winner_neighbourhood(winners: pd.DataFrame, data: pd.DataFrame, neighbors: pd.DataFrame | None) -> pd.DataFrame:
    """Creatives among the top neighbours of winners (or the winners themselves without neighbours)."""
    from creative_dag.marts.ranking import similar_ids_by_creative

    near = similar_ids_by_creative(neighbors, k=5)
    ids = {n for w in winners["creative_id"] for n in near.get(w, [])}
    if ids:
        return data[data["creative_id"].isin(ids)]
    return winners


def _has_rule(d: pd.DataFrame, r) -> pd.Series:
    col = f"{r.attribute}={r.value}"
    has = d[col].fillna(0) == 1 if col in d.columns else pd.Series(False, index=d.index)
    if isinstance(r.attribute_b, str):
        col_b = f"{r.attribute_b}={r.value_b}"
        has = has & (d[col_b].fillna(0) == 1 if col_b in d.columns else False)
    return has


def _evidence(data: pd.DataFrame, r, k: int) -> list[str]:
    d = data if r.scope == ALL_SCOPE else data[data["account_id"] == r.scope]
    d = d[_has_rule(d, r)]
    if "score" in d.columns:
        d = d.sort_values("score", ascending=(r.recommendation == "DON'T"))
    return d["creative_id"].astype(str).head(k).tolist()


def _describe(attr: str, value: str) -> str:
    return f"{attr.replace('_', ' ')} = {value}"


def _sentence(r) -> str:
    what = _describe(r.attribute, r.value)
    if isinstance(r.attribute_b, str):
        what = f"{what} together with {_describe(r.attribute_b, r.value_b)}"
    where = "across all accounts" if r.scope == ALL_SCOPE else f"in {r.scope}"
    metric = METRIC_NAMES.get(r.metric, r.metric)
    ci = f"(95% CI {r.ci_low * 100:+.0f}% to {r.ci_high * 100:+.0f}%)"
    extra = " beyond their separate effects" if r.kind == "combination" else ""
    eg = f"; e.g. {', '.join(r.evidence_ids)}" if r.evidence_ids else ""
    support = f"{int(r.n_creatives)} creatives"
    if r.recommendation == "TEST":
        return (f"Test more {what}: it looks promising for {metric} ({r.lift * 100:+.0f}%, {ci[1:-1]}, not yet "
                f"proven) {where}, is common near winners but only {r.recent_share:.0%} of recent launches "
                f"({support}){eg}.")
    verb = "lifts" if r.lift > 0 else "lowers"
    return (f"{what[0].upper() + what[1:]} {verb} {metric} by {abs(r.lift) * 100:.0f}%{extra} {ci} {where} "
            f"across {support}{eg}.")


def _empty_effects() -> pd.DataFrame:
    return pd.DataFrame(columns=["scope", "rule", "attribute", "value", "attribute_b", "value_b", "kind", "metric",
                                 "lift", "ci_low", "ci_high", "beta", "se", "p_value", "q_value", "n_creatives",
                                 "n_without", "spend", "spend_share"])


def _empty_recommendations() -> pd.DataFrame:
    return pd.DataFrame(columns=["scope", "recommendation", "rule", "kind", "attribute", "value", "attribute_b",
                                 "value_b", "metric", "lift", "ci_low", "ci_high", "p_value", "q_value", "n_creatives",
                                 "n_without", "spend", "spend_share", "recent_share", "evidence_ids", "sentence"])

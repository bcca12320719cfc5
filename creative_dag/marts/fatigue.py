"""Creative fatigue: a creative-day table and a per-creative summary with a change-point onset.

Fatigue is measured against the creative's OWN early level, never against other creatives:
an average creative that holds its CTR is `stable`; a great one that lost half of it is
`fatigued`.

Onset model (per creative, on daily clicks | impressions):
    CTR_t = level                                                  for day t <= onset
    CTR_t = level * (floor + (1 - floor) * 2^(-E_t / half_life))  after the onset
with E_t the impressions served from the onset up to day t, in units of the creative's mean
daily impressions before the onset (launch burst included): a flat stretch, then a decay
toward a floor as exposure builds (fatigue follows frequency, and platforms throttle tired
ads, so calendar time is the wrong clock).

Likelihood: clicks_t ~ Poisson(impressions_t * CTR_t) with day-to-day jitter, as a
quasi-likelihood whose day weight is 1 / (1 + kappa * expected clicks_t) (Var = mu + kappa mu^2):
a 300k-impression day is not worth 100 small ones when the jitter dominates. The level is
profiled out; onset, half-life and floor are scanned on a grid.

Two passes over all creatives (fatigue_summary):
1. Shape prior (empirical Bayes): every creative's likelihood table is computed under a flat
   prior; creatives with overwhelming evidence (Bayes factor >= e^10) give, by EM over the
   (half-life, floor) grid, the distribution of fatigue-curve shapes, and the pooled jitter
   kappa. The shape matters because a creative's own data cannot tell "early onset, slow
   decay" from "late onset, fast decay"; its peers can. Measured on generated data, it
   recovers the planted floor (0.28-0.31 for 0.3) and adds 0-3 points of detection on all
   planted fatigue at a similar false-alarm rate; on the creatives whose decay is clearly
   observable the likelihood and the window rule below do the work (see docs/marts.md).
2. Per creative, with that prior: the Bayes factor of "onset somewhere" (uniform over the
   candidate days) against a constant CTR, and the posterior over the onset day. The reported
   onset is the day whose +-`onset_tolerance_days` window holds the most posterior
   probability (with a sharp posterior, simply the most likely day); that probability is
   reported too (`onset_window_probability`). An onset is reported only when the Bayes factor
   is >= 1 / alpha (a Bayes factor is an e-value: under a constant CTR it exceeds 1/alpha with
   probability <= alpha; measured false-alarm rate far lower) AND the fitted drop (pre-onset
   level -> last day) is >= `min_drop` (a 3 % dip on 10 M impressions is real but not fatigue).

Status (one per creative):
- `fresh`     younger than `fresh_days` and no onset yet;
- `fatigued`  onset found and the current level is <= (1 - fatigued_drop) x the early level,
              or the platform rule: current cost per result >= 2x its early level;
- `fatiguing` onset found, decline under way but not yet past the fatigued threshold;
- `stable`    everything else (including creatives with too little data to test, flagged in
              `fatigue_evidence`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from creative_dag import metrics
from creative_dag.wording import count_of

STATUSES = ("fresh", "stable", "fatiguing", "fatigued")


@dataclass(frozen=True)
class FatigueParams:
    """Parameters of the fatigue detector (the asset's Config mirrors them).

    rolling_days: window of the rolling CTR / CPA in the daily table.
    early_days: the early window whose peak rolling CTR is the reference ("early peak").
    min_clicks / min_days: below either the creative is not tested (`fatigue_evidence` says so).
    min_segment_days: the onset leaves at least this many days on each side.
    alpha: an onset needs a Bayes factor >= 1 / alpha against a constant CTR (e-value bound:
        false-alarm probability <= alpha per creative; measured 0.7-1.9 % at alpha 0.2).
    min_drop: minimum fitted relative CTR drop (pre-onset level -> last day) to report an onset.
    onset_tolerance_days: the onset reported is the day whose +- window of this many days
        holds the most posterior probability.
    fatigued_drop: relative drop from the early level at which the creative is `fatigued`.
    cpa_multiple / min_conversions: platform rule, current CPA >= multiple x early CPA, each
        window with at least min_conversions (the current window may have 0 with spend).
    fresh_days: age below which an untroubled creative is `fresh`.
    half_lives: grid of decay half-lives (in days of pre-onset delivery).
    floors: grid of decay floors (share of the pre-onset CTR left after full fatigue).
    initial_jitter: relative day-to-day CTR noise used before it is estimated from the data.
    prior_min_bayes_factor_log / prior_min_creatives: creatives with log Bayes factor above
        this (natural log) under a flat prior fit the shape prior; fewer than
        prior_min_creatives -> the flat prior is kept.
    """

    rolling_days: int = 7
    early_days: int = 14
    min_clicks: float = 100.0
    min_days: int = 8
    min_segment_days: int = 3
    alpha: float = 0.2
    min_drop: float = 0.1
    onset_tolerance_days: int = 3
    fatigued_drop: float = 0.4
    cpa_multiple: float = 2.0
    min_conversions: float = 5.0
    fresh_days: int = 7
    half_lives: tuple[float, ...] = (1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.5, 8.0, 10.0, 13.0, 17.0, 21.0, 34.0)
    floors: tuple[float, ...] = (0.0, 0.15, 0.3, 0.45, 0.6, 0.75)
    initial_jitter: float = 0.1
    prior_min_bayes_factor_log: float = 10.0
    prior_min_creatives: int = 10


@dataclass(frozen=True)
class FatigueShapePrior:
    """Prior over fatigue-curve shapes and the day-to-day CTR jitter, shared by a set of creatives.

    log_weight: (len(half_lives), len(floors)) log prior probabilities (logsumexp = 0).
    jitter_variance: kappa, squared relative day-to-day CTR noise beyond Poisson.
    n_creatives: how many creatives it was fitted from (0 = the flat default).
    """

    half_lives: tuple[float, ...]
    floors: tuple[float, ...]
    log_weight: np.ndarray
    jitter_variance: float
    n_creatives: int = 0

    @classmethod
    def flat(cls, params: FatigueParams | None = None, jitter_variance: float | None = None) -> FatigueShapePrior:
        """Uniform over the grid of `params` (what a creative on its own is judged with)."""
        p = params or FatigueParams()
        g = len(p.half_lives) * len(p.floors)
        kappa = p.initial_jitter ** 2 if jitter_variance is None else jitter_variance
        return cls(p.half_lives, p.floors, np.full((len(p.half_lives), len(p.floors)), -np.log(g)), kappa, 0)

    def summary(self) -> dict[str, float]:
        """Prior means of half-life and floor, and the jitter sd (for asset metadata / docs)."""
        w = np.exp(self.log_weight)
        return {"mean_half_life_days": float((w.sum(axis=1) * np.asarray(self.half_lives)).sum()),
                "mean_floor": float((w.sum(axis=0) * np.asarray(self.floors)).sum()),
                "jitter_sd": float(np.sqrt(self.jitter_variance)), "n_creatives": self.n_creatives}


@dataclass(frozen=True)
class ChangePoint:
    """Result of `detect_onset` for one series. onset_index is None when no onset is reported.

    log_bayes_factor: natural log of the Bayes factor "onset somewhere" vs constant CTR.
    window_probability: posterior probability, given that there is an onset, that it lies
        within +- onset_tolerance_days of the reported day (calibrated on generated data:
        mean 0.84-0.87 vs 0.85-0.88 observed); computed even when no onset is reported.
    drop: fitted relative drop from the pre-onset level to the last day (0..1) at that onset.
    """

    onset_index: int | None
    log_bayes_factor: float
    window_probability: float
    drop: float
    half_life: float | None
    floor: float | None
    jitter_variance: float
    tested: bool
    reason: str


@dataclass(frozen=True)
class _Tables:
    """Per-series likelihood tables: ll (K, H, F) over onsets x half-lives x floors, ll0 (constant CTR)."""

    taus: np.ndarray
    ll: np.ndarray
    ll0: float
    drop: np.ndarray
    last: int


def _check_series(clicks: np.ndarray, impressions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(clicks, dtype="float64")
    n = np.asarray(impressions, dtype="float64")
    if y.shape != n.shape:
        raise ValueError(f"clicks and impressions must have the same length, got {y.shape} and {n.shape}")
    if np.any(n < 0) or np.any(y < 0) or np.any(y > n):
        raise ValueError("daily clicks and impressions must be non-negative with clicks <= impressions")
    return y, n


def _untestable(y: np.ndarray, n: np.ndarray, p: FatigueParams) -> str | None:
    """Why the series cannot be tested, or None."""
    live = n > 0
    if live.sum() < p.min_days or y.sum() < p.min_clicks:
        return (f"too little data ({count_of(live.sum(), 'delivery day')}, {count_of(y.sum(), 'click')}; "
                f"need {p.min_days} and {int(p.min_clicks)})")
    live_idx = np.flatnonzero(live)
    if live_idx[-1] - live_idx[0] + 2 - 2 * p.min_segment_days <= 0:
        return "series too short for a change point"
    return None


_TINY = 1e-300
_LOG_TINY = float(np.log(_TINY))


def _onset_tables(y: np.ndarray, n: np.ndarray, p: FatigueParams, half_lives: tuple[float, ...],
                  floors: tuple[float, ...], kappa: float) -> _Tables:
    """Profile quasi-log-likelihood of every (onset, half-life, floor), the level profiled out.

    y, n: (T,) daily clicks and impressions of a testable series. Poisson log-likelihood
    (CTRs are small) with day weights 1 / (1 + kappa * expected clicks at the pooled CTR).
    """
    live_idx = np.flatnonzero(n > 0)
    first, last = int(live_idx[0]), int(live_idx[-1])
    taus = np.arange(first + p.min_segment_days, last - p.min_segment_days + 2)
    rate0 = y.sum() / n.sum()
    w = 1.0 / (1.0 + kappa * n * rate0)
    wy, wn = w * y, w * n
    swy, swn = wy.sum(), wn.sum()
    exposure = _exposure_since(n, taus, first)
    # The decay m = floor + (1 - floor) d differs from 1 only on the (onset, day) cells with exposure since
    # the onset, about half of the K x T table: evaluated on those cells alone (in onset order), every
    # half-life and floor at once. The logarithms are the cost (a fifth of the fatigue mart's time).
    k_idx, t_idx = np.nonzero(exposure > 0)
    hl = np.asarray(half_lives, dtype="float64")[:, None]
    fl = np.asarray(floors, dtype="float64")
    log2_d = -exposure[k_idx, t_idx][None, :] / hl  # (H, cells)
    d = np.exp2(log2_d)
    swnd = swn - _sum_by_onset((1.0 - d) * wn[t_idx], k_idx, len(taus))  # (H, K): sum_t w n d
    log_m = np.empty((len(fl), *d.shape))
    for j, f in enumerate(fl):  # floor 0: log m = log d, no logarithm to take
        log_m[j] = (np.maximum(log2_d * np.log(2.0), _LOG_TINY) if f == 0.0
                    else np.log(np.maximum(f + (1.0 - f) * d, _TINY)))
    f3 = fl[:, None, None]
    level = swy / (f3 * swn + (1.0 - f3) * swnd[None])  # (F, H, K)
    # sum_t w (y log(level n m) - level n m), dropping the terms that do not depend on the model
    ll = swy * np.log(level) + _sum_by_onset(log_m * wy[t_idx], k_idx, len(taus)) - swy
    drop = (1.0 - f3) * (1.0 - np.exp2(-exposure[:, last][None, :] / hl)[None])  # 1 - m on the last day
    ll0 = swy * np.log(swy / swn) - swy  # constant CTR (m = 1), same weights
    return _Tables(taus, np.ascontiguousarray(ll.transpose(2, 1, 0)), float(ll0),
                   np.ascontiguousarray(drop.transpose(2, 1, 0)), last)


def _logsumexp(a: np.ndarray, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> np.ndarray:
    """log(sum(exp(a))) over axis, as scipy.special.logsumexp for real arrays; in plain numpy because
    scipy's array-API dispatch cost more than the sum on these small tables (2.2 s of a 2,000-creative
    fatigue mart's 8)."""
    top = np.max(a, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):  # all -inf: log(0) = -inf, as scipy
        out = np.log(np.sum(np.exp(a - top), axis=axis, keepdims=True)) + top
    return out if keepdims else np.squeeze(out, axis=axis)


def _sum_by_onset(values: np.ndarray, k_idx: np.ndarray, n_onsets: int) -> np.ndarray:
    """(..., cells) values summed over the cells of each onset -> (..., K); cells are in onset order."""
    out = np.zeros((*values.shape[:-1], n_onsets))
    if len(k_idx):
        onsets, starts = np.unique(k_idx, return_index=True)
        out[..., onsets] = np.add.reduceat(values, starts, axis=-1)
    return out


def detect_onset(clicks: np.ndarray, impressions: np.ndarray, params: FatigueParams | None = None,
                 prior: FatigueShapePrior | None = None) -> ChangePoint:
    """Single change point (flat, then decay to a floor) on a daily clicks | impressions series.

    clicks, impressions: (T,) daily counts in date order, one entry per calendar day since the
    creative's first delivery (zeros for days without delivery are fine).
    prior: the fatigue-shape prior and jitter (fit_fatigue_prior over many creatives); default:
    flat over the grid of `params` with the initial jitter.
    """
    p = params or FatigueParams()
    y, n = _check_series(clicks, impressions)
    prior = prior or FatigueShapePrior.flat(p)
    why = _untestable(y, n, p)
    if why is not None:
        return ChangePoint(None, float("nan"), float("nan"), 0.0, None, None, prior.jitter_variance, False, why)
    tab = _onset_tables(y, n, p, prior.half_lives, prior.floors, prior.jitter_variance)
    post = tab.ll + prior.log_weight[None] - np.log(len(tab.taus))  # uniform over candidate onsets
    log_bf = float(_logsumexp(post) - tab.ll0)
    by_onset = _logsumexp(post, axis=(1, 2))
    prob = np.exp(by_onset - _logsumexp(by_onset))
    # Probability that the true onset is within +-tolerance of each candidate day.
    # Summed probabilities can exceed 1 by round-off (how much depends on the BLAS build): clip here.
    window = np.clip(np.convolve(prob, np.ones(2 * p.onset_tolerance_days + 1), mode="same"), 0.0, 1.0)
    k = int(np.argmax(window))
    i, j = np.unravel_index(int(np.argmax(post[k])), post[k].shape)
    drop = float(tab.drop[k, i, j])
    hl, fl = float(prior.half_lives[i]), float(prior.floors[j])
    detected = log_bf >= np.log(1.0 / p.alpha) and drop >= p.min_drop
    if detected:
        return ChangePoint(int(tab.taus[k]), log_bf, float(window[k]), drop, hl, fl, prior.jitter_variance, True,
                           "onset detected")
    why = ("decline not significant" if log_bf < np.log(1.0 / p.alpha)
           else f"decline {drop:.0%} below minimum {p.min_drop:.0%}")
    return ChangePoint(None, log_bf, float(window[k]), drop, hl, fl, prior.jitter_variance, True, why)


def fit_fatigue_prior(series: list[tuple[np.ndarray, np.ndarray]], params: FatigueParams | None = None,
                      max_iter: int = 200) -> FatigueShapePrior:
    """Empirical-Bayes prior over fatigue-curve shapes and the jitter, from many creatives.

    series: [(clicks (T_i,), impressions (T_i,)), ...] daily, one per creative.
    1. Flat prior, initial jitter: creatives whose Bayes factor exceeds
       exp(prior_min_bayes_factor_log) with a drop >= min_drop are "clear fatigue".
    2. The jitter kappa = pooled moment estimate over those creatives' days at their best fit
       (sum((y - mu)^2 - mu) / sum(mu^2)), clipped to [1e-4, 0.25].
    3. EM over the (half-life, floor) grid: weights maximising the clear creatives' marginal
       likelihood (onset integrated out), mixed with 2 % uniform so no shape is ruled out.
    Fewer than prior_min_creatives clear creatives: the flat prior (with the estimated jitter
    when any creative was clear).
    """
    p = params or FatigueParams()
    flat = FatigueShapePrior.flat(p)
    clear: list[tuple[np.ndarray, np.ndarray, _Tables]] = []
    for clicks, impressions in series:
        y, n = _check_series(clicks, impressions)
        if _untestable(y, n, p) is not None:
            continue
        tab = _onset_tables(y, n, p, flat.half_lives, flat.floors, flat.jitter_variance)
        post = tab.ll + flat.log_weight[None] - np.log(len(tab.taus))
        if _logsumexp(post) - tab.ll0 < p.prior_min_bayes_factor_log:
            continue
        k, i, j = np.unravel_index(int(np.argmax(post)), post.shape)
        if tab.drop[k, i, j] >= p.min_drop:
            clear.append((y, n, tab))
    if not clear:
        return flat
    kappa = _pooled_jitter(clear, p)
    if len(clear) < p.prior_min_creatives:
        return FatigueShapePrior.flat(p, kappa)
    # Marginal log-likelihood of each clear creative per grid shape (onset integrated out).
    marg = np.stack([_logsumexp(_onset_tables(y, n, p, p.half_lives, p.floors, kappa).ll, axis=0).ravel()
                     for y, n, _ in clear])
    g = marg.shape[1]
    weight = np.full(g, 1.0 / g)
    for _ in range(max_iter):
        resp = marg + np.log(weight)
        resp = np.exp(resp - _logsumexp(resp, axis=1, keepdims=True))
        new = 0.98 * resp.mean(axis=0) + 0.02 / g
        if np.max(np.abs(new - weight)) < 1e-6:
            weight = new
            break
        weight = new
    log_weight = np.log(weight / weight.sum()).reshape(len(p.half_lives), len(p.floors))
    return FatigueShapePrior(p.half_lives, p.floors, log_weight, kappa, len(clear))


def _pooled_jitter(clear: list[tuple[np.ndarray, np.ndarray, _Tables]], p: FatigueParams) -> float:
    """kappa = sum((y - mu)^2 - mu) / sum(mu^2) over the days of clearly fatiguing creatives at their best fit."""
    num = den = 0.0
    for y, n, tab in clear:
        k, i, j = np.unravel_index(int(np.argmax(tab.ll)), tab.ll.shape)
        e = _exposure_since(n, tab.taus[k:k + 1], int(np.flatnonzero(n > 0)[0]))[0]
        hl, fl = p.half_lives[i], p.floors[j]
        m = fl + (1.0 - fl) * np.exp2(-e / hl)
        mu = n * m * y.sum() / max(float((n * m).sum()), 1e-12)
        num += float(np.sum((y - mu) ** 2 - mu))
        den += float(np.sum(mu ** 2))
    return float(np.clip(num / den if den > 0 else p.initial_jitter ** 2, 1e-4, 0.25))


def _exposure_since(n: np.ndarray, taus: np.ndarray, first: int) -> np.ndarray:
    """(K, T) impressions served from onset taus[k] up to (not including) day t, in units of the
    creative's mean daily impressions before that onset ("days of pre-onset delivery"); 0 before onset.

    Fatigue follows exposure, not the calendar: a creative the platform throttles after it
    tires keeps its CTR longer in calendar days, so the decay is indexed by impressions.
    """
    cum_before = np.concatenate([[0.0], np.cumsum(n)[:-1]])  # impressions before day t
    pre_days = np.maximum(taus - first, 1)
    per_day = np.maximum(cum_before[taus] / pre_days, 1.0)  # mean pre-onset daily delivery
    since = cum_before[None, :] - cum_before[taus][:, None]
    t = np.arange(len(n))
    since = np.where(t[None, :] >= taus[:, None], np.maximum(since, 0.0), 0.0)
    return since / per_day[:, None]


# -- tables -------------------------------------------------------------------------------------
def fatigue_daily(daily: pd.DataFrame, creatives: pd.DataFrame | None = None,
                  params: FatigueParams | None = None) -> pd.DataFrame:
    """The creative-day table `marts.creative_fatigue_daily`.

    daily: raw.daily_metrics (creative_id, date, impressions, clicks, spend, conversions, revenue,
        optional frequency). creatives: optional (creative_id, account_id, launch_date).
    Calendar gaps between a creative's first and last day are filled with zero-delivery days so
    rolling windows are in days. Columns: creative_id, account_id, date, age_days, impressions,
    clicks, spend, conversions, ctr, cpa, rolling_ctr, rolling_cpa (sums over `rolling_days`),
    cumulative_impressions, cumulative_spend, frequency (NaN when absent).
    """
    p = params or FatigueParams()
    cols = ["impressions", "clicks", "spend", "conversions"]
    d = daily.copy()
    d["date"] = pd.to_datetime(d["date"])
    has_freq = "frequency" in d.columns
    agg = {c: "sum" for c in cols}
    if has_freq:
        agg["frequency"] = "mean"
    d = d.groupby(["creative_id", "date"], as_index=False).agg(agg)
    if d.empty:
        return pd.DataFrame(columns=["creative_id", "account_id", "date", "age_days", *cols, "ctr", "cpa",
                                     "rolling_ctr", "rolling_cpa", "cumulative_impressions",
                                     "cumulative_spend", "frequency"])
    out = _every_day(d, cols)
    if not has_freq:
        out["frequency"] = np.nan
    g = out.groupby("creative_id", sort=False)
    # pandas' grouped rolling: the same sums as rolling each creative's series alone, without a Python call per
    # creative (2,000 creatives x 120 days: the step's 7 s went mostly to those calls)
    rolled = g[cols].rolling(p.rolling_days, min_periods=1).sum().reset_index(level=0, drop=True)
    roll = {c: rolled[c].reindex(out.index) for c in cols}
    out["ctr"] = metrics.ctr(out["clicks"], out["impressions"])
    out["cpa"] = metrics.cpa(out["spend"], out["conversions"])
    out["rolling_ctr"] = metrics.ctr(roll["clicks"], roll["impressions"])
    out["rolling_cpa"] = metrics.cpa(roll["spend"], roll["conversions"])
    out["cumulative_impressions"] = g["impressions"].cumsum()
    out["cumulative_spend"] = g["spend"].cumsum()
    if creatives is not None and {"account_id", "launch_date"} <= set(creatives.columns):
        info = creatives[["creative_id", "account_id", "launch_date"]].copy()
        info["launch_date"] = pd.to_datetime(info["launch_date"])
        out = out.merge(info, on="creative_id", how="left")
        out["age_days"] = (out["date"] - out["launch_date"]).dt.days
        out = out.drop(columns="launch_date")
    else:
        out["account_id"] = pd.NA
        out["age_days"] = (out["date"] - g["date"].transform("min")).dt.days
    out["date"] = out["date"].dt.date
    order = ["creative_id", "account_id", "date", "age_days", *cols, "ctr", "cpa", "rolling_ctr", "rolling_cpa",
             "cumulative_impressions", "cumulative_spend", "frequency"]
    return out[order]


def _every_day(d: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    """One row per creative and calendar day from its first to its last day (sorted by creative, date), the
    days without a row of `d` as zero delivery (and no frequency)."""
    span = d.groupby("creative_id", sort=True)["date"].agg(["min", "max"])
    lengths = ((span["max"] - span["min"]).dt.days + 1).to_numpy()
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    days = pd.to_timedelta(np.arange(int(lengths.sum())) - starts, unit="D")
    grid = pd.DataFrame({"creative_id": np.repeat(span.index.to_numpy(), lengths),
                         "date": np.repeat(span["min"].to_numpy(), lengths) + days})
    grid["date"] = grid["date"].astype(d["date"].dtype)
    out = grid.merge(d, on=["creative_id", "date"], how="left", validate="one_to_one")
    out[cols] = out[cols].fillna(0)
    return out


SUMMARY_COLUMNS: tuple[str, ...] = (
    "creative_id", "account_id", "launch_date", "age_days", "first_date", "last_date", "days_observed",
    "impressions", "clicks", "early_peak_ctr", "early_peak_date", "current_ctr", "current_vs_peak", "early_cpa",
    "current_cpa", "cpa_multiple", "fatigue_onset_date", "onset_log_bayes_factor", "onset_window_probability",
    "fitted_drop", "cpa_rule_triggered", "fatigue_evidence", "days_to_fatigue", "status")


def fatigue_summary(daily_table: pd.DataFrame, creatives: pd.DataFrame,
                    params: FatigueParams | None = None, as_of: object | None = None,
                    prior: FatigueShapePrior | None = None) -> pd.DataFrame:
    """Per-creative fatigue summary `marts.creative_fatigue` from the creative-day table.

    daily_table: output of `fatigue_daily`. creatives: creative_id, account_id, launch_date.
    as_of: the date "today" is (default: the last date in the data) — age and freshness use it.
    prior: fatigue-shape prior and jitter; default: fitted on these creatives (fit_fatigue_prior).
    Columns: creative_id, account_id, launch_date, first_date, last_date, age_days, days_observed,
    impressions, clicks, early_peak_ctr, early_peak_date, current_ctr, current_vs_peak,
    early_cpa, current_cpa, cpa_multiple, fatigue_onset_date, days_to_fatigue,
    onset_log_bayes_factor, onset_window_probability, fitted_drop, status, cpa_rule_triggered,
    fatigue_evidence.
    """
    p = params or FatigueParams()
    info = creatives[["creative_id", "account_id", "launch_date"]].copy()
    info["launch_date"] = pd.to_datetime(info["launch_date"])
    dt = daily_table.copy()
    dt["date"] = pd.to_datetime(dt["date"])
    today = pd.Timestamp(as_of) if as_of is not None else (dt["date"].max() if len(dt) else pd.Timestamp.today())
    rows = []
    series_by_id = _series_by_creative(dt)
    if prior is None:
        prior = fit_fatigue_prior([(g["clicks"], g["impressions"]) for g in series_by_id.values()], p)
    for rec in info.itertuples(index=False):
        g = series_by_id.get(rec.creative_id)
        launch = rec.launch_date
        row: dict[str, object] = {"creative_id": rec.creative_id, "account_id": rec.account_id,
                                  "launch_date": launch.date() if pd.notna(launch) else None}
        age = int((today - launch).days) if pd.notna(launch) else None
        row["age_days"] = age
        if g is None or g["impressions"].sum() <= 0:
            row.update(_no_delivery_row())
            row["status"] = "fresh" if age is not None and age < p.fresh_days else "stable"
            rows.append(row)
            continue
        row.update(_summarise_series(g, p, prior))
        onset = row["fatigue_onset_date"]
        row["days_to_fatigue"] = int((pd.Timestamp(onset) - launch).days) if onset is not None and pd.notna(launch) else None
        row["status"] = _status(row, age, p)
        rows.append(row)
    out = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)  # columns given: an empty account still has the schema
    out["cpa_rule_triggered"] = out["cpa_rule_triggered"].astype(bool)
    for c in ("days_to_fatigue", "age_days"):
        out[c] = out[c].astype("Int64")
    return out


def _no_delivery_row() -> dict[str, object]:
    return {"first_date": None, "last_date": None, "days_observed": 0, "impressions": 0.0, "clicks": 0.0,
            "early_peak_ctr": np.nan, "early_peak_date": None, "current_ctr": np.nan, "current_vs_peak": np.nan,
            "early_cpa": np.nan, "current_cpa": np.nan, "cpa_multiple": np.nan, "fatigue_onset_date": None,
            "days_to_fatigue": None, "onset_log_bayes_factor": np.nan, "onset_window_probability": np.nan,
            "fitted_drop": np.nan, "cpa_rule_triggered": False,
            "fatigue_evidence": "no delivery"}


_SERIES_COLUMNS = ("impressions", "clicks", "spend", "conversions", "rolling_ctr")


def _series_by_creative(daily_table: pd.DataFrame) -> dict[str, dict[str, np.ndarray]]:
    """creative_id -> its days in date order as arrays: date and _SERIES_COLUMNS (float). Sliced from one
    sorted copy: per-creative DataFrames cost more than the change-point search at 2,000 creatives."""
    dt = daily_table.sort_values(["creative_id", "date"], kind="stable")
    columns = {"date": dt["date"].to_numpy(), **{c: dt[c].to_numpy(float) for c in _SERIES_COLUMNS}}
    return {cid: {c: v[rows] for c, v in columns.items()}
            for cid, rows in dt.groupby("creative_id", sort=False).indices.items()}


def _summarise_series(g: Mapping[str, np.ndarray], p: FatigueParams, prior: FatigueShapePrior) -> dict[str, object]:
    dates = g["date"]
    imp, clk, spend, conv, roll_ctr = (g[c] for c in _SERIES_COLUMNS)
    n_days = len(dates)
    early = slice(0, min(p.early_days, n_days))
    early_roll = roll_ctr[early]
    # The early peak is the best rolling window once the window is full (or the whole series if short).
    full = np.arange(n_days)[early] >= min(p.rolling_days, n_days) - 1
    candidates = np.where(full & np.isfinite(early_roll), early_roll, np.nan)
    if np.all(np.isnan(candidates)):
        candidates = early_roll
    k = int(np.nanargmax(candidates)) if np.any(np.isfinite(candidates)) else 0
    peak = float(candidates[k]) if np.isfinite(candidates[k]) else np.nan
    last = slice(max(n_days - p.rolling_days, 0), n_days)
    current_ctr = float(metrics.ctr(clk[last].sum(), imp[last].sum()))
    early_cpa = float(metrics.cpa(spend[: p.rolling_days].sum(), conv[: p.rolling_days].sum()))
    cur_spend, cur_conv = spend[last].sum(), conv[last].sum()
    current_cpa = float(metrics.cpa(cur_spend, cur_conv))
    enough_conv = conv[: p.rolling_days].sum() >= p.min_conversions and n_days >= 2 * p.rolling_days
    if enough_conv and np.isfinite(early_cpa):
        # With no conversions lately, spend alone already exceeding 2x the early CPA counts.
        effective = current_cpa if cur_conv > 0 else cur_spend
        cpa_mult = float(effective / early_cpa)
        cpa_rule = bool(cpa_mult >= p.cpa_multiple and (cur_conv >= p.min_conversions or cur_conv == 0))
    else:
        cpa_mult, cpa_rule = np.nan, False
    cp = detect_onset(clk, imp, p, prior)
    onset_date = pd.Timestamp(dates[cp.onset_index]).date() if cp.onset_index is not None else None
    return {
        "first_date": pd.Timestamp(dates[0]).date(), "last_date": pd.Timestamp(dates[-1]).date(),
        "days_observed": int((imp > 0).sum()), "impressions": float(imp.sum()), "clicks": float(clk.sum()),
        "early_peak_ctr": peak, "early_peak_date": pd.Timestamp(dates[k]).date(),
        "current_ctr": current_ctr, "current_vs_peak": current_ctr / peak if peak and peak > 0 else np.nan,
        "early_cpa": early_cpa, "current_cpa": current_cpa, "cpa_multiple": cpa_mult,
        "fatigue_onset_date": onset_date, "onset_log_bayes_factor": cp.log_bayes_factor if cp.tested else np.nan,
        "onset_window_probability": cp.window_probability if cp.onset_index is not None else np.nan,
        "fitted_drop": cp.drop if cp.tested else np.nan,
        "cpa_rule_triggered": cpa_rule, "fatigue_evidence": _evidence(cp.reason, cpa_rule, p.cpa_multiple),
    }


def _evidence(ctr_reason: str, cpa_rule: bool, multiple: float) -> str:
    """The detector's outcome, led by the CPA rule when that is what makes the creative fatigued (a reader
    seeing 'fatigued' next to 'decline not significant' alone would take it for a contradiction). No
    number in it, so that a BI tool can group by it (`cpa_multiple` holds the number)."""
    return f"CPA rule (cost per result >= {multiple:g}x its first 7 days'); CTR: {ctr_reason}" if cpa_rule else ctr_reason


def _status(row: dict[str, object], age: int | None, p: FatigueParams) -> str:
    onset = row["fatigue_onset_date"] is not None
    ratio = row["current_vs_peak"]
    if row["cpa_rule_triggered"] or (onset and isinstance(ratio, float) and ratio <= 1 - p.fatigued_drop):
        return "fatigued"
    if onset:
        return "fatiguing"
    if age is not None and age < p.fresh_days:
        return "fresh"
    return "stable"


# -- account level ------------------------------------------------------------------------------
def days_holding_target_cpa(daily_table: pd.DataFrame, target_cpa: dict[str, float],
                            min_conversions: float = 3.0) -> pd.DataFrame:
    """Per creative: days from first delivery until its rolling CPA first exceeds the account target.

    daily_table: `fatigue_daily` output (with account_id). target_cpa: account_id -> target CPA
    (currency per conversion). A creative that never exceeds it is censored (`degraded` False)
    at its observed days. Rolling windows with fewer than `min_conversions` conversions... are
    judged by spend: spend alone above the target means the target is missed.
    Returns creative_id, account_id, days_holding_target, degraded.
    """
    rows = []
    for (cid, acc), g in daily_table.groupby(["creative_id", "account_id"], sort=False):
        target = target_cpa.get(acc)
        if target is None or not np.isfinite(target):
            continue
        g = g.sort_values("date")
        spend = g["spend"].rolling(7, min_periods=1).sum().to_numpy(float)
        conv = g["conversions"].rolling(7, min_periods=1).sum().to_numpy(float)
        # A window "misses" the target when it has enough evidence of a CPA above it.
        with np.errstate(divide="ignore", invalid="ignore"):
            cpa = np.where(conv > 0, spend / np.maximum(conv, 1e-12), np.inf)
        miss = (cpa > target) & ((conv >= min_conversions) | (spend > min_conversions * target))
        # Ignore the first window: delivery ramps up.
        miss[: min(7, len(miss))] = False
        idx = np.flatnonzero(miss)
        days = int(idx[0]) if len(idx) else len(g)
        rows.append({"creative_id": cid, "account_id": acc, "days_holding_target": days, "degraded": bool(len(idx))})
    return pd.DataFrame(rows, columns=["creative_id", "account_id", "days_holding_target", "degraded"])


def account_fatigue_rate(daily_table: pd.DataFrame, ranking: pd.DataFrame) -> pd.DataFrame:
    """Creative fatigue rate per account: median days a winner holds its target CPA before degrading.

    ranking: marts.creative_ranking (creative_id, account_id, is_winner, cpa_shrunk). The target
    CPA is the account's median shrunk CPA over non-learning creatives. Returns account_id,
    target_cpa, n_winners, n_degraded, creative_fatigue_rate_days (median over winners, censored
    winners counted at their observed days, so it is a lower bound when many are censored).
    """
    mature = ranking[ranking["tier"] != "LEARNING"]
    target = mature.groupby("account_id")["cpa_shrunk"].median().to_dict()
    winners = set(ranking.loc[ranking["is_winner"].astype(bool), "creative_id"])
    held = days_holding_target_cpa(daily_table[daily_table["creative_id"].isin(winners)], target)
    rows = []
    for acc in sorted(ranking["account_id"].unique()):
        h = held[held["account_id"] == acc]
        rows.append({"account_id": acc, "target_cpa": float(target.get(acc, np.nan)), "n_winners": len(h),
                     "n_degraded": int(h["degraded"].sum()) if len(h) else 0,
                     "creative_fatigue_rate_days": float(h["days_holding_target"].median()) if len(h) else np.nan})
    return pd.DataFrame(rows)

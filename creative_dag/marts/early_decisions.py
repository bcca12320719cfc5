"""Early decisions: KILL / KEEP / SCALE / WAIT for each creative after its early window.

The practitioner's loop ("launch, cut the bottom 80 % after 48 hours, double down on the top 20 %")
as a configurable policy with a probability behind every call. After the early window (days
0 .. n-1 after launch, n = `window_days`, extended day by day up to `max_window_days` until the
creative has `min_impressions`), each creative gets

    p_bottom = P(its outcome ends in the account's bottom `bottom_share`)
    p_top    = P(its outcome ends in the account's top `top_share`)

and KILL when p_bottom >= kill_threshold, SCALE when p_top >= scale_threshold, KEEP otherwise; WAIT
(with the reason) when it cannot be judged yet: window not complete, too few impressions, too few
matured creatives in its account to say what "bottom" means, or too little history to calibrate.

The outcome is the product's composite (creative_dag.cbr.case_base.outcome_score): log shrunk CTR +
log shrunk CVR, i.e. log conversions per impression. Model, for a creative decided on day t:

1. Early rates. Clicks ~ Poisson(impressions x CTR), conversions ~ Poisson(clicks x CVR), with
   CTR ~ Gamma and CVR ~ Gamma: the account's prior, fitted (method of moments, Poisson noise
   removed) on the same-length early windows of the account's *peers*, creatives whose outcome was
   mature on or before t. The creative's posterior is Gamma(shape + clicks, rate + impressions) x
   Gamma(shape' + conversions, rate' + clicks), and theta = log CTR + log CVR has exact posterior
   moments (digamma / trigamma). Gamma-Poisson, not Beta-binomial: conversions may exceed clicks.
2. Early -> outcome calibration. Over the peers of every account (as of t), the outcome over the
   maturity window is regressed on the peers' posterior mean theta (and the prelaunch forecast when
   marts.predictions has one), both centred within account:
       y - mean_acc(y) = beta (theta - mean_acc(theta)) [+ gamma (f - mean_acc(f))] + e.
   Why a regression and not the early rate itself: early data over-state differences (regression to
   the mean), and lifetime rates sit below early ones (fatigue, the platform's learning boost);
   the slope and the residual spread are what make p_bottom an honest probability. Regressing on a
   posterior mean (regression calibration) keeps the slope unbiased; the residual variance is then
   beta^2 E[Var(theta | data)] + sigma^2, so sigma^2 is what remains after removing the peers' own
   estimation variance.
3. Predictive outcome of the creative: Normal(mean_acc(y) + beta (E theta - mean_acc(theta)) [+ ...],
   beta^2 Var(theta | data) + sigma^2), compared with the account's peers: p_bottom = P(y below the
   `bottom_share` quantile of the peers' outcomes), p_top = P(y above the 1 - `top_share` quantile).

No information after the decision date reaches a decision: the creative's own data are days
0 .. n-1; peers count only when their maturity window ended before t (mature_date <= t) and their
outcome is summed over that window only (never lifetime totals, which run past t); the prelaunch
forecast is made at launch (marts.predictions: models trained before the launch). The `realised_*`
columns are the evaluation labels (lifetime outcome and rank in the account, spend after the
window), filled once the creative is mature; they are never inputs of the decision.

`evaluate` scores the policy on matured creatives against the naive rule "rank by early CTR" (kill
the bottom share of the account by as-of early-CTR percentile, scale the top), the same ranking with
the policy's own KILL/SCALE counts, and a random policy with those counts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import special, stats

from creative_dag import metrics
from creative_dag.cbr.case_base import (
    maturity_window_outcomes,
    outcome_score,
    pooled_priors,
)
from creative_dag.features.early_window import SUM_COLUMNS, last_metric_date, to_day
from creative_dag.wording import below, count_of

KILL, KEEP, SCALE, WAIT = "KILL", "KEEP", "SCALE", "WAIT"
DECISIONS: tuple[str, ...] = (KILL, KEEP, SCALE, WAIT)
# WAIT kinds, each with a phrase only its reason contains (for counts in metadata and the docs).
WAIT_KINDS: tuple[tuple[str, str], ...] = (
    ("window incomplete", "window incomplete"),
    ("too few early impressions", "early impressions"),
    ("too little history to calibrate", "across all accounts"),
    ("too few matured creatives in the account", "matured creatives in "),
    ("bad input (no launch date or account)", " has no "),
)
PRIOR_ACCOUNT = "account history"
PRIOR_WITH_FORECAST = "account history + prelaunch forecast"

DECISION_COLUMNS: dict[str, str] = {
    "creative_id": "object", "account_id": "object", "launch_date": "object", "decided_at": "object",
    "window_days": "Int64",
    "early_impressions": "Int64", "early_clicks": "Int64", "early_conversions": "Int64",
    "early_spend": "float64", "early_ctr": "float64", "early_cvr": "float64",
    "early_ctr_percentile": "float64", "n_peers": "Int64", "prelaunch_forecast": "float64",
    "prior_source": "object", "expected_outcome": "float64", "p_bottom": "float64", "p_top": "float64",
    "decision": "object", "reason": "object",
    "realised_outcome": "float64", "realised_rank_share": "float64", "realised_bottom": "boolean",
    "realised_top": "boolean", "realised_lifetime_spend": "float64", "realised_post_window_spend": "float64",
}
REALISED_COLUMNS: tuple[str, ...] = tuple(c for c in DECISION_COLUMNS if c.startswith("realised_"))

# Bounds of the Gamma prior's shape (1 / squared coefficient of variation of creatives' rates).
_MIN_SHAPE = 1.0
_MAX_SHAPE = 1e6
# Residual spread of the calibration never drops below this share of the raw residual variance:
# the errors-in-variables correction subtracts an estimate and must not reach zero by noise.
_MIN_RESIDUAL_SHARE = 0.25
# A forecast covariate needs this many peers in an account that have a forecast.
_MIN_FORECAST_PEERS = 3


@dataclass(frozen=True)
class EarlyDecisionParams:
    """The policy (the asset's EarlyDecisionsConfig mirrors it).

    window_days: days of delivery before the first call (2 = the practitioner's "48 hours"); day 0
        is the launch date, as in features.early.
    max_window_days: a creative below `min_impressions` after `window_days` is judged on the first
        later day it reaches them, up to this many days; after that it stays WAIT.
    min_impressions: early impressions needed for any call.
    bottom_share / top_share: "bottom" = the account's worst `bottom_share` of creatives by outcome
        (0.8: "cut the bottom 80 %"), "top" = its best `top_share`. They must not overlap.
    kill_threshold / scale_threshold: KILL when p_bottom >= kill_threshold, SCALE when
        p_top >= scale_threshold. Both above 0.5, so a creative is never both.
    min_peers: matured creatives its account needs before the decision date (without them the
        account's bottom 80 % is not defined yet).
    min_history: matured creatives (all accounts) the early -> outcome calibration needs.
    use_forecast: combine the prelaunch forecast (marts.predictions, KPI score) when present.

    With bottom 80 % and top 20 % the two cover the account, so p_bottom + p_top = 1: KILL is
    p_top <= 0.2, SCALE p_top >= 0.8, KEEP in between (it may still be a winner). The median creative
    is in the bottom 80 %: that is the practitioner's rule, not an accident. Thresholds 0.8 were
    chosen on generated scenarios (docs/early-decisions.md): at 0.9 KILL precision rises from
    0.96-0.97 to 0.99 but 10-15 % fewer losers are cut.
    """

    window_days: int = 2
    max_window_days: int = 7
    min_impressions: int = 1000
    bottom_share: float = 0.8
    top_share: float = 0.2
    kill_threshold: float = 0.8
    scale_threshold: float = 0.8
    min_peers: int = 10
    min_history: int = 30
    use_forecast: bool = True

    def __post_init__(self) -> None:
        problems = []
        if self.window_days < 1:
            problems.append(f"window_days must be >= 1, got {self.window_days}")
        if self.max_window_days < self.window_days:
            problems.append(f"max_window_days ({self.max_window_days}) must be >= window_days ({self.window_days})")
        if self.min_impressions < 0:
            problems.append(f"min_impressions must be >= 0, got {self.min_impressions}")
        if not (0 < self.bottom_share < 1 and 0 < self.top_share < 1):
            problems.append(f"bottom_share and top_share must be in (0, 1), got {self.bottom_share}, {self.top_share}")
        elif self.bottom_share + self.top_share > 1 + 1e-12:
            problems.append(f"bottom_share + top_share must be <= 1 (bottom and top must not overlap), got "
                            f"{self.bottom_share} + {self.top_share}")
        for name in ("kill_threshold", "scale_threshold"):
            value = getattr(self, name)
            if not 0.5 < value <= 1:
                problems.append(f"{name} must be in (0.5, 1], got {value}")
        if self.min_peers < 2 or self.min_history < 3:
            problems.append(f"min_peers must be >= 2 and min_history >= 3, got {self.min_peers}, {self.min_history}")
        if problems:
            raise ValueError("EarlyDecisionParams: " + "; ".join(problems))

    def bottom_label(self) -> str:
        return f"bottom {_pct(self.bottom_share)}"

    def top_label(self) -> str:
        return f"top {_pct(self.top_share)}"


# -- public API ------------------------------------------------------------------------------------
def decide(creatives: pd.DataFrame, daily_metrics: pd.DataFrame, outcomes: pd.DataFrame,
           predictions: pd.DataFrame | None = None,
           params: EarlyDecisionParams | None = None) -> pd.DataFrame:
    """One row per creative of `creatives` with its early decision (columns: DECISION_COLUMNS).

    creatives: creative_id, account_id, launch_date (raw.creatives). daily_metrics: creative_id,
    date, impressions, clicks, spend, conversions (raw.daily_metrics; revenue optional).
    outcomes: features.outcomes (creative_id, mature_date, is_mature and the lifetime totals
    impressions, clicks, conversions, spend); mature_date gates which creatives are peers, the
    lifetime totals only fill the realised_* columns. predictions: marts.predictions or None; rows
    with kpi == "score" give the prelaunch forecast. Probabilities are in [0, 1]; p_bottom, p_top
    and expected_outcome are NaN for WAIT. Returns the typed empty schema for no creatives.
    """
    params = params or EarlyDecisionParams()
    missing = [c for c in ("creative_id", "account_id", "launch_date") if c not in creatives.columns]
    if missing:
        raise KeyError(f"raw.creatives lacks {missing}; re-run ingest on a creatives file with them")
    if creatives.empty:
        return empty_decisions()
    base = _creative_keys(creatives)
    daily = _daily_rows(daily_metrics)
    horizon = last_metric_date(daily)
    mature = _mature_dates(outcomes, base)
    cum = _cumulative_early(base, daily, params.max_window_days)
    plan = _decision_plan(base, cum, horizon, params)
    peers = _peer_frame(base, daily, mature)
    forecast = _forecast_lookup(predictions) if params.use_forecast else {}
    rows = _judge(base, plan, cum, peers, forecast, params)
    out = _assemble(base, plan, rows, cum, forecast, params)
    out = _with_naive_percentile(out, cum)
    out = _with_realised(out, outcomes, params)
    return _typed(out)


def empty_decisions() -> pd.DataFrame:
    """The typed, zero-row marts.early_decisions (an empty export still writes the schema)."""
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in DECISION_COLUMNS.items()})


EVALUATION_COLUMNS: tuple[str, ...] = (
    "policy", "n_evaluated", "n_kill", "n_scale", "share_acted", "kill_precision", "kill_recall",
    "scale_precision", "scale_recall", "post_window_spend", "spend_freed", "spend_saved", "spend_lost",
    "spend_saved_share", "spend_moved_to_top",
)
POLICY = "posterior policy"
NAIVE = "early CTR rule"
NAIVE_MATCHED = "early CTR, same counts"
RANDOM = "random, same counts (expected)"


def evaluate(decisions: pd.DataFrame, params: EarlyDecisionParams | None = None) -> pd.DataFrame:
    """How the policy would have done on history: one row per policy (EVALUATION_COLUMNS).

    Evaluated creatives: mature (realised outcome known, at least 2 matured creatives in the
    account) and not WAIT. Policies, all on that same set:

    * `posterior policy`: the decisions of the table.
    * `early CTR rule` (naive): KILL when the creative's early CTR is in its account's bottom
      `bottom_share` (as-of percentile among the account's creatives whose same-length window ended
      before the decision), SCALE when in the top `top_share`.
    * `early CTR, same counts`: per account, the policy's number of KILLs (SCALEs) given to the
      lowest (highest) early CTRs: the ranking alone, at the policy's volume.
    * `random, same counts (expected)`: the expectation of drawing the policy's KILLs and SCALEs at
      random within each account (exact, no sampling).

    Metrics: kill_precision = share of KILLs truly in the bottom; kill_recall = share of the truly
    bottom killed; scale_precision / scale_recall likewise for the top; share_acted = share called
    KILL or SCALE; spend after the decision date: post_window_spend (all evaluated), spend_freed (of
    KILLs), spend_saved (of KILLs truly bottom), spend_lost (of KILLs truly top), spend_saved_share =
    spend_saved / post_window_spend, spend_moved_to_top = spend_freed x scale_precision (the freed
    budget spread evenly over the SCALEs: the part that lands on true top creatives).

    params: the policy the table was built with (its shares define the naive rule; the realised
    bottom / top columns were set with them by `decide`).
    """
    params = params or EarlyDecisionParams()
    frame = _evaluable(decisions)
    if frame.empty:
        return pd.DataFrame(columns=list(EVALUATION_COLUMNS))
    pct = frame["early_ctr_percentile"].to_numpy(float)
    naive = np.where(pct < params.bottom_share, KILL, np.where(pct >= 1 - params.top_share, SCALE, KEEP))
    naive = np.where(np.isnan(pct), KEEP, naive)
    rows = [
        _policy_metrics(POLICY, frame, frame["decision"].to_numpy(object)),
        _policy_metrics(NAIVE, frame, naive),
        _policy_metrics(NAIVE_MATCHED, frame, _matched_by_early_ctr(frame)),
        _random_metrics(frame),
    ]
    return pd.DataFrame(rows, columns=list(EVALUATION_COLUMNS))


def wait_kind(reason: str | None) -> str:
    """The kind of a WAIT reason (first matching WAIT_KINDS phrase), "other" when none matches."""
    text = reason or ""
    return next((kind for kind, phrase in WAIT_KINDS if phrase in text), "other")


def evaluation_markdown(table: pd.DataFrame) -> str:
    """The evaluation table as markdown, rounded for reading (asset metadata and docs)."""
    if table.empty:
        return "_no matured, decided creatives to evaluate yet_"
    shown = table.copy()
    for c in ("share_acted", "kill_precision", "kill_recall", "scale_precision", "scale_recall", "spend_saved_share"):
        shown[c] = shown[c].map(lambda v: "" if pd.isna(v) else f"{v:.3f}")
    for c in ("post_window_spend", "spend_freed", "spend_saved", "spend_lost", "spend_moved_to_top"):
        shown[c] = shown[c].map(lambda v: "" if pd.isna(v) else f"{v:,.0f}")
    for c in ("n_kill", "n_scale"):
        shown[c] = shown[c].map(lambda v: f"{v:.1f}" if float(v) != int(v) else f"{int(v)}")
    return shown.to_markdown(index=False)


# -- inputs ----------------------------------------------------------------------------------------
def _creative_keys(creatives: pd.DataFrame) -> pd.DataFrame:
    base = pd.DataFrame({"creative_id": creatives["creative_id"].astype(str),
                         "account_id": [None if pd.isna(v) else str(v) for v in creatives["account_id"]],
                         "launch": to_day(creatives["launch_date"]).to_numpy()})
    if base["creative_id"].duplicated().any():
        dup = base.loc[base["creative_id"].duplicated(), "creative_id"].iloc[0]
        raise ValueError(f"raw.creatives has creative {dup!r} more than once; fix the export and re-run ingest")
    return base.reset_index(drop=True)


def _daily_rows(daily_metrics: pd.DataFrame) -> pd.DataFrame:
    cols = ["creative_id", "date", *[c for c in SUM_COLUMNS if c in daily_metrics.columns]]
    missing = [c for c in ("creative_id", "date", "impressions", "clicks", "spend", "conversions")
               if c not in daily_metrics.columns]
    if missing:
        raise KeyError(f"raw.daily_metrics lacks {missing}; re-run ingest on a metrics file with them")
    rows = daily_metrics[cols].copy()
    rows["creative_id"] = rows["creative_id"].astype(str)
    rows["date"] = to_day(rows["date"])
    for c in SUM_COLUMNS:
        rows[c] = pd.to_numeric(rows[c], errors="coerce").fillna(0.0).astype("float64") if c in rows.columns else 0.0
    return rows.dropna(subset=["date"])


def _mature_dates(outcomes: pd.DataFrame, base: pd.DataFrame) -> pd.Series:
    """creative_id -> mature_date (Timestamp; NaT where unknown)."""
    if outcomes is None or outcomes.empty or "mature_date" not in outcomes.columns:
        return pd.Series(pd.NaT, index=base["creative_id"], dtype="datetime64[ns]")
    frame = outcomes[["creative_id", "mature_date"]].copy()
    frame["creative_id"] = frame["creative_id"].astype(str)
    frame = frame.drop_duplicates("creative_id", keep="last").set_index("creative_id")
    return to_day(frame["mature_date"]).reindex(base["creative_id"])


@dataclass(frozen=True)
class _Cumulative:
    """Cumulative early totals: arrays (n_creatives, max_days + 1) where [:, d] sums days 0 .. d-1."""

    impressions: np.ndarray
    clicks: np.ndarray
    conversions: np.ndarray
    spend: np.ndarray
    index: dict[str, int]


def _cumulative_early(base: pd.DataFrame, daily: pd.DataFrame, max_days: int) -> _Cumulative:
    index = {cid: i for i, cid in enumerate(base["creative_id"])}
    shape = (len(base), max_days + 1)
    arrays = {c: np.zeros(shape) for c in ("impressions", "clicks", "conversions", "spend")}
    rows = daily.merge(base[["creative_id", "launch"]], on="creative_id", how="inner")
    offset = (rows["date"] - rows["launch"]).dt.days
    keep = (offset >= 0) & (offset < max_days)
    rows = rows.loc[keep]
    pos = rows["creative_id"].map(index).to_numpy(int)
    day = offset.loc[keep].to_numpy(int)
    for c, arr in arrays.items():
        daily_arr = np.zeros(shape)
        np.add.at(daily_arr, (pos, day + 1), rows[c].to_numpy(float))
        arr[:] = np.cumsum(daily_arr, axis=1)
    return _Cumulative(index=index, **arrays)


# -- when each creative is judged ------------------------------------------------------------------
def _decision_plan(base: pd.DataFrame, cum: _Cumulative, horizon: pd.Timestamp | None,
                   params: EarlyDecisionParams) -> pd.DataFrame:
    """Per creative: days of data available, the window n it is judged on (or NaN) and why not."""
    n_rows = len(base)
    launch = base["launch"]
    if horizon is None:
        available = np.zeros(n_rows, dtype=int)
    else:
        available = ((horizon - launch).dt.days + 1).fillna(-1).to_numpy(int)
    available = np.clip(available, 0, params.max_window_days)
    window = np.full(n_rows, np.nan)
    wait_reason = np.full(n_rows, None, dtype=object)
    imps = cum.impressions
    for i in range(n_rows):
        cid = base["creative_id"].iat[i]
        if pd.isna(launch.iat[i]):
            wait_reason[i] = f"creative {cid} has no valid launch_date, so its early window cannot be placed: WAIT"
            continue
        have = int(available[i])
        if have < params.window_days:
            until = (launch.iat[i] + pd.Timedelta(days=params.window_days)).date()
            wait_reason[i] = (f"window incomplete: launched {launch.iat[i].date()}, {have} of "
                              f"{params.window_days} days of data so far ({_int(imps[i, have])} impressions): "
                              f"WAIT until {until}")
            continue
        enough = [d for d in range(params.window_days, have + 1) if imps[i, d] >= params.min_impressions]
        if enough:
            window[i] = enough[0]
            continue
        if have >= params.max_window_days:
            wait_reason[i] = (f"only {_int(imps[i, have])} early impressions in {have} days "
                              f"(< {_int(params.min_impressions)}): WAIT")
        else:
            wait_reason[i] = (f"only {_int(imps[i, have])} early impressions after {have} days "
                              f"(< {_int(params.min_impressions)}): WAIT; judged once it reaches "
                              f"{_int(params.min_impressions)}, or after {params.max_window_days} days")
    return pd.DataFrame({"available_days": available, "window_days": window, "wait_reason": wait_reason})


# -- peers -----------------------------------------------------------------------------------------
def _peer_frame(base: pd.DataFrame, daily: pd.DataFrame, mature: pd.Series) -> pd.DataFrame:
    """Every creative with a mature_date: its maturity-window totals (launch <= date < mature_date).

    Only the maturity window, never lifetime totals: a peer counts for a decision on day t when
    mature_date <= t, and everything summed here is dated before mature_date, hence before t.
    """
    frame = base.assign(mature_date=mature.to_numpy()).dropna(subset=["mature_date", "launch", "account_id"])
    if frame.empty:
        return frame.assign(**{f"y_{c}": pd.Series(dtype=float) for c in ("impressions", "clicks", "conversions")})
    totals = maturity_window_outcomes(frame.rename(columns={"launch": "launch_date"}), daily)
    totals = totals.rename(columns={c: f"y_{c}" for c in ("impressions", "clicks", "conversions", "spend", "revenue")})
    out = frame.merge(totals, on="creative_id", how="left")
    return out.loc[out["y_impressions"] > 0].reset_index(drop=True)


def _forecast_lookup(predictions: pd.DataFrame | None) -> dict[str, float]:
    """creative_id -> prelaunch forecast of the composite (marts.predictions, kpi 'score')."""
    if predictions is None or predictions.empty or not {"creative_id", "kpi", "forecast"} <= set(predictions.columns):
        return {}
    rows = predictions.loc[predictions["kpi"].astype(str) == "score", ["creative_id", "forecast"]]
    rows = rows.assign(forecast=pd.to_numeric(rows["forecast"], errors="coerce")).dropna(subset=["forecast"])
    return dict(zip(rows["creative_id"].astype(str), rows["forecast"].astype(float)))


@dataclass(frozen=True)
class GammaPrior:
    """Gamma(shape, rate) over a rate per unit exposure (clicks per impression, conversions per click):
    mean shape / rate; `rate` acts as pseudo-exposure and `shape` as pseudo-events."""

    shape: float
    rate: float


def fit_gamma_prior(events: np.ndarray, exposure: np.ndarray) -> GammaPrior:
    """Gamma prior of a rate across creatives, by method of moments with Poisson noise removed.

    The mean is the unweighted mean of the creatives' rates (each creative is one draw of the
    account's creative quality; an exposure-weighted mean would favour the creatives the platform
    already picked). The between-creative variance is the variance of the rates minus their mean
    Poisson variance (mean / exposure). shape = mean^2 / variance is clipped to [1, 1e6]: at least
    as spread as an exponential, at most a point mass. Gamma-Poisson rather than Beta-binomial
    because conversions may exceed clicks (view-through and repeat purchases, docs/input-contract.md).
    """
    ok = exposure > 0
    if not ok.any():
        return GammaPrior(_MIN_SHAPE, _MIN_SHAPE)
    rate = events[ok] / exposure[ok]
    mean = float(max(rate.mean(), 1e-9))
    between = float(rate.var()) - float(np.mean(mean / exposure[ok])) if ok.sum() > 1 else 0.0
    shape = mean ** 2 / between if between > 0 else _MAX_SHAPE
    shape = float(np.clip(shape, _MIN_SHAPE, _MAX_SHAPE))
    return GammaPrior(shape, shape / mean)


def log_rate_moments(events: np.ndarray | float, exposure: np.ndarray | float,
                     prior: GammaPrior) -> tuple[np.ndarray, np.ndarray]:
    """Posterior mean and variance of log(rate) under Gamma(shape + events, rate + exposure): exact,
    E = digamma(shape') - log(rate'), Var = trigamma(shape')."""
    shape = prior.shape + np.asarray(events, dtype=float)
    rate = prior.rate + np.asarray(exposure, dtype=float)
    return special.digamma(shape) - np.log(rate), special.polygamma(1, shape)


# -- the judgement -----------------------------------------------------------------------------------
def _judge(base: pd.DataFrame, plan: pd.DataFrame, cum: _Cumulative, peers: pd.DataFrame,
           forecast: dict[str, float], params: EarlyDecisionParams) -> pd.DataFrame:
    """p_bottom, p_top, expected outcome, n_peers, prior source and any WAIT reason per judged creative."""
    judged = plan.index[plan["window_days"].notna()]
    if len(judged) == 0:
        return pd.DataFrame(columns=list(_Judgement.__dataclass_fields__))
    decided_at = base.loc[judged, "launch"] + pd.to_timedelta(plan.loc[judged, "window_days"], unit="D")
    groups = pd.DataFrame({"decided_at": decided_at, "n": plan.loc[judged, "window_days"].astype(int)})
    peer_pos = peers["creative_id"].map(cum.index).to_numpy(int) if len(peers) else np.zeros(0, int)
    results: dict[int, dict] = {}
    for (day, n), members in groups.groupby(["decided_at", "n"], sort=True):
        # As of `day`: peers whose maturity window (and n-day early window) ended before it.
        eligible = ((peers["mature_date"] <= day) & (peers["launch"] + pd.Timedelta(days=int(n)) <= day)).to_numpy() \
            if len(peers) else np.zeros(0, bool)
        model = _CalibratedModel.fit(peers.loc[eligible], peer_pos[eligible], cum, int(n), forecast)
        for row in members.index:
            results[row] = asdict(model.judge(base.loc[row], cum, int(n), forecast, day, params))
    return pd.DataFrame.from_dict(results, orient="index")


@dataclass(frozen=True)
class _Judgement:
    """The posterior of one judged creative, or why it must WAIT (wait_reason set, probabilities NaN)."""

    n_peers: int
    expected_outcome: float = np.nan
    p_bottom: float = np.nan
    p_top: float = np.nan
    prior_source: str | None = None
    wait_reason: str | None = None


@dataclass
class _AccountState:
    """As-of facts of one account on one decision day: priors, centring means, outcome quantiles."""

    ctr_prior: GammaPrior
    cvr_prior: GammaPrior
    n_peers: int
    y_values: np.ndarray
    y_mean: float
    theta_mean: float
    forecast_y_mean: float = np.nan
    forecast_theta_mean: float = np.nan
    forecast_mean: float = np.nan
    n_forecast: int = 0


@dataclass
class _Fit:
    """A pooled within-account regression of outcome on early theta (and the forecast)."""

    coef: np.ndarray
    sigma2: float
    n: int


class _CalibratedModel:
    """Everything a decision on one day with an n-day window needs, fitted on that day's peers only."""

    def __init__(self, accounts: dict[str, _AccountState], plain: _Fit | None, with_forecast: _Fit | None,
                 n_history: int) -> None:
        self.accounts = accounts
        self.plain = plain
        self.with_forecast = with_forecast
        self.n_history = n_history

    @classmethod
    def fit(cls, peers: pd.DataFrame, pos: np.ndarray, cum: _Cumulative, n: int,
            forecast: dict[str, float]) -> _CalibratedModel:
        if peers.empty:
            return cls({}, None, None, 0)
        imp, clk, conv = cum.impressions[pos, n], cum.clicks[pos, n], cum.conversions[pos, n]
        acc = peers["account_id"].to_numpy(object)
        prior_ctr, prior_cvr = pooled_priors(peers["y_impressions"].to_numpy(float), peers["y_clicks"].to_numpy(float),
                                             peers["y_conversions"].to_numpy(float), acc)
        y = outcome_score(peers["y_impressions"], peers["y_clicks"], peers["y_conversions"], prior_ctr, prior_cvr)
        f = peers["creative_id"].map(forecast).to_numpy(float) if forecast else np.full(len(peers), np.nan)
        theta = np.zeros(len(peers))
        theta_var = np.zeros(len(peers))
        accounts: dict[str, _AccountState] = {}
        for account in pd.unique(acc):
            rows = acc == account
            ctr_prior = fit_gamma_prior(clk[rows], imp[rows])
            cvr_prior = fit_gamma_prior(conv[rows], clk[rows])
            m1, v1 = log_rate_moments(clk[rows], imp[rows], ctr_prior)
            m2, v2 = log_rate_moments(conv[rows], clk[rows], cvr_prior)
            theta[rows], theta_var[rows] = m1 + m2, v1 + v2
            has_f = rows & np.isfinite(f)
            accounts[account] = _AccountState(
                ctr_prior=ctr_prior, cvr_prior=cvr_prior, n_peers=int(rows.sum()), y_values=y[rows],
                y_mean=float(y[rows].mean()), theta_mean=float(theta[rows].mean()),
                forecast_y_mean=float(y[has_f].mean()) if has_f.any() else np.nan,
                forecast_theta_mean=float(theta[has_f].mean()) if has_f.any() else np.nan,
                forecast_mean=float(f[has_f].mean()) if has_f.any() else np.nan, n_forecast=int(has_f.sum()))
        plain = _fit_within(y, [theta], acc, theta_var)
        with_f = None
        usable = np.isfinite(f) & np.array([accounts[a].n_forecast >= _MIN_FORECAST_PEERS for a in acc], dtype=bool)
        if usable.sum() >= 3:
            with_f = _fit_within(y[usable], [theta[usable], f[usable]], acc[usable], theta_var[usable])
        return cls(accounts, plain, with_f, len(peers))

    def judge(self, creative: pd.Series, cum: _Cumulative, n: int, forecast: dict[str, float],
              day: pd.Timestamp, params: EarlyDecisionParams) -> _Judgement:
        """p_bottom / p_top of one creative judged on `day` on its first n days (or why it waits)."""
        account = None if pd.isna(creative["account_id"]) else str(creative["account_id"])
        cid = creative["creative_id"]
        state = self.accounts.get(account)
        n_peers = state.n_peers if state else 0
        when = day.date()
        if account is None:
            return _Judgement(0, wait_reason=f"creative {cid} has no account_id, so there is no account to rank it "
                                             "in: WAIT")
        if n_peers < params.min_peers:
            return _Judgement(n_peers, wait_reason=(
                f"only {n_peers} matured creatives in {account} before {when} (< {params.min_peers}): "
                "its bottom / top is not defined yet: WAIT"))
        if self.plain is None or self.n_history < params.min_history:
            return _Judgement(n_peers, wait_reason=(
                f"only {self.n_history} matured creatives across all accounts before {when} "
                f"(< {params.min_history}) to calibrate early data against outcomes: WAIT"))
        i = cum.index[cid]
        m1, v1 = log_rate_moments(cum.clicks[i, n], cum.impressions[i, n], state.ctr_prior)
        m2, v2 = log_rate_moments(cum.conversions[i, n], cum.clicks[i, n], state.cvr_prior)
        theta, theta_var = float(m1 + m2), float(v1 + v2)
        f = forecast.get(cid, np.nan)
        if self.with_forecast is not None and np.isfinite(f) and state.n_forecast >= _MIN_FORECAST_PEERS:
            fit, source = self.with_forecast, PRIOR_WITH_FORECAST
            mean = (state.forecast_y_mean + fit.coef[0] * (theta - state.forecast_theta_mean)
                    + fit.coef[1] * (f - state.forecast_mean))
        else:
            fit, source = self.plain, PRIOR_ACCOUNT
            mean = state.y_mean + fit.coef[0] * (theta - state.theta_mean)
        sd = float(np.sqrt(fit.coef[0] ** 2 * theta_var + fit.sigma2))
        low_cut = float(np.quantile(state.y_values, params.bottom_share))
        high_cut = float(np.quantile(state.y_values, 1 - params.top_share))
        p_bottom = float(np.clip(stats.norm.cdf((low_cut - mean) / sd), 0.0, 1.0))
        p_top = float(np.clip(stats.norm.sf((high_cut - mean) / sd), 0.0, 1.0))
        return _Judgement(n_peers, float(mean), p_bottom, p_top, source)


def _fit_within(y: np.ndarray, covariates: list[np.ndarray], accounts: np.ndarray, theta_var: np.ndarray) -> _Fit | None:
    """Least squares of y on the covariates, all centred within account; sigma^2 net of theta's noise.

    The first covariate is theta (a posterior mean): the residual variance holds
    coef_theta^2 x mean Var(theta | data) of the peers' own estimation error, removed here so the
    creative's own Var(theta | data) is not counted twice (floored at _MIN_RESIDUAL_SHARE).
    """
    codes, groups = pd.factorize(pd.Series(accounts, dtype="object"))
    counts = np.bincount(codes, minlength=len(groups)).astype(float)

    def centred(values: np.ndarray) -> np.ndarray:
        return values - (np.bincount(codes, weights=values, minlength=len(groups)) / counts)[codes]

    X = np.column_stack([centred(np.asarray(x, float)) for x in covariates])
    Y = centred(np.asarray(y, float))
    dof = len(Y) - X.shape[1] - len(groups)
    if dof < 2 or not np.isfinite(X).all() or not np.isfinite(Y).all() or np.allclose(X, 0):
        return None
    coef, *_ = np.linalg.lstsq(X, Y, rcond=None)
    resid = Y - X @ coef
    raw = float(resid @ resid) / dof
    sigma2 = max(raw - coef[0] ** 2 * float(np.mean(theta_var)), _MIN_RESIDUAL_SHARE * raw)
    return _Fit(coef=coef, sigma2=sigma2, n=len(Y))


# -- the table ---------------------------------------------------------------------------------------
def _assemble(base: pd.DataFrame, plan: pd.DataFrame, judged: pd.DataFrame, cum: _Cumulative,
              forecast: dict[str, float], params: EarlyDecisionParams) -> pd.DataFrame:
    n_rows = len(base)
    window = plan["window_days"].to_numpy(float)
    # The early totals of the row: the judged window, else whatever days are in (a WAIT row says what it has).
    days = np.where(np.isfinite(window), window, plan["available_days"].to_numpy(float)).astype(int)
    pos = np.arange(n_rows)
    out = pd.DataFrame({
        "creative_id": base["creative_id"], "account_id": base["account_id"],
        "launch_date": [None if pd.isna(v) else v.date() for v in base["launch"]],
        "decided_at": [None if not np.isfinite(w) else (launch + pd.Timedelta(days=int(w))).date()
                       for launch, w in zip(base["launch"], window)],
        "window_days": pd.array([int(w) if np.isfinite(w) else pd.NA for w in window], dtype="Int64"),
        "early_impressions": np.round(cum.impressions[pos, days]),
        "early_clicks": np.round(cum.clicks[pos, days]),
        "early_conversions": np.round(cum.conversions[pos, days]),
        "early_spend": cum.spend[pos, days],
    })
    out["early_ctr"] = metrics.ctr(out["early_clicks"], out["early_impressions"])
    out["early_cvr"] = metrics.cvr(out["early_conversions"], out["early_clicks"])
    out["prelaunch_forecast"] = out["creative_id"].map(forecast).astype("float64") if forecast else np.nan
    for c in ("n_peers", "expected_outcome", "p_bottom", "p_top", "prior_source"):
        out[c] = judged[c].reindex(out.index) if len(judged) else np.nan
    reasons = plan["wait_reason"].copy()
    if len(judged):
        reasons.loc[judged.index] = judged["wait_reason"]
    decision, reason = [], []
    for i in range(n_rows):
        if reasons.iat[i] is not None and not (isinstance(reasons.iat[i], float) and np.isnan(reasons.iat[i])):
            decision.append(WAIT)
            reason.append(reasons.iat[i])
            continue
        d, text = _call(out.iloc[i], params)
        decision.append(d)
        reason.append(text)
    out["decision"] = decision
    out["reason"] = reason
    waiting = out["decision"] == WAIT
    out.loc[waiting, ["expected_outcome", "p_bottom", "p_top"]] = np.nan
    out.loc[waiting, "prior_source"] = None
    return out


def _call(row: pd.Series, params: EarlyDecisionParams) -> tuple[str, str]:
    """The decision and its sentence for a judged creative."""
    p_bottom, p_top = float(row["p_bottom"]), float(row["p_top"])
    evidence = (f"after {count_of(row['window_days'], 'day')}, {count_of(row['early_impressions'], 'impression')}, "
                f"{count_of(row['early_clicks'], 'click')}, {count_of(row['early_conversions'], 'conversion')}; vs "
                f"{count_of(row['n_peers'], 'matured creative')} of {row['account_id']}"
                + (", with the prelaunch forecast" if row["prior_source"] == PRIOR_WITH_FORECAST else ""))
    if p_bottom >= params.kill_threshold:
        return KILL, f"p({params.bottom_label()}) = {p_bottom:.2f} {evidence}: KILL"
    if p_top >= params.scale_threshold:
        return SCALE, f"p({params.top_label()}) = {p_top:.2f} {evidence}: SCALE"
    return KEEP, (f"p({params.bottom_label()}) = {below(p_bottom, params.kill_threshold)} "
                  f"(< {params.kill_threshold:.2f}), p({params.top_label()}) = {below(p_top, params.scale_threshold)} "
                  f"(< {params.scale_threshold:.2f}) {evidence}: KEEP")


def _with_naive_percentile(out: pd.DataFrame, cum: _Cumulative) -> pd.DataFrame:
    """As-of percentile of the early CTR among the account's creatives whose same-length window had
    ended by the decision date (share below, ties half): the naive rule's input, decision-time only."""
    pct = np.full(len(out), np.nan)
    launch = pd.to_datetime(pd.Series(out["launch_date"]), errors="coerce").to_numpy("datetime64[D]")
    decided = pd.to_datetime(pd.Series(out["decided_at"]), errors="coerce").to_numpy("datetime64[D]")
    window = out["window_days"].to_numpy(float, na_value=np.nan)
    own_ctr = out["early_ctr"].to_numpy(float)
    pos = out["creative_id"].map(cum.index).to_numpy(int)
    accounts = out["account_id"].to_numpy(object)
    for account in pd.unique(accounts[~pd.isna(decided)]):
        if pd.isna(account):
            continue
        members = np.flatnonzero((accounts == account) & ~np.isnat(launch))
        for i in members[~np.isnat(decided[members])]:
            n = int(window[i])
            ctr = metrics.ctr(cum.clicks[pos[members], n], cum.impressions[pos[members], n])
            peers = (launch[members] + np.timedelta64(n, "D") <= decided[i]) & (members != i) & np.isfinite(ctr)
            if not peers.any() or not np.isfinite(own_ctr[i]):
                continue
            peer_ctr = ctr[peers]
            pct[i] = float(((peer_ctr < own_ctr[i]).sum() + 0.5 * (peer_ctr == own_ctr[i]).sum()) / len(peer_ctr))
    out["early_ctr_percentile"] = np.clip(pct, 0.0, 1.0)
    return out


def _with_realised(out: pd.DataFrame, outcomes: pd.DataFrame, params: EarlyDecisionParams) -> pd.DataFrame:
    """Evaluation labels (never decision inputs): lifetime composite of matured creatives, its rank
    share among the account's matured creatives (0 = worst, 1 = best; mid-rank), bottom / top by the
    policy's shares, lifetime spend and the spend after the decision date."""
    for c in REALISED_COLUMNS:
        out[c] = np.nan
    need = {"creative_id", "impressions", "clicks", "conversions", "spend", "is_mature"}
    if outcomes is None or outcomes.empty or not need <= set(outcomes.columns):
        return out
    life = outcomes.copy()
    life["creative_id"] = life["creative_id"].astype(str)
    life = life.drop_duplicates("creative_id", keep="last")
    life = out[["creative_id", "account_id"]].merge(life[list(need)], on="creative_id", how="inner")
    life = life.loc[life["is_mature"].fillna(False).astype(bool) & life["account_id"].notna()
                    & (pd.to_numeric(life["impressions"], errors="coerce") > 0)]
    if life.empty:
        return out
    imp, clk, conv = (life[c].to_numpy(float) for c in ("impressions", "clicks", "conversions"))
    prior_ctr, prior_cvr = pooled_priors(imp, clk, conv, life["account_id"].to_numpy(object))
    life["score"] = outcome_score(imp, clk, conv, prior_ctr, prior_cvr)
    grouped = life.groupby("account_id")["score"]
    size = grouped.transform("size").to_numpy(float)
    rank = grouped.rank(method="average").to_numpy(float)
    life["rank_share"] = np.where(size >= 2, (rank - 0.5) / size, np.nan)
    life = life.set_index("creative_id")
    ids = out["creative_id"]
    out["realised_outcome"] = ids.map(life["score"]).astype("float64")
    share = ids.map(life["rank_share"]).astype("float64")
    out["realised_rank_share"] = share
    known = share.notna()
    out["realised_bottom"] = pd.array(np.where(known, share < params.bottom_share, pd.NA), dtype="boolean")
    out["realised_top"] = pd.array(np.where(known, share >= 1 - params.top_share, pd.NA), dtype="boolean")
    lifetime_spend = ids.map(life["spend"]).astype("float64")
    out["realised_lifetime_spend"] = lifetime_spend
    decided = out["decided_at"].notna()
    out["realised_post_window_spend"] = np.where(decided & lifetime_spend.notna(),
                                                 np.maximum(lifetime_spend - out["early_spend"], 0.0), np.nan)
    return out


def _typed(out: pd.DataFrame) -> pd.DataFrame:
    out = out[list(DECISION_COLUMNS)].copy()
    for c, t in DECISION_COLUMNS.items():
        if t == "Int64":
            out[c] = pd.array([pd.NA if pd.isna(v) else round(float(v)) for v in out[c]], dtype="Int64")
        elif t == "float64":
            out[c] = pd.to_numeric(out[c], errors="coerce").astype("float64")
        elif t == "boolean":
            out[c] = out[c].astype("boolean")
        else:
            out[c] = out[c].astype("object").where(out[c].notna(), None)
    for c in ("p_bottom", "p_top", "realised_rank_share", "early_ctr_percentile"):
        out[c] = out[c].clip(0.0, 1.0)
    return out.sort_values("creative_id").reset_index(drop=True)


# -- evaluation ----------------------------------------------------------------------------------------
def _evaluable(decisions: pd.DataFrame) -> pd.DataFrame:
    frame = decisions.loc[(decisions["decision"] != WAIT) & decisions["realised_rank_share"].notna()
                          & decisions["realised_post_window_spend"].notna()].copy()
    frame["truly_bottom"] = frame["realised_bottom"].astype(bool).to_numpy()
    frame["truly_top"] = frame["realised_top"].astype(bool).to_numpy()
    return frame.reset_index(drop=True)


def _policy_metrics(name: str, frame: pd.DataFrame, decision: np.ndarray) -> dict:
    kill, scale = decision == KILL, decision == SCALE
    bottom, top = frame["truly_bottom"].to_numpy(bool), frame["truly_top"].to_numpy(bool)
    spend = frame["realised_post_window_spend"].to_numpy(float)
    return _metrics_row(name, n=len(frame), n_kill=float(kill.sum()), n_scale=float(scale.sum()),
                        kill_bottom=float((kill & bottom).sum()), scale_top=float((scale & top).sum()),
                        n_bottom=float(bottom.sum()), n_top=float(top.sum()), total_spend=float(spend.sum()),
                        spend_freed=float(spend[kill].sum()), spend_saved=float(spend[kill & bottom].sum()),
                        spend_lost=float(spend[kill & top].sum()))


def _matched_by_early_ctr(frame: pd.DataFrame) -> np.ndarray:
    """Per account: the policy's KILL count to the lowest early CTRs, its SCALE count to the highest."""
    out = np.full(len(frame), KEEP, dtype=object)
    for _, g in frame.groupby("account_id"):
        order = g.sort_values(["early_ctr", "creative_id"], na_position="first").index.to_numpy()
        n_kill = int((g["decision"] == KILL).sum())
        n_scale = int((g["decision"] == SCALE).sum())
        out[order[:n_kill]] = KILL
        if n_scale:
            out[order[len(order) - n_scale:]] = SCALE
    return out


def _random_metrics(frame: pd.DataFrame) -> dict:
    """Expected metrics of drawing, in each account, the policy's KILLs and SCALEs uniformly at random."""
    names = ("n_kill", "n_scale", "kill_bottom", "scale_top", "n_bottom", "n_top", "total_spend", "spend_freed",
             "spend_saved", "spend_lost")
    totals = dict.fromkeys(names, 0.0)
    for _, g in frame.groupby("account_id"):
        size = len(g)
        k = float((g["decision"] == KILL).sum()) / size
        s = float((g["decision"] == SCALE).sum()) / size
        bottom, top = g["truly_bottom"].to_numpy(bool), g["truly_top"].to_numpy(bool)
        spend = g["realised_post_window_spend"].to_numpy(float)
        totals["n_kill"] += k * size
        totals["n_scale"] += s * size
        totals["kill_bottom"] += k * bottom.sum()
        totals["scale_top"] += s * top.sum()
        totals["n_bottom"] += bottom.sum()
        totals["n_top"] += top.sum()
        totals["total_spend"] += spend.sum()
        totals["spend_freed"] += k * spend.sum()
        totals["spend_saved"] += k * spend[bottom].sum()
        totals["spend_lost"] += k * spend[top].sum()
    return _metrics_row(RANDOM, n=len(frame), **totals)


def _metrics_row(name: str, n: int, n_kill: float, n_scale: float, kill_bottom: float, scale_top: float,
                 n_bottom: float, n_top: float, total_spend: float, spend_freed: float, spend_saved: float,
                 spend_lost: float) -> dict:
    scale_precision = _ratio(scale_top, n_scale)
    return {
        "policy": name, "n_evaluated": n, "n_kill": n_kill, "n_scale": n_scale,
        "share_acted": _ratio(n_kill + n_scale, n), "kill_precision": _ratio(kill_bottom, n_kill),
        "kill_recall": _ratio(kill_bottom, n_bottom), "scale_precision": scale_precision,
        "scale_recall": _ratio(scale_top, n_top), "post_window_spend": total_spend, "spend_freed": spend_freed,
        "spend_saved": spend_saved, "spend_lost": spend_lost, "spend_saved_share": _ratio(spend_saved, total_spend),
        "spend_moved_to_top": spend_freed * scale_precision if np.isfinite(scale_precision) else np.nan,
    }


def _ratio(part: float, whole: float) -> float:
    return float(metrics.share(part, whole))


def _int(value: float) -> str:
    return f"{round(float(value)):,}"


def _pct(share: float) -> str:
    return f"{share * 100:g} %"


__all__ = [
    "DECISIONS",
    "DECISION_COLUMNS",
    "EVALUATION_COLUMNS",
    "REALISED_COLUMNS",
    "EarlyDecisionParams",
    "GammaPrior",
    "decide",
    "empty_decisions",
    "evaluate",
    "evaluation_markdown",
    "fit_gamma_prior",
    "log_rate_moments",
    "wait_kind",
]

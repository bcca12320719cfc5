"""The early window: which metric rows an early feature may use, and verification by recomputation.

Day 0 is `launch_date`. The early window of N days is days 0 .. N-1, i.e. dates
`launch_date <= date <= launch_date + N - 1`; early features are known at `launch_date + N`.
A creative gets early features only when the window is complete: `launch_date + N - 1` is on or
before the last metric date in `raw.daily_metrics` (otherwise its "first 3 days" would silently be
fewer days).

`verify_early_window` recomputes the KPIs from `raw.daily_metrics` with the allowed window only and
compares them with a stored `features.early`, so a table built with the wrong window (a metric row
dated on or after launch + N joined in) is caught without trusting any column of that table.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from creative_dag import metrics

SUM_COLUMNS = ("impressions", "clicks", "spend", "conversions", "revenue")
EARLY_PREFIX = "early_"
EARLY_KPI_COLUMNS: tuple[str, ...] = (
    "early_impressions", "early_clicks", "early_spend", "early_conversions", "early_revenue",
    "early_ctr", "early_cvr", "early_cpa", "early_roas",
)
EARLY_COUNT_COLUMNS = ("early_impressions", "early_clicks", "early_conversions")
EARLY_MONEY_COLUMNS = ("early_spend", "early_revenue")
EARLY_UNIT_RATE_COLUMNS = ("early_ctr",)  # in [0, 1]: clicks never exceed impressions
# >= 0, unbounded: CVR too, as view-through and multi-purchase attribution give more conversions than clicks
EARLY_POSITIVE_RATE_COLUMNS = ("early_cvr", "early_cpa", "early_roas")
DEFAULT_EARLY_DAYS = 3

# Window comparison tolerance: stored and recomputed values come from the same formulas, so
# anything beyond float round-off is a different set of metric rows.
RTOL = 1e-9
ATOL = 1e-9
ROW_KPI = "(row)"


def to_day(values: pd.Series) -> pd.Series:
    """Dates/timestamps/ISO strings -> datetime64[ns] at midnight (NaT where missing)."""
    return pd.to_datetime(values, errors="coerce").astype("datetime64[ns]").dt.normalize()


def last_metric_date(daily_metrics: pd.DataFrame) -> pd.Timestamp | None:
    """The last date any metric row exists for (the data's horizon), or None when there are none."""
    if daily_metrics.empty:
        return None
    last = to_day(daily_metrics["date"]).max()
    return None if pd.isna(last) else pd.Timestamp(last)


def window_complete(launch_dates: pd.Series, n_days: int, horizon: pd.Timestamp | None) -> pd.Series:
    """True where days 0 .. n_days-1 after launch are all on or before `horizon`."""
    launch = to_day(launch_dates)
    if horizon is None:
        return pd.Series(False, index=launch_dates.index)
    end = launch + pd.Timedelta(days=n_days - 1)
    return (end <= horizon).fillna(False).astype(bool)


def window_totals(creatives: pd.DataFrame, daily_metrics: pd.DataFrame,
                  start_day: int = 0, end_day: int | None = None) -> pd.DataFrame:
    """Sum the metric rows dated launch_date + start_day .. launch_date + end_day (inclusive).

    `end_day=None` means no upper bound. `creatives` needs creative_id and launch_date;
    `daily_metrics` needs creative_id, date and SUM_COLUMNS. Returns one row per creative of
    `creatives` (zeros where nothing was delivered in the window) with SUM_COLUMNS and rates
    ctr, cvr, roas, cpa (NaN where the denominator is 0).
    """
    keys = creatives[["creative_id", "launch_date"]].copy()
    keys["launch_date"] = to_day(keys["launch_date"])
    rows = daily_metrics[["creative_id", "date", *SUM_COLUMNS]].copy()
    rows["date"] = to_day(rows["date"])
    rows = rows.merge(keys, on="creative_id", how="inner")
    offset = (rows["date"] - rows["launch_date"]).dt.days
    in_window = offset >= start_day
    if end_day is not None:
        in_window &= offset <= end_day
    sums = (rows.loc[in_window, ["creative_id", *SUM_COLUMNS]]
            .astype({c: "float64" for c in SUM_COLUMNS})
            .groupby("creative_id", sort=False).sum())
    out = keys[["creative_id"]].merge(sums, left_on="creative_id", right_index=True, how="left")
    for c in SUM_COLUMNS:
        out[c] = out[c].fillna(0.0)
    out = metrics.add_rate_columns(out)
    return out.reset_index(drop=True)


def early_kpis(creatives: pd.DataFrame, daily_metrics: pd.DataFrame,
               n_days: int = DEFAULT_EARLY_DAYS) -> pd.DataFrame:
    """Early KPIs for the creatives whose N-day window is complete.

    Returns creative_id + EARLY_KPI_COLUMNS; counts int64, money float64, rates float64 (NaN when
    the denominator is 0). Creatives launched too recently (or without launch_date) are absent.
    """
    if n_days < 1:
        raise ValueError(f"early window must be at least 1 day, got n_days={n_days}")
    horizon = last_metric_date(daily_metrics)
    eligible = creatives.loc[window_complete(creatives["launch_date"], n_days, horizon),
                             ["creative_id", "launch_date"]]
    totals = window_totals(eligible, daily_metrics, 0, n_days - 1)
    out = pd.DataFrame({"creative_id": totals["creative_id"].astype(str)})
    for c in SUM_COLUMNS:
        out[EARLY_PREFIX + c] = totals[c]
    for c in ("ctr", "cvr", "cpa", "roas"):
        out[EARLY_PREFIX + c] = totals[c].astype("float64")
    for c in EARLY_COUNT_COLUMNS:
        out[c] = out[c].round().astype("int64")
    return out[["creative_id", *EARLY_KPI_COLUMNS]]


@dataclass(frozen=True)
class EarlyWindowReport:
    """Result of comparing a stored features.early with the recomputation from raw metrics.

    `reconciliation`: one row per (creative_id, kpi) of matched creatives plus one `(row)` row per
    membership problem; columns creative_id, kpi, stored, recomputed, matches (bool), issue (str).
    `offenders`: the rows with matches == False, with a `diagnosis` saying which window would
    reproduce the stored values when one does (e.g. "matches a 4-day window").
    """

    n_days: int
    reconciliation: pd.DataFrame
    offenders: pd.DataFrame

    @property
    def ok(self) -> bool:
        return self.offenders.empty


def verify_early_window(early_table: pd.DataFrame, creatives: pd.DataFrame,
                        daily_metrics: pd.DataFrame, n_days: int = DEFAULT_EARLY_DAYS,
                        kpis: tuple[str, ...] = EARLY_KPI_COLUMNS) -> EarlyWindowReport:
    """Recompute the early KPIs from raw metrics with only the allowed window and compare.

    Membership problems are reported too: a row for a creative whose window is not complete
    (its KPIs would need metrics that do not exist yet) and an eligible creative with no row.
    """
    expected = early_kpis(creatives, daily_metrics, n_days).set_index("creative_id")
    stored = early_table.copy()
    stored["creative_id"] = stored["creative_id"].astype(str)
    stored = stored.set_index("creative_id")
    present = [k for k in kpis if k in stored.columns]
    parts = []
    common = stored.index.intersection(expected.index)
    for k in present:
        s = pd.to_numeric(stored.loc[common, k], errors="coerce").astype("float64").to_numpy()
        e = expected.loc[common, k].astype("float64").to_numpy()
        both_nan = np.isnan(s) & np.isnan(e)
        close = np.isclose(s, e, rtol=RTOL, atol=ATOL) | both_nan
        parts.append(pd.DataFrame({
            "creative_id": common.to_numpy(), "kpi": k, "stored": s, "recomputed": e,
            "matches": close,
            "issue": np.where(close, "", f"differs from the recomputation over days 0..{n_days - 1}"),
        }))
    for k in kpis:
        if k not in stored.columns:
            parts.append(pd.DataFrame([{"creative_id": "", "kpi": k, "stored": np.nan,
                                        "recomputed": np.nan, "matches": False,
                                        "issue": "column missing from features.early"}]))
    extra = stored.index.difference(expected.index)
    if len(extra):
        parts.append(pd.DataFrame({
            "creative_id": extra.to_numpy(), "kpi": ROW_KPI, "stored": np.nan, "recomputed": np.nan,
            "matches": False,
            "issue": f"row present but the {n_days}-day window is not complete in raw.daily_metrics "
                     "(or the creative is not in raw.creatives)",
        }))
    missing = expected.index.difference(stored.index)
    if len(missing):
        parts.append(pd.DataFrame({
            "creative_id": missing.to_numpy(), "kpi": ROW_KPI, "stored": np.nan, "recomputed": np.nan,
            "matches": False, "issue": f"{n_days}-day window complete but no row in features.early",
        }))
    columns = ["creative_id", "kpi", "stored", "recomputed", "matches", "issue"]
    reconciliation = (pd.concat(parts, ignore_index=True) if parts
                      else pd.DataFrame(columns=columns))[columns]
    reconciliation["matches"] = reconciliation["matches"].astype(bool)
    offenders = reconciliation.loc[~reconciliation["matches"]].copy()
    offenders["diagnosis"] = _diagnose(offenders, stored, creatives, daily_metrics, n_days)
    return EarlyWindowReport(n_days=n_days, reconciliation=reconciliation,
                             offenders=offenders.reset_index(drop=True))


def _diagnose(offenders: pd.DataFrame, stored: pd.DataFrame, creatives: pd.DataFrame,
              daily_metrics: pd.DataFrame, n_days: int, max_extra_days: int = 14,
              max_creatives: int = 50) -> list[str]:
    """For KPI mismatches, find which window reproduces the stored sums (why: tells the reader
    whether days after the window were joined in, or the whole life was used). Only the first
    `max_creatives` offending creatives are diagnosed, to bound the cost."""
    out = [""] * len(offenders)
    sum_kpis = {f"{EARLY_PREFIX}{c}" for c in SUM_COLUMNS}
    value_rows = offenders["kpi"].isin(sum_kpis).to_numpy()
    if not value_rows.any():
        return out
    ids = list(pd.unique(offenders.loc[value_rows, "creative_id"]))[:max_creatives]
    subset = creatives.loc[creatives["creative_id"].astype(str).isin(ids)].assign(
        creative_id=lambda f: f["creative_id"].astype(str))
    metrics_subset = daily_metrics.loc[daily_metrics["creative_id"].astype(str).isin(ids)].assign(
        creative_id=lambda f: f["creative_id"].astype(str))
    candidates: list[tuple[str, pd.DataFrame]] = []
    for extra in range(1, max_extra_days + 1):
        text = (f"matches a {n_days + extra}-day window (days 0..{n_days + extra - 1}): "
                f"metrics dated on or after launch + {n_days} were used")
        candidates.append((text, window_totals(subset, metrics_subset, 0, n_days - 1 + extra)))
    candidates.append(("matches the whole life of the creative: lifecycle totals were used",
                       window_totals(subset, metrics_subset, 0, None)))
    candidates.append(("matches the whole life including rows before launch",
                       window_totals(subset, metrics_subset, -10_000, None)))
    indexed = [(text, totals.set_index("creative_id")) for text, totals in candidates]
    wanted = set(ids)
    for pos, (cid, kpi, value) in enumerate(zip(offenders["creative_id"], offenders["kpi"], offenders["stored"])):
        if not value_rows[pos] or cid not in wanted or not np.isfinite(value):
            continue
        base = kpi[len(EARLY_PREFIX):]
        out[pos] = "matches no contiguous window from launch"
        for text, totals in indexed:
            if cid in totals.index and np.isclose(float(totals.at[cid, base]), value, rtol=RTOL, atol=ATOL):
                out[pos] = text
                break
    return out

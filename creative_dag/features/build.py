"""Stage-filtered feature tables and lifecycle labels (features.prelaunch / .early / .outcomes).

Plain pandas in, pandas out; no I/O. Date columns come out as `datetime.date` objects so the
warehouse stores them as DATE, like raw.creatives.launch_date.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import pandas as pd

from creative_dag import metrics
from creative_dag.contract import KNOWN_LEAKY_EXPORT_COLUMNS
from creative_dag.features.early_window import (
    DEFAULT_EARLY_DAYS,
    EARLY_KPI_COLUMNS,
    SUM_COLUMNS,
    early_kpis,
    last_metric_date,
    to_day,
    window_totals,
)
from creative_dag.features.registry import (
    EARLY,
    EARLY_STAGES,
    PRELAUNCH_STAGES,
    FeatureRegistry,
)

DEFAULT_MATURITY_DAYS = 14
OUTCOME_COLUMNS: tuple[str, ...] = (
    "creative_id", "account_id", "launch_date",
    "impressions", "clicks", "spend", "conversions", "revenue",
    "ctr", "cvr", "roas", "cpa",
    "days_active", "first_date", "last_date", "mature_date", "is_mature",
)


@dataclass(frozen=True)
class StageSelection:
    """Which columns of raw.creatives a stage table keeps and which it drops (and why)."""

    kept: list[str]
    denied_registered: list[str] = field(default_factory=list)  # registered at a later stage
    denied_unregistered: list[str] = field(default_factory=list)  # no entry: deny by default


def select_columns(columns: list[str], registry: FeatureRegistry,
                   stages: frozenset[str]) -> StageSelection:
    """Keep `columns` whose effective stage is in `stages`; creative_id always comes first.

    Raises when creative_id is missing, since no feature table can be keyed without it.
    """
    if "creative_id" not in columns:
        raise KeyError("raw.creatives has no creative_id column; re-run ingest on a valid creatives file")
    kept = ["creative_id"] + [c for c in registry.allowed(columns, stages) if c != "creative_id"]
    unregistered = [c for c in registry.unregistered(columns) if c != "creative_id"]
    denied = [c for c in columns if c not in kept and c not in unregistered]
    return StageSelection(kept=kept, denied_registered=denied, denied_unregistered=unregistered)


def as_date_objects(values: pd.Series) -> pd.Series:
    """Any date-like column -> object column of datetime.date (None where missing)."""
    days = to_day(values)
    return pd.Series([None if pd.isna(v) else v.date() for v in days], index=values.index, dtype="object")


def build_prelaunch(creatives: pd.DataFrame, registry: FeatureRegistry) -> tuple[pd.DataFrame, StageSelection]:
    """features.prelaunch: one row per creative, id + prelaunch columns only.

    Returns (table sorted by creative_id, the column selection for metadata).
    """
    selection = select_columns(list(creatives.columns), registry, PRELAUNCH_STAGES)
    table = creatives[selection.kept].copy()
    table["creative_id"] = table["creative_id"].astype(str)
    if "launch_date" in table.columns:
        table["launch_date"] = as_date_objects(table["launch_date"])
    return table.sort_values("creative_id").reset_index(drop=True), selection


def build_early(creatives: pd.DataFrame, daily_metrics: pd.DataFrame, registry: FeatureRegistry,
                n_days: int = DEFAULT_EARLY_DAYS) -> tuple[pd.DataFrame, StageSelection]:
    """features.early: id + prelaunch + early-registered creative columns + early KPIs.

    Rows only for creatives whose first `n_days` days are all on or before the last metric date.
    KPIs come from raw.daily_metrics dated launch_date .. launch_date + n_days - 1 (see
    early_window). An early KPI name arriving as a raw column is dropped: ours is recomputed.
    """
    if "launch_date" not in creatives.columns:
        raise KeyError("raw.creatives has no launch_date column; the early window cannot be placed")
    raw_cols = [c for c in creatives.columns if c not in EARLY_KPI_COLUMNS]
    selection = select_columns(raw_cols, registry, EARLY_STAGES)
    kpis = early_kpis(creatives, daily_metrics, n_days)
    base = creatives[selection.kept].copy()
    base["creative_id"] = base["creative_id"].astype(str)
    table = base.merge(kpis, on="creative_id", how="inner")
    if "launch_date" in table.columns:
        table["launch_date"] = as_date_objects(table["launch_date"])
    return table.sort_values("creative_id").reset_index(drop=True), selection


def early_stage_columns(creative_columns: list[str], registry: FeatureRegistry) -> list[str]:
    """The exact column set features.early must have for these raw.creatives columns."""
    raw_cols = [c for c in creative_columns if c not in EARLY_KPI_COLUMNS]
    return select_columns(raw_cols, registry, EARLY_STAGES).kept + list(EARLY_KPI_COLUMNS)


def prelaunch_stage_columns(creative_columns: list[str], registry: FeatureRegistry) -> list[str]:
    """The exact column set features.prelaunch must have for these raw.creatives columns."""
    return select_columns(creative_columns, registry, PRELAUNCH_STAGES).kept


def registered_early_raw_columns(creative_columns: list[str], registry: FeatureRegistry) -> list[str]:
    """raw.creatives columns a registry marks `early` (e.g. an export's first-week KPIs)."""
    return [c for c in creative_columns if registry.stage_of(c) == EARLY and registry.is_registered(c)]


def build_outcomes(creatives: pd.DataFrame, daily_metrics: pd.DataFrame,
                   maturity_days: int = DEFAULT_MATURITY_DAYS) -> pd.DataFrame:
    """features.outcomes: lifecycle labels per creative, from raw.daily_metrics only.

    Never from the export's lifetime columns (last_7d_ctr, lifetime_*): those are whatever the
    platform reported at export time, with unknown windows and attribution. Totals over every
    metric row of the creative; rates via creative_dag.metrics (NaN when the denominator is 0);
    days_active / first_date / last_date over days with impressions > 0;
    mature_date = launch_date + maturity_days (the day its outcome counts as known for as-of
    retrieval); is_mature = the maturity window is inside the data (mature_date - 1 <= last date).
    """
    if maturity_days < 1:
        raise ValueError(f"maturity window must be at least 1 day, got {maturity_days}")
    missing = [c for c in ("creative_id", "account_id", "launch_date") if c not in creatives.columns]
    if missing:
        raise KeyError(f"raw.creatives lacks {missing}; re-run ingest on a creatives file with them")
    keys = creatives[["creative_id", "account_id", "launch_date"]].copy()
    keys["creative_id"] = keys["creative_id"].astype(str)
    # Every metric row of the creative counts, including any dated before launch_date.
    totals = _lifetime_totals(keys, daily_metrics)
    rows = daily_metrics[["creative_id", "date", "impressions"]].copy()
    rows["creative_id"] = rows["creative_id"].astype(str)
    rows["date"] = to_day(rows["date"])
    delivered = rows.loc[rows["impressions"].fillna(0) > 0]
    activity = delivered.groupby("creative_id").agg(
        days_active=("date", "nunique"), first_date=("date", "min"), last_date=("date", "max"))
    out = keys.merge(totals, on="creative_id", how="left").merge(
        activity, left_on="creative_id", right_index=True, how="left")
    for c in ("impressions", "clicks", "conversions"):
        out[c] = out[c].fillna(0).round().astype("int64")
    for c in ("spend", "revenue"):
        out[c] = out[c].fillna(0.0).astype("float64")
    out = metrics.add_rate_columns(out)
    out["days_active"] = out["days_active"].fillna(0).astype("int64")
    launch = to_day(out["launch_date"])
    mature = launch + pd.Timedelta(days=maturity_days)
    horizon = last_metric_date(daily_metrics)
    out["is_mature"] = ((mature - pd.Timedelta(days=1)) <= horizon).fillna(False).astype(bool) \
        if horizon is not None else False
    out["mature_date"] = as_date_objects(mature)
    for c in ("launch_date", "first_date", "last_date"):
        out[c] = as_date_objects(out[c])
    cols = [c for c in OUTCOME_COLUMNS if c in out.columns]
    return out[cols].sort_values("creative_id").reset_index(drop=True)


def _lifetime_totals(keys: pd.DataFrame, daily_metrics: pd.DataFrame) -> pd.DataFrame:
    rows = daily_metrics[["creative_id", *SUM_COLUMNS]].astype({c: "float64" for c in SUM_COLUMNS})
    rows["creative_id"] = rows["creative_id"].astype(str)
    sums = rows.groupby("creative_id").sum()
    return keys[["creative_id"]].merge(sums, left_on="creative_id", right_index=True, how="left")


def post_window_outcomes(creatives: pd.DataFrame, daily_metrics: pd.DataFrame,
                         n_days: int = DEFAULT_EARLY_DAYS) -> pd.DataFrame:
    """Outcomes over days n_days .. end of life only (after the early window).

    Why: an honest early KPI overlaps the lifecycle label mechanically (the first N days are part
    of the lifetime), so leakage sniffing of `early` columns compares them with what happened
    after the window. Returns creative_id + SUM_COLUMNS + ctr, cvr, roas, cpa.
    """
    out = window_totals(creatives, daily_metrics, n_days, None)
    out["creative_id"] = out["creative_id"].astype(str)
    return out


def leaky_columns_present(columns: list[str]) -> list[str]:
    """The contract's known leaky export columns found in `columns`."""
    return [c for c in columns if c in KNOWN_LEAKY_EXPORT_COLUMNS]


def horizon_date(daily_metrics: pd.DataFrame) -> dt.date | None:
    """The last metric date as a date (for metadata)."""
    last = last_metric_date(daily_metrics)
    return None if last is None else last.date()


__all__ = [
    "DEFAULT_EARLY_DAYS",
    "DEFAULT_MATURITY_DAYS",
    "EARLY_KPI_COLUMNS",
    "OUTCOME_COLUMNS",
    "StageSelection",
    "as_date_objects",
    "build_early",
    "build_outcomes",
    "build_prelaunch",
    "early_stage_columns",
    "horizon_date",
    "leaky_columns_present",
    "post_window_outcomes",
    "prelaunch_stage_columns",
    "registered_early_raw_columns",
    "select_columns",
]

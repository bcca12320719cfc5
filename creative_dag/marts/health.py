"""Account health per account per week (weeks start on Monday).

Columns (docs/marts.md definitions):
- creative_velocity       creatives launched in the week
- spend                   the account's spend in the week
- freshness_rate          share of the week's spend on creatives at most `fresh_days` - 1 days old
                          on the day of the spend (launched in the 7 days up to that day)
- fatigued_spend_share    share of spend on creatives on/after their fatigue onset
                          (marts.creative_fatigue status fatiguing / fatigued)
- thumb_stop_ratio        3-second video views / impressions over video rows (NaN without video)
- creative_diversity      mean pairwise dissimilarity (1 - fused similarity) of the creatives
                          with spend in the week (NaN when fewer than 2 have vectors)
- winners_spend_share     share of spend on winners (marts.creative_ranking is_winner)
- active_creatives, creative_fatigue_rate_days (account-level, repeated on every week)
- days_covered, complete_week  days of the week inside the export's date range (the first and
                          last weeks are usually partial: their velocity and spend are not
                          comparable with a full week's)
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from creative_dag import metrics
from creative_dag.marts.block_vectors import BlockVectors


def account_health(daily: pd.DataFrame, creatives: pd.DataFrame, fatigue: pd.DataFrame | None = None,
                   ranking: pd.DataFrame | None = None, vectors: BlockVectors | None = None,
                   fatigue_rate: pd.DataFrame | None = None, fresh_days: int = 7) -> pd.DataFrame:
    """One row per account per week; see the module docstring for the columns.

    daily: raw.daily_metrics; creatives: creative_id, account_id, launch_date; fatigue:
    marts.creative_fatigue (creative_id, status, fatigue_onset_date); ranking:
    marts.creative_ranking (creative_id, is_winner); vectors: fused-similarity inputs;
    fatigue_rate: account_fatigue_rate output (account_id, creative_fatigue_rate_days).
    Missing optional inputs leave their columns NaN.
    """
    info = creatives[["creative_id", "account_id", "launch_date"]].copy()
    info["launch_date"] = pd.to_datetime(info["launch_date"])
    d = daily.merge(info, on="creative_id", how="inner")
    d["date"] = pd.to_datetime(d["date"])
    d["week_start"] = d["date"] - pd.to_timedelta(d["date"].dt.weekday, unit="D")
    age = (d["date"] - d["launch_date"]).dt.days
    d["fresh_spend"] = np.where((age >= 0) & (age < fresh_days), d["spend"], 0.0)
    if fatigue is not None and len(fatigue):
        f = fatigue[fatigue["status"].isin(["fatiguing", "fatigued"])][["creative_id", "fatigue_onset_date"]].copy()
        # The CPA rule can mark a creative fatigued without an onset: count its spend from its first day.
        f["onset"] = pd.to_datetime(f["fatigue_onset_date"]).fillna(pd.Timestamp.min)
        d = d.merge(f[["creative_id", "onset"]], on="creative_id", how="left")
        d["fatigued_spend"] = np.where(d["onset"].notna() & (d["date"] >= d["onset"]), d["spend"], 0.0)
    else:
        d["fatigued_spend"] = np.nan
    if ranking is not None and "is_winner" in ranking.columns:
        winners = set(ranking.loc[ranking["is_winner"].astype(bool), "creative_id"])
        d["winner_spend"] = np.where(d["creative_id"].isin(winners), d["spend"], 0.0)
    else:
        d["winner_spend"] = np.nan
    has_video = "video_3s_views" in d.columns
    if has_video:
        video = d["video_3s_views"].notna()
        d["video_views"] = d["video_3s_views"].where(video, 0.0).astype(float)
        d["video_impressions"] = np.where(video, d["impressions"], 0.0)
    grouped = d.groupby(["account_id", "week_start"])
    out = grouped.agg(spend=("spend", "sum"), impressions=("impressions", "sum"),
                      fresh_spend=("fresh_spend", "sum"), fatigued_spend=("fatigued_spend", "sum"),
                      winner_spend=("winner_spend", "sum"),
                      active_creatives=("creative_id", "nunique")).reset_index()
    out["freshness_rate"] = metrics.share(out["fresh_spend"], out["spend"])
    out["fatigued_spend_share"] = (metrics.share(out["fatigued_spend"], out["spend"])
                                   if fatigue is not None and len(fatigue) else np.nan)
    out["winners_spend_share"] = (metrics.share(out["winner_spend"], out["spend"])
                                  if ranking is not None else np.nan)
    if has_video:
        tv = grouped.agg(v=("video_views", "sum"), i=("video_impressions", "sum")).reset_index()
        out["thumb_stop_ratio"] = metrics.thumb_stop_ratio(tv["v"], tv["i"]).to_numpy()
    else:
        out["thumb_stop_ratio"] = np.nan
    launches = info.assign(week_start=info["launch_date"] - pd.to_timedelta(info["launch_date"].dt.weekday, unit="D"))
    velocity = launches.groupby(["account_id", "week_start"]).size().rename("creative_velocity").reset_index()
    out = out.merge(velocity, on=["account_id", "week_start"], how="outer")
    out["creative_velocity"] = out["creative_velocity"].fillna(0).astype("int64")
    for col in ("spend", "impressions", "active_creatives"):
        out[col] = out[col].fillna(0)
    active = d[d["spend"] > 0].groupby(["account_id", "week_start"])["creative_id"].unique()
    out["creative_diversity"] = [
        _diversity(active.get((a, w), []), vectors) for a, w in zip(out["account_id"], out["week_start"])]
    if fatigue_rate is not None and len(fatigue_rate):
        out = out.merge(fatigue_rate[["account_id", "creative_fatigue_rate_days"]], on="account_id", how="left")
    else:
        out["creative_fatigue_rate_days"] = np.nan
    dates = pd.to_datetime(daily["date"], errors="coerce")
    out["days_covered"] = _days_covered(out["week_start"], dates.min(), dates.max())
    out["complete_week"] = out["days_covered"] == 7
    out["week_start"] = out["week_start"].dt.date
    cols = ["account_id", "week_start", "creative_velocity", "active_creatives", "spend", "impressions",
            "freshness_rate", "fatigued_spend_share", "thumb_stop_ratio", "creative_diversity",
            "winners_spend_share", "creative_fatigue_rate_days", "days_covered", "complete_week"]
    return out[cols].sort_values(["account_id", "week_start"]).reset_index(drop=True)


def _days_covered(week_start: pd.Series, first: pd.Timestamp, last: pd.Timestamp) -> pd.Series:
    """Days of each week (Monday `week_start` + 0..6) from the export's first to its last metric date."""
    if pd.isna(first) or pd.isna(last):
        return pd.Series(0, index=week_start.index, dtype="int64")
    start = week_start.where(week_start > first, first)
    end = (week_start + pd.Timedelta(days=6)).where(week_start + pd.Timedelta(days=6) < last, last)
    return ((end - start).dt.days + 1).clip(lower=0).astype("int64")


def _diversity(ids: object, vectors: BlockVectors | None) -> float:
    if vectors is None:
        return np.nan
    have = set(np.asarray(vectors.ids)[vectors.has_any()])
    ids = [i for i in list(ids) if i in have]
    if len(ids) < 2:
        return np.nan
    sim = vectors.subset(ids).similarity_matrix()
    iu = np.triu_indices(len(ids), k=1)
    vals = sim[iu]
    vals = vals[np.isfinite(vals)]
    return float(np.mean(1.0 - vals)) if len(vals) else np.nan

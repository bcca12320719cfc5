"""Metric definitions (docs/marts.md): the one place where KPI formulas live."""

from __future__ import annotations

import numpy as np
import pandas as pd

ArrayLike = pd.Series | np.ndarray | float


def safe_ratio(numerator: ArrayLike, denominator: ArrayLike) -> ArrayLike:
    """numerator / denominator, NaN where the denominator is 0 or missing."""
    num = np.asarray(numerator, dtype="float64")
    den = np.asarray(denominator, dtype="float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    if isinstance(numerator, pd.Series):
        return pd.Series(out, index=numerator.index)
    if isinstance(denominator, pd.Series):
        return pd.Series(out, index=denominator.index)
    return out if out.shape else float(out)


def share(part: ArrayLike, whole: ArrayLike) -> ArrayLike:
    """part / whole for a part of the whole (e.g. fresh spend of all spend), clipped to [0, 1].

    Summing a subset and the whole in different orders can leave part/whole a few ulps above 1
    (how many depends on the BLAS/CPU); a share is a proportion, so clip where it is produced.
    """
    out = safe_ratio(part, whole)
    return out.clip(0.0, 1.0) if isinstance(out, pd.Series) else np.clip(out, 0.0, 1.0)


def ctr(clicks: ArrayLike, impressions: ArrayLike) -> ArrayLike:
    """Click-through rate = clicks / impressions."""
    return safe_ratio(clicks, impressions)


def cvr(conversions: ArrayLike, clicks: ArrayLike) -> ArrayLike:
    """Conversion rate = conversions / clicks."""
    return safe_ratio(conversions, clicks)


def roas(revenue: ArrayLike, spend: ArrayLike) -> ArrayLike:
    """Return on ad spend = revenue / spend."""
    return safe_ratio(revenue, spend)


def cpa(spend: ArrayLike, conversions: ArrayLike) -> ArrayLike:
    """Cost per acquisition = spend / conversions."""
    return safe_ratio(spend, conversions)


def thumb_stop_ratio(video_3s_views: ArrayLike, impressions: ArrayLike) -> ArrayLike:
    """Thumb-stop ratio = 3-second video views / impressions."""
    return safe_ratio(video_3s_views, impressions)


def add_rate_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Return a copy with ctr, cvr, roas, cpa (and thumb_stop when video_3s_views exists)."""
    out = frame.copy()
    out["ctr"] = ctr(out["clicks"], out["impressions"])
    out["cvr"] = cvr(out["conversions"], out["clicks"])
    out["roas"] = roas(out["revenue"], out["spend"])
    out["cpa"] = cpa(out["spend"], out["conversions"])
    if "video_3s_views" in out.columns:
        out["thumb_stop"] = thumb_stop_ratio(out["video_3s_views"], out["impressions"])
    return out

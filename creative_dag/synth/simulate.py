"""Daily metrics: a day-by-day ad-platform simulation, vectorised over creatives.

Each day, per account: the budget (a mean-reverting log random walk with a weekly
swing) is split over the active creatives by a softmax of the platform's smoothed
estimate of conversions per impression (plus a learning-phase boost for new
creatives); spend / CPM gives impressions (Poisson); CTR and CVR are the creative's
expected rates x fatigue x daily jitter, and clicks / conversions are binomial draws;
revenue is a gamma sum of order values. A creative stops at its planned end or when
the platform starves it for several days in a row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from creative_dag.synth.population import STREAM_SIMULATION, Account


@dataclass
class SimulationResult:
    """Daily rows plus per-creative lifecycle outcomes (indexed like the population)."""

    daily: pd.DataFrame          # creative_idx, day, impressions, clicks, spend, ... (sorted)
    end_day: np.ndarray          # last active day, -1 if still running at the end of the period
    last_day: np.ndarray         # last day with a row (end_day, or n_days - 1 when running)
    stop_reason: np.ndarray      # "planned_end" | "paused_low_budget" | "running"
    onset_day: np.ndarray        # planted fatigue onset day (-1 when not fatiguing)


def _mean_one_lognormal(rng: np.random.Generator, sigma: float, size: int) -> np.ndarray:
    return np.exp(sigma * rng.standard_normal(size) - sigma ** 2 / 2)


def simulate(creatives: pd.DataFrame, accounts: list[Account], s: dict[str, Any], n_days: int,
             start_weekday: int, seed: int) -> SimulationResult:
    """Run the platform simulation over `n_days` for the drawn population."""
    rng = np.random.default_rng([seed, STREAM_SIMULATION])
    alloc, noise, fat, lc, rch = s["allocation"], s["noise"], s["fatigue"], s["lifecycle"], s["reach"]
    n, n_acc = len(creatives), len(accounts)
    acc = creatives["account_idx"].to_numpy(int)
    launch = creatives["launch_day"].to_numpy(int)
    planned_end = launch + creatives["lifespan_days"].to_numpy(int) - 1
    fatigues = creatives["fatigues"].to_numpy(bool)
    onset_day = np.where(fatigues, launch + creatives["onset_offset"].to_numpy(int), -1)
    half_life = creatives["half_life_days"].to_numpy(float)
    exp_ctr = creatives["expected_ctr"].to_numpy(float)
    exp_cvr = creatives["expected_cvr"].to_numpy(float)
    cpm = creatives["cpm"].to_numpy(float)
    aov = creatives["aov"].to_numpy(float)
    thumb = creatives["thumb_stop"].to_numpy(float)
    is_video = ~np.isnan(thumb)
    like_rate = creatives["like_rate"].to_numpy(float)
    audience_size = creatives["audience_size"].to_numpy(float)
    prior_ctr = np.array([a.base_ctr for a in accounts])
    prior_cvr = np.array([a.base_cvr for a in accounts])
    budget0 = np.array([a.daily_budget for a in accounts])

    stopped = np.zeros(n, bool)
    end_day = np.full(n, -1)
    stop_reason = np.full(n, "running", dtype=object)
    cum_imps = np.zeros(n)
    pre_onset_imps = np.zeros(n)
    since_onset = np.zeros(n)
    half_imps = np.ones(n)
    ewm_imp, ewm_clk, ewm_conv = np.zeros(n), np.zeros(n), np.zeros(n)
    streak = np.zeros(n, int)
    log_budget_walk = np.zeros(n_acc)
    keep = 0.5 ** (1.0 / alloc["ewm_halflife_days"])
    aov_cv2 = max(noise["aov_cv"], 1e-6) ** 2
    chunks: list[dict[str, np.ndarray]] = []

    for t in range(n_days):
        idx = np.flatnonzero((launch <= t) & ~stopped & (t <= planned_end))
        if idx.size:
            a = acc[idx]
            age = t - launch[idx]
            # The platform's shrunken estimates of CTR and CVR from what it has seen so far.
            est_ctr = (ewm_clk[idx] + alloc["prior_impressions"] * prior_ctr[a]) / (ewm_imp[idx] + alloc["prior_impressions"])
            est_cvr = (ewm_conv[idx] + alloc["prior_clicks"] * prior_cvr[a]) / (ewm_clk[idx] + alloc["prior_clicks"])
            score = (alloc["temperature"] * np.log(est_ctr * est_cvr)
                     + alloc["learning_boost"] * np.exp(-age / alloc["learning_days"]))
            top = np.full(n_acc, -np.inf)
            np.maximum.at(top, a, score)
            weight = np.exp(score - top[a])
            share = weight / np.bincount(a, weight, n_acc)[a]
            n_active = np.bincount(a, minlength=n_acc)[a]

            weekday = (start_weekday + t) % 7
            budget = budget0 * np.exp(log_budget_walk) * (1 + s["accounts"]["budget_weekly_amplitude"]
                                                          * np.cos(2 * np.pi * weekday / 7))
            want = budget[a] * share * _mean_one_lognormal(rng, noise["spend_sigma"], idx.size)
            cpm_t = cpm[idx] * _mean_one_lognormal(rng, noise["cpm_sigma"], idx.size)
            imps = rng.poisson(want / cpm_t * 1000.0)
            spend = np.where(imps > 0, np.round(imps * cpm_t / 1000.0, 2), 0.0)

            # Fatigue: from the onset day, CTR decays with impressions accrued since onset,
            # measured in units of the creative's own pre-onset daily delivery.
            at_onset = onset_day[idx] == t
            if at_onset.any():
                j = idx[at_onset]
                per_day = pre_onset_imps[j] / np.maximum(onset_day[j] - launch[j], 1)
                half_imps[j] = np.maximum(per_day, 1.0) * half_life[j]
            fatigued = (onset_day[idx] >= 0) & (t >= onset_day[idx])
            fmult = np.where(fatigued, fat["floor"] + (1 - fat["floor"]) * 0.5 ** (since_onset[idx] / half_imps[idx]), 1.0)

            ctr_t = np.clip(exp_ctr[idx] * fmult * _mean_one_lognormal(rng, noise["daily_rate_sigma"], idx.size), 0, 1)
            clicks = rng.binomial(imps, ctr_t)
            cvr_t = np.clip(exp_cvr[idx] * _mean_one_lognormal(rng, noise["daily_rate_sigma"], idx.size), 0, 1)
            conv = rng.binomial(clicks, cvr_t)
            shape = np.where(conv > 0, conv / aov_cv2, 1.0)
            revenue = np.where(conv > 0, np.round(rng.gamma(shape, aov[idx] * aov_cv2), 2), 0.0)
            p_view = np.where(is_video[idx], np.nan_to_num(thumb[idx]) * fmult ** fat["thumb_stop_exponent"], 0.0)
            views = rng.binomial(imps, np.clip(p_view, 0, 1))
            likes = rng.binomial(imps, np.clip(like_rate[idx] * np.sqrt(fmult), 0, 1))
            freq = np.minimum(rch["max_daily_frequency"],
                              rch["base_daily_frequency"] + rch["frequency_growth"] * cum_imps[idx] / audience_size[idx])
            reach = np.clip(np.round(imps / freq), np.minimum(imps, 1), imps).astype(np.int64)

            chunks.append({
                "creative_idx": idx, "day": np.full(idx.size, t), "impressions": imps, "clicks": clicks,
                "spend": spend, "conversions": conv, "revenue": revenue, "reach": reach,
                "video_3s_views": np.where(is_video[idx], views, -1), "likes": likes,
            })

            cum_imps[idx] += imps
            pre_onset_imps[idx] += np.where(onset_day[idx] > t, imps, 0)
            since_onset[idx] += np.where(fatigued, imps, 0)
            ewm_imp[idx] = keep * ewm_imp[idx] + imps
            ewm_clk[idx] = keep * ewm_clk[idx] + clicks
            ewm_conv[idx] = keep * ewm_conv[idx] + conv

            # Stop rules: the platform starves it for days in a row, or its planned run ends.
            low = (share < lc["pause_share"] / n_active) & (age >= lc["pause_min_age_days"])
            streak[idx] = np.where(low, streak[idx] + 1, 0)
            paused = idx[streak[idx] >= lc["pause_after_days"]]
            stopped[paused] = True
            end_day[paused] = t
            stop_reason[paused] = "paused_low_budget"
            ended = idx[(planned_end[idx] == t) & ~stopped[idx]]
            stopped[ended] = True
            end_day[ended] = t
            stop_reason[ended] = "planned_end"
        log_budget_walk = 0.9 * log_budget_walk + s["accounts"]["budget_volatility"] * rng.standard_normal(n_acc)

    if chunks:
        daily = pd.DataFrame({k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]})
    else:
        daily = pd.DataFrame(columns=["creative_idx", "day", "impressions", "clicks", "spend", "conversions",
                                      "revenue", "reach", "video_3s_views", "likes"])
    daily = daily.sort_values(["creative_idx", "day"], kind="stable").reset_index(drop=True)
    last_day = np.where(end_day >= 0, end_day, n_days - 1)
    return SimulationResult(daily=daily, end_day=end_day, last_day=last_day, stop_reason=stop_reason,
                            onset_day=onset_day)

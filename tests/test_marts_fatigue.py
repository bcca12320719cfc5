"""Fatigue mart: planted onsets dated within +-3 days, few false alarms, status rules, the creative-day table."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from creative_dag.marts.fatigue import (
    STATUSES,
    FatigueParams,
    FatigueShapePrior,
    account_fatigue_rate,
    detect_onset,
    fatigue_daily,
    fatigue_summary,
    fit_fatigue_prior,
)
from creative_dag.marts.ranking import creative_totals, rank_creatives
from creative_dag.synth import generate_scenario

FLOOR = 0.3  # default_scenario.yaml fatigue.floor
NOT_TESTED = ("too little", "no delivery", "series too short")


@pytest.fixture(scope="module")
def scenarios(tmp_path_factory):
    """seed -> (creatives, daily, truth, creative-day table, summary); 800 creatives x 120 days (~10 s each).

    Seeds 2 and 3 are the two hardest of seeds 0-3 for onset dating.
    """
    out = {}
    for seed in (2, 3):
        folder = tmp_path_factory.mktemp(f"fatigue_scenario_{seed}")
        generate_scenario(folder, n_creatives=800, n_days=120, seed=seed, render_images=False)
        creatives = pd.read_csv(folder / "creatives.csv")
        daily = pd.read_csv(folder / "daily_metrics.csv")
        truth = json.loads((folder / "ground_truth.json").read_text())
        table = fatigue_daily(daily, creatives)
        out[seed] = (creatives, daily, truth, table, fatigue_summary(table, creatives))
    return out


def true_multipliers(daily: pd.DataFrame, truth: dict, within_days: int = 3) -> pd.DataFrame:
    """Per planted-fatigue creative: its true CTR multiplier `within_days` after onset and on its last day.

    Recomputed from the generator's documented model: floor + (1 - floor) 2^(-E/H), E the
    impressions since onset, H = half-life x mean daily impressions before onset.
    """
    rows = []
    for cid, g in daily.sort_values("date").groupby("creative_id"):
        gt = truth["creatives"][cid]
        if not gt["fatigues"] or not gt["fatigue_onset_date"]:
            continue
        dates = pd.to_datetime(g["date"]).to_numpy()
        imps = g["impressions"].to_numpy(float)
        onset = np.datetime64(pd.Timestamp(gt["fatigue_onset_date"]))
        launch = np.datetime64(pd.Timestamp(gt["launch_date"]))
        pre_days = max(int((onset - launch) / np.timedelta64(1, "D")), 1)
        h = max(imps[dates < onset].sum() / pre_days, 1.0) * gt["fatigue_half_life_days"]
        after = dates >= onset
        early = after & (dates < onset + np.timedelta64(within_days, "D"))
        rows.append({"creative_id": cid, "onset": pd.Timestamp(onset),
                     "days_before_onset": int((dates < onset).sum()),
                     "mult_at_3d": FLOOR + (1 - FLOOR) * 0.5 ** (imps[early].sum() / h),
                     "mult_last": FLOOR + (1 - FLOOR) * 0.5 ** (imps[after][:-1].sum() / h) if after.any() else 1.0})
    return pd.DataFrame(rows)


def _planted_vs_detected(scenario) -> pd.DataFrame:
    _creatives, daily, truth, _, summary = scenario
    s = summary.merge(true_multipliers(daily, truth), on="creative_id", how="left")
    s["tested"] = ~s["fatigue_evidence"].str.startswith(NOT_TESTED)
    s["detected"] = pd.to_datetime(s["fatigue_onset_date"])
    s["error_days"] = (s["detected"] - s["onset"]).dt.days
    # "Enough data": tested by the detector (>= 8 delivery days, >= 100 clicks), >= 3 delivery
    # days before the planted onset, and a planted decay that is observable: the true CTR
    # multiplier is <= 0.8 three days after onset (otherwise the first days after onset are
    # indistinguishable from the flat level and no detector can place it within +-3 days)
    # and <= 0.5 by the last day. Unchanged from the first version of this mart.
    s["enough"] = (s["onset"].notna() & s["tested"] & (s["days_before_onset"] >= 3)
                   & (s["mult_at_3d"] <= 0.8) & (s["mult_last"] <= 0.5))
    s["fatigue_free"] = ~s["creative_id"].map(lambda c: truth["creatives"][c]["fatigues"]) & s["tested"]
    return s


def test_detects_a_clean_planted_onset_and_ignores_a_flat_series():
    rng = np.random.default_rng(0)
    days = 40
    imps = rng.poisson(20000, days).astype(float)
    cum = np.concatenate([[0], np.cumsum(imps)[:-1]])
    onset = 15
    mult = np.where(np.arange(days) >= onset, 0.3 + 0.7 * 0.5 ** ((cum - cum[onset]) / (4 * 20000)), 1.0)
    jitter = np.exp(rng.normal(0, 0.08, days))
    clicks = rng.binomial(imps.astype(int), 0.012 * mult * jitter)
    cp = detect_onset(clicks, imps)
    assert cp.onset_index is not None and abs(cp.onset_index - onset) <= 2
    assert cp.drop > 0.4 and cp.log_bayes_factor > 50 and cp.window_probability > 0.9
    flat = rng.binomial(imps.astype(int), 0.012 * jitter)
    cp_flat = detect_onset(flat, imps)
    assert cp_flat.onset_index is None and cp_flat.tested and cp_flat.log_bayes_factor < np.log(5)


def test_likelihood_tables_match_the_model_written_out_day_by_day():
    """The change-point search evaluates the decay only on days after each onset, all shapes at once; on
    series with gaps, days without clicks and a late start it must give the likelihood and drop of the model
    written out per (onset, half-life, floor): level profiled out, m = floor + (1 - floor) 2^(-exposure/hl)."""
    from creative_dag.marts.fatigue import _exposure_since, _onset_tables

    p = FatigueParams()
    rng = np.random.default_rng(5)
    for days in (12, 30, 55):
        imps = rng.poisson(3000, days).astype(float)
        imps[:2] = 0.0
        imps[rng.random(days) < 0.2] = 0.0
        clicks = rng.binomial(imps.astype(int), 0.01).astype(float)
        clicks[rng.random(days) < 0.2] = 0.0
        kappa = 0.02
        tab = _onset_tables(clicks, imps, p, p.half_lives, p.floors, kappa)
        live = np.flatnonzero(imps > 0)
        w = 1.0 / (1.0 + kappa * imps * clicks.sum() / imps.sum())
        wy, wn = w * clicks, w * imps
        exposure = _exposure_since(imps, tab.taus, int(live[0]))
        for k in range(len(tab.taus)):
            for i, hl in enumerate(p.half_lives):
                for j, floor in enumerate(p.floors):
                    m = floor + (1.0 - floor) * 2.0 ** (-exposure[k] / hl)
                    level = wy.sum() / (wn * m).sum()
                    ll = wy.sum() * np.log(level) + np.log(np.maximum(m, 1e-300)) @ wy - wy.sum()
                    assert tab.ll[k, i, j] == pytest.approx(ll, rel=1e-12, abs=1e-9)
                    assert tab.drop[k, i, j] == pytest.approx(1.0 - m[live[-1]], abs=1e-12)


def test_too_little_data_is_not_tested_and_bad_series_raise():
    cp = detect_onset(np.array([1, 0, 2]), np.array([100, 80, 120]))
    assert not cp.tested and cp.onset_index is None and "too little data" in cp.reason
    with pytest.raises(ValueError, match="same length"):
        detect_onset(np.array([1, 2]), np.array([10, 20, 30]))
    with pytest.raises(ValueError, match="clicks <= impressions"):
        detect_onset(np.array([50] * 10), np.array([10] * 10))
    # Nothing testable: the shape prior stays flat instead of failing.
    prior = fit_fatigue_prior([(np.array([1, 0, 2]), np.array([100, 80, 120]))])
    assert prior.n_creatives == 0 and np.allclose(prior.log_weight, prior.log_weight.flat[0])


@pytest.mark.parametrize("seed", [2, 3])
def test_planted_onsets_recovered_and_few_false_alarms(scenarios, seed):
    """Quality bar on the generator's fatigue model: >= 90 % of fatiguing creatives with enough
    data dated within +-3 days, <= 5 % false alarms on creatives without planted fatigue.

    Measured, 800 creatives x 120 days, seeds 0 / 1 / 2 / 3 (n = 59 / 79 / 73 / 76 with enough data):
    within +-3 days 96.6 / 94.9 / 93.2 / 93.4 % (previous detector: 84.7 / 93.7 / 76.7 / 86.8 %);
    detected at all 98.3 / 100 / 100 / 98.7 %; false alarms 0.7 / 1.9 / 0.7 / 0.7 % (of ~300).
    """
    s = _planted_vs_detected(scenarios[seed])
    enough = s["enough"]
    within = (s.loc[enough, "error_days"].abs() <= 3).mean()
    assert enough.sum() >= 50, f"only {enough.sum()} fatiguing creatives with enough data"
    assert within >= 0.90, f"onset within +-3 days for {within:.1%} of {enough.sum()} fatiguing creatives"
    false_alarm = s.loc[s["fatigue_free"], "detected"].notna().mean()
    assert false_alarm <= 0.05, f"false alarms on {false_alarm:.1%} of {s['fatigue_free'].sum()} non-fatiguing creatives"


def test_window_probability_is_calibrated(scenarios):
    """onset_window_probability = P(true onset within +-3 days of the reported one): over every
    detected planted onset its mean matches the observed hit rate (measured 0.852 vs 0.857, seed 2)."""
    s = _planted_vs_detected(scenarios[2])
    hit = s[s["detected"].notna() & s["onset"].notna()]
    assert len(hit) >= 150
    assert hit["onset_window_probability"].between(0, 1).all()
    observed = (hit["error_days"].abs() <= 3).mean()
    assert abs(hit["onset_window_probability"].mean() - observed) < 0.05
    assert s.loc[s["detected"].isna(), "onset_window_probability"].isna().all()


def test_shape_prior_recovers_the_planted_fatigue_curve(scenarios):
    """Fitted from the data alone: floor ~0.3 (planted 0.3), half-lives 3-9 days of pre-onset
    delivery (planted uniform 3-9), day-to-day CTR jitter of a few % (planted lognormal sd 0.08)."""
    _creatives, _daily, _truth, table, _ = scenarios[3]
    series = [(g["clicks"].to_numpy(float), g["impressions"].to_numpy(float)) for _, g in table.groupby("creative_id")]
    prior = fit_fatigue_prior(series)
    info = prior.summary()
    assert prior.n_creatives >= 50
    assert info["mean_floor"] == pytest.approx(FLOOR, abs=0.05)
    assert 3.5 < info["mean_half_life_days"] < 8.0
    assert 0.03 < info["jitter_sd"] < 0.12
    weights = np.exp(prior.log_weight).sum(axis=1)
    in_range = [(3.0 <= h <= 9.0) for h in prior.half_lives]
    assert weights[in_range].sum() > 0.8
    # The flat prior is what a single creative gets: same grid, uniform weights.
    flat = FatigueShapePrior.flat(FatigueParams())
    assert np.allclose(np.exp(flat.log_weight).sum(), 1.0)


def test_statuses_and_daily_table(scenarios):
    creatives, _daily, _truth, table, summary = scenarios[3]
    assert set(summary["status"]) <= set(STATUSES)
    assert len(summary) == len(creatives) and summary["creative_id"].is_unique
    # A fatigued creative has an onset or tripped the CPA rule; its current CTR is below its early peak.
    fat = summary[summary["status"] == "fatigued"]
    assert len(fat) > 0
    assert (fat["fatigue_onset_date"].notna() | fat["cpa_rule_triggered"]).all()
    assert (fat.loc[fat["fatigue_onset_date"].notna(), "current_vs_peak"] < 1).all()
    assert (summary.dropna(subset=["days_to_fatigue"])["days_to_fatigue"] >= 0).all()
    onset = summary.dropna(subset=["fatigue_onset_date"])
    assert (onset["onset_log_bayes_factor"] >= np.log(1 / FatigueParams().alpha)).all()
    assert (onset["fitted_drop"] >= FatigueParams().min_drop).all()
    # Creative-day table: one row per creative-day, cumulative impressions non-decreasing.
    assert not table.duplicated(["creative_id", "date"]).any()
    assert (table.groupby("creative_id")["cumulative_impressions"].diff().dropna() >= 0).all()
    one = table[table["creative_id"] == table["creative_id"].iloc[0]].head(7)
    assert one["rolling_ctr"].iloc[-1] == pytest.approx(one["clicks"].sum() / one["impressions"].sum())
    assert table["frequency"].notna().any()


def test_cpa_rule_marks_fatigued_without_a_ctr_change():
    """Platform rule: cost per result >= 2x its early level is fatigue even when CTR holds."""
    days = pd.date_range("2026-03-01", periods=21, freq="D")
    daily = pd.DataFrame({"creative_id": "cr_1", "date": days, "impressions": 10000, "clicks": 100,
                          "spend": 50.0, "conversions": [10] * 7 + [4] * 7 + [2] * 7, "revenue": 100.0})
    creatives = pd.DataFrame({"creative_id": ["cr_1"], "account_id": ["acc_01"], "launch_date": ["2026-03-01"]})
    summary = fatigue_summary(fatigue_daily(daily, creatives), creatives)
    row = summary.iloc[0]
    assert row["cpa_rule_triggered"] and row["status"] == "fatigued"
    assert row["cpa_multiple"] == pytest.approx(5.0)
    assert pd.isna(row["fatigue_onset_date"])  # a perfectly flat CTR has no onset
    # 'fatigued' beside a bare 'decline not significant' read as a contradiction: the evidence leads with the rule
    assert row["fatigue_evidence"].startswith("CPA rule (cost per result >= 2x its first 7 days'); CTR: ")


def test_account_fatigue_rate(scenarios):
    creatives, daily, _truth, table, _ = scenarios[3]
    ranking = rank_creatives(creative_totals(daily, creatives))
    rate = account_fatigue_rate(table, ranking)
    assert set(rate["account_id"]) == set(creatives["account_id"])
    assert (rate["n_winners"] > 0).all()
    assert ((rate["creative_fatigue_rate_days"] > 0) & (rate["creative_fatigue_rate_days"] < 120)).all()


def test_the_daily_table_fills_calendar_gaps_and_rolls_within_each_creative():
    """Rows arrive unsorted, with a duplicate day and a gap: the table has every calendar day from a
    creative's first to its last (a gap is zero delivery with no frequency), and the 7-day sums never
    reach into another creative's days."""
    daily = pd.DataFrame({
        "creative_id": ["b", "a", "a", "b", "a", "a"],
        "date": ["2026-01-03", "2026-01-04", "2026-01-01", "2026-01-02", "2026-01-01", "2026-01-02"],
        "impressions": [400, 1000, 600, 300, 400, 500],
        "clicks": [8, 50, 12, 3, 8, 10],
        "spend": [4.0, 10.0, 6.0, 3.0, 4.0, 5.0],
        "conversions": [1, 2, 1, 0, 0, 1],
        "frequency": [1.5, 2.0, 1.0, 1.2, 3.0, 1.1],
    })
    out = fatigue_daily(daily, params=FatigueParams(rolling_days=2))
    assert out[["creative_id", "date"]].astype(str).values.tolist() == [
        ["a", "2026-01-01"], ["a", "2026-01-02"], ["a", "2026-01-03"], ["a", "2026-01-04"],
        ["b", "2026-01-02"], ["b", "2026-01-03"]]
    a = out[out["creative_id"] == "a"]
    assert a["impressions"].tolist() == [1000, 500, 0, 1000]  # the duplicate day summed, the gap zero
    assert a["frequency"].isna().tolist() == [False, False, True, False]
    assert a["frequency"].iloc[0] == pytest.approx(2.0)  # mean of the duplicate day's 1.0 and 3.0
    # 2-day sums: day 3 = day 2 + the gap, day 4 = the gap + day 4
    assert a["rolling_ctr"].tolist() == pytest.approx([20 / 1000, 30 / 1500, 10 / 500, 50 / 1000])
    assert a["cumulative_impressions"].tolist() == [1000, 1500, 1500, 2500]
    b = out[out["creative_id"] == "b"]
    assert b["rolling_ctr"].tolist() == pytest.approx([3 / 300, 11 / 700])  # not a's last day
    assert b["age_days"].tolist() == [0, 1]

"""Ranking mart: context-aware shrinkage tracks planted quality better than raw CTR and raw ROAS;
thin evidence cannot win by luck; a placement's lower rates do not count against its creatives."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from creative_dag.marts.ranking import (
    RankingParams,
    creative_totals,
    fit_context_model,
    fit_context_models,
    rank_creatives,
)
from creative_dag.synth import generate_scenario

SEEDS = (0, 1, 2, 3)


@pytest.fixture(scope="module")
def scenarios(tmp_path_factory):
    """seed -> (ranking with latent_quality, creative totals); 500 creatives x 120 days each (~2 s a seed)."""
    out = {}
    for seed in SEEDS:
        folder = tmp_path_factory.mktemp(f"ranking_scenario_{seed}")
        generate_scenario(folder, n_creatives=500, n_days=120, seed=seed, render_images=False)
        creatives = pd.read_csv(folder / "creatives.csv")
        daily = pd.read_csv(folder / "daily_metrics.csv")
        truth = json.loads((folder / "ground_truth.json").read_text())
        totals = creative_totals(daily, creatives)
        table = rank_creatives(totals)
        table["latent_quality"] = table["creative_id"].map({k: v["latent_quality"] for k, v in truth["creatives"].items()})
        out[seed] = (table, totals)
    return out


@pytest.mark.parametrize("seed", SEEDS)
def test_score_beats_raw_ctr_and_raw_roas_on_planted_quality(scenarios, seed):
    """Spearman(score, latent_quality) over non-LEARNING creatives vs ranking by raw CTR / raw ROAS.

    Measured (500 creatives x 120 days, default weights), score / raw CTR / raw ROAS:
    seed 0: 0.801 / 0.460 / 0.576;  seed 1: 0.788 / 0.466 / 0.577;
    seed 2: 0.787 / 0.585 / 0.567;  seed 3: 0.857 / 0.574 / 0.653.
    The score leads the better raw ranking by 0.20-0.22; the per-account prior it replaces
    scored 0.571 / 0.618 / 0.620 / 0.718 (not better than raw ROAS). Asserted: >= 0.75 and a
    lead of >= 0.12 over both.
    """
    table, _ = scenarios[seed]
    enough = table[table["tier"] != "LEARNING"]
    assert len(enough) >= 300
    rho = {c: spearmanr(enough[c], enough["latent_quality"])[0] for c in ("score", "ctr", "roas")}
    assert rho["score"] >= 0.75, rho
    assert rho["score"] >= rho["ctr"] + 0.12, f"score vs raw CTR: {rho}"
    assert rho["score"] >= rho["roas"] + 0.12, f"score vs raw ROAS: {rho}"
    # Within each account too (tiers and ranks are per account).
    for acc, g in enough.groupby("account_id"):
        assert spearmanr(g["score"], g["latent_quality"])[0] > 0.6, acc


def test_context_is_what_lifts_the_score(scenarios):
    """Same data with the context switched off (per-account prior only) is clearly worse (seed 0:
    0.572 vs 0.801): the gain comes from removing placement/audience/objective effects."""
    table, totals = scenarios[0]
    plain = rank_creatives(totals, RankingParams(context_columns=()))
    plain["latent_quality"] = plain["creative_id"].map(table.set_index("creative_id")["latent_quality"])
    rho_plain = spearmanr(plain["score"], plain["latent_quality"])[0]
    rho_ctx = spearmanr(table["score"], table["latent_quality"])[0]
    assert rho_ctx > rho_plain + 0.15, (rho_ctx, rho_plain)
    # The fitted multipliers have the planted direction: retargeting clicks and converts more than
    # broad audiences; search_display clicks less than feed (default_scenario.yaml context effects).
    models = fit_context_models(totals)
    ctr, cvr = models["ctr"].context_log_effect, models["cvr"].context_log_effect
    assert ctr["audience"]["retargeting"] > ctr["audience"]["broad"] + 0.2
    assert cvr["audience"]["retargeting"] > cvr["audience"]["broad"] + 0.5
    assert ctr["placement"]["search_display"] + ctr["platform"]["google"] < ctr["placement"]["feed"] + ctr["platform"]["meta"] - 0.3


def test_tiers_confidence_and_winners(scenarios):
    ranked, _ = scenarios[1]
    assert set(ranked["tier"]) <= {"BEST", "GOOD", "LOW", "LEARNING"}
    assert ranked["confidence"].between(0, 1).all()
    best, low = ranked[ranked["tier"] == "BEST"], ranked[ranked["tier"] == "LOW"]
    assert len(best) and len(low)
    assert best["latent_quality"].mean() > low["latent_quality"].mean() + 0.3
    assert (best["confidence"] >= 0.8).all() and (low["confidence"] < 0.5).all()
    winners = ranked[ranked["is_winner"]]
    assert len(winners) and winners["latent_quality"].mean() > ranked["latent_quality"].mean()
    for _, g in ranked.groupby("account_id"):
        assert sorted(g["rank_in_account"]) == list(range(1, len(g) + 1))
    assert ranked["explanation"].str.contains("vs account, same context").all()
    # Raw posterior rates stay on the KPI's own scale: near the raw rate for well-measured creatives.
    big = ranked[ranked["impressions"] > 200_000]
    assert (np.abs(np.log(big["ctr_shrunk"] / big["ctr"])) < 0.1).mean() > 0.95
    assert (ranked["cpa_shrunk"] > 0).all() and (ranked["roas_expected"] > 0).all()


def _toy(clicks_small: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 40
    imps = rng.integers(50_000, 400_000, n)
    clicks = rng.binomial(imps, 0.01)
    frame = pd.DataFrame({"creative_id": [f"cr_{i:03d}" for i in range(n)], "account_id": "acc_01",
                          "campaign_id": "cmp_1", "impressions": imps, "clicks": clicks,
                          "conversions": rng.binomial(clicks, 0.04), "spend": imps / 1000 * 8.0})
    frame["revenue"] = frame["conversions"] * 50.0
    big = {"creative_id": "cr_big", "account_id": "acc_01", "campaign_id": "cmp_1", "impressions": 300_000,
           "clicks": 3900, "conversions": 160, "spend": 2400.0, "revenue": 8000.0}  # solidly 30% better
    small = {"creative_id": "cr_small", "account_id": "acc_01", "campaign_id": "cmp_1", "impressions": 300,
             "clicks": clicks_small, "conversions": 1, "spend": 2.4, "revenue": 50.0}  # lucky: 2-3x CTR
    return pd.concat([frame, pd.DataFrame([big, small])], ignore_index=True)


def test_300_impressions_cannot_outrank_300000_by_luck():
    table = rank_creatives(_toy(clicks_small=9)).set_index("creative_id")
    assert table.loc["cr_small", "ctr"] > table.loc["cr_big", "ctr"]  # raw CTR says the lucky one wins
    assert table.loc["cr_big", "rank_in_account"] < table.loc["cr_small", "rank_in_account"]
    assert table.loc["cr_small", "tier"] == "LEARNING"
    assert table.loc["cr_big", "tier"] == "BEST" and table.loc["cr_big", "confidence"] > 0.95
    # The shrunk CTR of the thin creative sits near the account prior, not at its raw 3%.
    assert table.loc["cr_small", "ctr_shrunk"] < 0.015
    assert table.loc["cr_big", "ctr_shrunk"] > 0.0115  # the well-measured one keeps most of its 1.3 %


def _two_placements(seed: int = 0) -> pd.DataFrame:
    """120 creatives, known quality q; stories has half the CTR and 0.7x the CVR of feed."""
    rng = np.random.default_rng(seed)
    n = 120
    q = rng.lognormal(0.0, 0.25, n)
    placement = np.where(np.arange(n) % 3 == 0, "stories", "feed")
    ctx_ctr = np.where(placement == "stories", 0.5, 1.0)
    ctx_cvr = np.where(placement == "stories", 0.7, 1.0)
    imps = rng.integers(80_000, 300_000, n)
    clicks = rng.binomial(imps, 0.01 * ctx_ctr * q)
    conv = rng.binomial(clicks, 0.04 * ctx_cvr * q)
    return pd.DataFrame({"creative_id": [f"cr_{i:03d}" for i in range(n)], "account_id": "acc_01",
                         "placement": placement, "impressions": imps, "clicks": clicks, "conversions": conv,
                         "spend": imps / 1000 * 8.0, "revenue": conv * 50.0, "quality": np.log(q)})


def test_a_placement_with_lower_rates_does_not_pull_its_creatives_down():
    frame = _two_placements()
    ranked = rank_creatives(frame.drop(columns="quality")).merge(frame[["creative_id", "placement", "quality"]])
    stories = ranked["placement"] == "stories"
    # Context-adjusted: the placement's -0.75 log-units on the composite are removed, so stories
    # and feed creatives score alike on average (an average quality difference between the two
    # placements would be credited to the placement too: the model cannot tell them apart) ...
    gap = ranked.loc[stories, "score"].mean() - ranked.loc[~stories, "score"].mean()
    assert abs(gap) < 0.1, gap
    # ... while the prior ignoring context puts the stories creatives at the bottom.
    plain = rank_creatives(frame.drop(columns=["quality", "placement"])).set_index("creative_id")["score"]
    plain_gap = plain[ranked.loc[stories, "creative_id"]].mean() - plain[ranked.loc[~stories, "creative_id"]].mean()
    assert plain_gap < -0.5, plain_gap
    # Measured: Spearman with quality 0.95 for the score vs 0.67 for raw CTR.
    assert spearmanr(ranked["score"], ranked["quality"])[0] > spearmanr(ranked["ctr"], ranked["quality"])[0] + 0.2
    # Expected rates carry the placement; shrunk rates stay on the raw scale.
    exp_ratio = ranked.loc[stories, "ctr_expected"].mean() / ranked.loc[~stories, "ctr_expected"].mean()
    assert exp_ratio == pytest.approx(0.5, rel=0.1)


def test_context_model_recovers_known_multipliers_and_spread():
    rng = np.random.default_rng(1)
    n = 600
    placement = rng.choice(["feed", "stories", "reels"], n)
    audience = rng.choice(["broad", "retargeting"], n)
    account = rng.choice(["acc_01", "acc_02"], n)
    mult = (pd.Series(placement).map({"feed": 1.0, "stories": 0.8, "reels": 0.6}).to_numpy()
            * pd.Series(audience).map({"broad": 1.0, "retargeting": 1.5}).to_numpy())
    base = np.where(account == "acc_01", 0.012, 0.008)
    r = rng.gamma(16.0, 1 / 16.0, n)  # creative multiplier, shape 16 (sd 0.25)
    imps = rng.integers(20_000, 200_000, n)
    clicks = rng.poisson(imps * base * mult * r)
    context = pd.DataFrame({"placement": placement, "audience": audience})
    model = fit_context_model(clicks, imps, pd.Series(account), context, "ctr")
    eff = model.context_log_effect
    assert eff["placement"]["stories"] - eff["placement"]["feed"] == pytest.approx(np.log(0.8), abs=0.05)
    assert eff["placement"]["reels"] - eff["placement"]["feed"] == pytest.approx(np.log(0.6), abs=0.05)
    assert eff["audience"]["retargeting"] - eff["audience"]["broad"] == pytest.approx(np.log(1.5), abs=0.05)
    rate = model.expected_rate(pd.DataFrame({"account_id": ["acc_01", "acc_02"], "placement": ["feed"] * 2,
                                             "audience": ["broad"] * 2}))
    assert rate == pytest.approx([0.012, 0.008], rel=0.06)
    assert all(8 < k < 32 for k in model.shape.values())
    # Too little data: a weak pooled prior, not a crash.
    thin = fit_context_model(np.array([3.0]), np.array([100.0]), pd.Series(["acc_01"]))
    assert thin.shape == {"acc_01": 2.0} and thin.context_log_effect == {}


def test_weights_change_the_score_and_bad_input_is_named():
    toy = _toy(9)
    ctr_only = rank_creatives(toy, RankingParams(weights={"ctr": 1.0}))
    default = rank_creatives(toy)
    assert not np.allclose(ctr_only.set_index("creative_id")["score"],
                           default.set_index("creative_id").loc[ctr_only["creative_id"], "score"])
    with pytest.raises(ValueError, match="missing columns"):
        rank_creatives(toy.drop(columns=["revenue"]))
    with pytest.raises(ValueError, match="unknown metrics"):
        rank_creatives(toy, RankingParams(weights={"likes": 1.0}))
    with pytest.raises(ValueError, match="cr_big appears more than once"):
        rank_creatives(pd.concat([toy, toy[toy["creative_id"] == "cr_big"]]))
    # A creative with no delivery at all is LEARNING with the account prior, not an error; a
    # missing placement is its own level.
    zero = pd.concat([toy.assign(placement="feed"),
                      pd.DataFrame([{"creative_id": "cr_new", "account_id": "acc_01", "campaign_id": "cmp_1",
                                     "placement": None, "impressions": 0, "clicks": 0, "conversions": 0,
                                     "spend": 0.0, "revenue": 0.0}])], ignore_index=True)
    row = rank_creatives(zero).set_index("creative_id").loc["cr_new"]
    assert row["tier"] == "LEARNING" and abs(row["score"]) < 1e-6

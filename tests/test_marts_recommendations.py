"""Recommendations: planted element effects recovered with the right sign; nulls kept under the FDR."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from creative_dag.marts.ranking import creative_totals, rank_creatives
from creative_dag.marts.recommendations import (
    RecommendationParams,
    attribute_effects,
    attribute_indicators,
    benjamini_hochberg,
    recommend,
)
from creative_dag.synth import generate_scenario

ATTRIBUTES = ("background_style", "background_hue", "hue_family", "product", "product_kind", "has_face",
              "text_coverage", "has_cta", "cta_color", "cta_position", "headline_position", "headline_font",
              "orientation", "file_format")
MIN_PLANTED = np.log(1.15)  # stated size: effects of at least 15 % are checked (10 % ones are not reliable)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    out = tmp_path_factory.mktemp("recommendation_scenario")
    generate_scenario(out, n_creatives=600, n_days=120, seed=0, render_images=False)
    creatives = pd.read_csv(out / "creatives.csv")
    daily = pd.read_csv(out / "daily_metrics.csv")
    truth = json.loads((out / "ground_truth.json").read_text())
    attrs = pd.DataFrame([{"creative_id": cid, **{a: gt["attributes"][a] for a in ATTRIBUTES}}
                          for cid, gt in truth["creatives"].items()])
    ranking = rank_creatives(creative_totals(daily, creatives))
    perf = ranking.merge(creatives[["creative_id", "platform", "placement", "audience", "objective", "launch_date"]],
                         on="creative_id")
    # Near-duplicate clusters as the repetition mart would find them (here: the planted families).
    perf["near_duplicate_cluster"] = perf["creative_id"].map({c: gt["family_id"] for c, gt in truth["creatives"].items()})
    effects = attribute_effects(attrs, perf)
    table = recommend(attrs, perf, effects=effects)
    return truth, attrs, perf, effects, table


def _planted_log_multiplier(attrs: pd.DataFrame, accounts: pd.Series, effects: list[dict], metric: str) -> pd.Series:
    total = pd.Series(0.0, index=attrs.index)
    for e in effects:
        if e["metric"] != metric:
            continue
        hit = attrs[e["attribute"]].map(lambda v, val=e["value"]: v == val and type(v) is type(val))
        if e["accounts"]:
            hit &= accounts.isin(e["accounts"])
        total += np.where(hit, np.log(e["multiplier"]), 0.0)
    return total


def test_planted_effects_recovered_with_the_right_sign(scenario):
    """Each planted effect >= 15 %: significant (BH q <= 0.05) with the right sign where planted.

    Account-specific effects are checked in their account; effects planted in every account
    are checked in the ALL scope (per-account power at ~100-250 creatives is reported, not
    asserted: see docs/marts.md). A two-level attribute is tested on one level; the other
    level's effect is its mirror image.
    """
    truth, _attrs, _, effects, _ = scenario
    checked = 0
    for e in truth["effects"]:
        if abs(np.log(e["multiplier"])) < MIN_PLANTED:
            continue
        scopes = e["accounts"] or ["ALL"]
        value = str(e["value"]).lower() if isinstance(e["value"], bool) else str(e["value"])
        for scope in scopes:
            rows = effects[(effects["scope"] == scope) & (effects["kind"] == "single")
                           & (effects["attribute"] == e["attribute"]) & (effects["metric"] == e["metric"])]
            row = rows[rows["value"] == value]
            sign = 1.0
            if row.empty:  # the mirror level of a two-level attribute
                row, sign = rows, -1.0
            assert len(row) == 1, f"{e['attribute']}={value} not tested in {scope}"
            r = row.iloc[0]
            assert r["q_value"] <= 0.05, f"{e['attribute']}={value} ({e['metric']}) in {scope}: q={r['q_value']:.3g}"
            assert np.sign(r["lift"]) * sign == np.sign(np.log(e["multiplier"])), f"{e['attribute']} wrong sign"
            checked += 1
    assert checked >= 5


def test_zero_effect_attributes_stay_under_the_fdr(scenario):
    """Among significant single-attribute DO/DON'T rules, the share with no planted difference <= FDR (+ slack)."""
    truth, attrs, perf, _, table = scenario
    accounts = attrs["creative_id"].map(perf.set_index("creative_id")["account_id"])
    planted = {m: _planted_log_multiplier(attrs, accounts, truth["effects"], m) for m in ("ctr", "cvr")}
    planted["score"] = planted["roas"] = planted["ctr"] + planted["cvr"]
    sig = table[table["recommendation"].isin(["DO", "DON'T"]) & (table["kind"] == "single")]
    assert len(sig) >= 10
    null = []
    for r in sig.itertuples():
        in_scope = accounts.eq(r.scope) if r.scope != "ALL" else pd.Series(True, index=attrs.index)
        has = attrs[r.attribute].map(lambda v, level=r.value: (str(v).lower() if isinstance(v, bool) else str(v)) == level)
        diff = planted[r.metric][in_scope & has].mean() - planted[r.metric][in_scope & ~has].mean()
        null.append(abs(diff) < 0.02)
    false_share = float(np.mean(null))
    assert false_share <= 0.10, f"{sum(null)} of {len(sig)} significant rules have no planted effect"


def test_rows_are_readable_and_consistent(scenario):
    _, _, _, _, table = scenario
    assert set(table["recommendation"]) <= {"DO", "DON'T", "TEST"}
    do = table[table["recommendation"] == "DO"]
    assert (do["lift"] > 0).all() and (table.loc[table["recommendation"] == "DON'T", "lift"] < 0).all()
    assert ((table["ci_low"] <= table["lift"]) & (table["lift"] <= table["ci_high"])).all()
    assert table["evidence_ids"].map(len).gt(0).all()
    face = do[(do["scope"] == "ALL") & (do["rule"] == "has_face=true") & (do["metric"] == "ctr")]
    assert len(face) == 1
    sentence = face["sentence"].iloc[0]
    assert sentence.startswith("Has face = true lifts CTR by") and "95% CI" in sentence and "e.g. cr_" in sentence


def test_placement_mix_does_not_masquerade_as_a_creative_effect():
    """An attribute concentrated in a low-CTR placement, with no effect of its own, is not a DON'T."""
    rng = np.random.default_rng(4)
    n = 400
    placement = rng.choice(["feed", "stories"], n)
    # 'dark_mode' appears mostly in stories, which has half the CTR of feed.
    dark = np.where(placement == "stories", rng.random(n) < 0.8, rng.random(n) < 0.2)
    log_ctr = np.log(0.01) + np.where(placement == "stories", np.log(0.5), 0) + rng.normal(0, 0.2, n)
    perf = pd.DataFrame({"creative_id": [f"cr_{i}" for i in range(n)], "account_id": "acc_01", "spend": 100.0,
                         "platform": "meta", "placement": placement, "ctr_shrunk": np.exp(log_ctr),
                         "score": log_ctr - log_ctr.mean()})
    attrs = pd.DataFrame({"creative_id": perf["creative_id"], "dark_mode": dark})
    params = RecommendationParams(metrics=("ctr",), combinations=False, scopes=("acc_01",))
    row = attribute_effects(attrs, perf, params).iloc[0]
    raw = np.exp(log_ctr[dark].mean() - log_ctr[~dark].mean()) - 1
    assert raw < -0.2  # the naive comparison says "dark mode costs 20 %+"
    assert abs(row["lift"]) < 0.06 and row["q_value"] > 0.05


def test_indicators_and_bad_input():
    attrs = pd.DataFrame({"creative_id": [f"c{i}" for i in range(30)],
                          "flag": [True, False] * 15, "colour": ["red", "blue", "green"] * 10,
                          "brightness": np.linspace(0, 1, 30), "rare": ["x"] + ["y"] * 29})
    ind = attribute_indicators(attrs, min_support=5)
    assert set(ind.columns) == {"flag=true", "colour=red", "colour=blue", "colour=green", "brightness=high"}
    assert ind["brightness=high"].sum() == 15
    with pytest.raises(ValueError, match="creative_id"):
        attribute_indicators(attrs.drop(columns="creative_id"))
    with pytest.raises(ValueError, match="c1 more than once"):
        attribute_indicators(pd.concat([attrs, attrs.iloc[[1]]]))
    q = benjamini_hochberg(np.array([0.01, 0.04, 0.03, np.nan, 0.5]))
    assert np.allclose(q[[0, 1, 2, 4]], [0.04, 0.16 / 3, 0.16 / 3, 0.5]) and np.isnan(q[3])

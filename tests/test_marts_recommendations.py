"""Recommendations: a short list of distinct findings that recovers planted element effects.

Goals (issue 14), checked on generated scenarios with ground truth: every planted effect of at
least 15 % recovered once, with the right sign, in its scope; at most one finding per planted
effect; at most 5 % of findings with no planted cause; at most 15 rows per scope. The held-out
variants change what the generator plants (other attributes, other sizes, other seeds) and what
the method sees (renamed columns and levels, collinear duplicate columns, generic object tags,
three of them proxies of planted attributes), so the thresholds are not tuned to one scenario.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from creative_dag.checks.marts import problems_recommendations
from creative_dag.marts.ranking import creative_totals, rank_creatives
from creative_dag.marts.recommendations import (
    RECOMMENDATION_COLUMNS,
    RecommendationParams,
    attribute_effects,
    attribute_indicators,
    benjamini_hochberg,
    indicator_clusters,
    recommend,
)
from creative_dag.synth import generate_scenario

ATTRIBUTES = ("background_style", "background_hue", "hue_family", "product", "product_kind", "has_face",
              "text_coverage", "has_cta", "cta_color", "cta_position", "headline_position", "headline_font",
              "orientation", "file_format")
MIN_PLANTED = np.log(1.15)  # stated size: effects of at least 15 % are checked (10 % ones are not reliable)
# Held-out variant 1: other attributes and sizes, one account-specific effect, a sub-threshold one.
VARIANT_1 = [{"attribute": "background_style", "value": "gradient", "metric": "ctr", "multiplier": 0.78, "accounts": []},
             {"attribute": "headline_position", "value": "top", "metric": "ctr", "multiplier": 1.22, "accounts": []},
             {"attribute": "product_kind", "value": "shape", "metric": "cvr", "multiplier": 0.8, "accounts": []},
             {"attribute": "has_face", "value": True, "metric": "ctr", "multiplier": 1.35, "accounts": ["acc_02"]},
             {"attribute": "text_coverage", "value": "none", "metric": "cvr", "multiplier": 1.12, "accounts": []}]
# Held-out variant 2: a negative CTR effect on a three-level attribute, a large CVR effect, an
# account-specific CTA-position effect.
VARIANT_2 = [{"attribute": "hue_family", "value": "cool", "metric": "ctr", "multiplier": 0.82, "accounts": []},
             {"attribute": "has_cta", "value": True, "metric": "cvr", "multiplier": 1.3, "accounts": []},
             {"attribute": "text_coverage", "value": "light", "metric": "ctr", "multiplier": 1.18, "accounts": []},
             {"attribute": "background_style", "value": "solid", "metric": "cvr", "multiplier": 0.82, "accounts": []},
             {"attribute": "cta_position", "value": "bottom_left", "metric": "ctr", "multiplier": 1.3,
              "accounts": ["acc_04"]}]
RENAMED = {"background_style": "scene", "hue_family": "tone_group", "background_hue": "backdrop", "product": "item",
           "product_kind": "item_render", "has_face": "person", "text_coverage": "copy_load", "has_cta": "button",
           "cta_color": "button_tint", "cta_position": "button_place", "headline_position": "title_place",
           "headline_font": "title_type", "orientation": "shape", "file_format": "encoding"}


def _scenario(out, seed: int, effects: list[dict] | None = None, n_creatives: int = 600):
    generate_scenario(out, n_creatives=n_creatives, n_days=120, seed=seed, render_images=False,
                      scenario=None if effects is None else {"effects": effects})
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
    return truth, attrs, perf


def _disguised(attrs: pd.DataFrame, seed: int) -> pd.DataFrame:
    """What the generator never makes: renamed columns and levels (no declared family applies),
    collinear duplicates of the face and headline columns, 12 null object tags and 3 tags that are
    proxies of planted attributes (r ~ 0.5), as an ImageNet tagger produces on ads."""
    rng = np.random.default_rng(seed)
    out = attrs.rename(columns=RENAMED)
    for col in out.columns[1:]:
        if not pd.api.types.is_bool_dtype(out[col]):
            out[col] = out[col].map(lambda v: f"{str(v)[::-1]}_{len(str(v))}")
    n = len(out)
    person = out["person"].astype(bool).to_numpy()
    top = (attrs["headline_position"] == "top").to_numpy()
    out["person_count"] = person * rng.integers(1, 4, n)
    out["person_area"] = person * rng.uniform(0.05, 0.4, n)
    out["title_on_top"] = top ^ (rng.random(n) < 0.04)
    for i in range(12):
        out[f"tag_generic_{i}"] = rng.random(n) < rng.uniform(0.1, 0.4)
    out["tag_binder"] = (top & (rng.random(n) < 0.6)) | (rng.random(n) < 0.1)
    out["tag_oil_filter"] = ((attrs["background_style"] == "gradient").to_numpy() & (rng.random(n) < 0.7)) \
        | (rng.random(n) < 0.05)
    out["tag_loupe"] = (person & (rng.random(n) < 0.6)) | (rng.random(n) < 0.08)
    return out


def _goal_figures(table: pd.DataFrame, truth: dict, attrs: pd.DataFrame, perf: pd.DataFrame) -> dict:
    """recovered / missed planted effects (>= 15 %), duplicates, findings without a planted cause.

    A finding restates a planted effect when its indicator correlates |r| >= 0.5 with the planted
    one in its scope (a mirror level, a collinear duplicate or a proxy tag all count). It has no
    planted cause when the planted log multiplier of its primary metric, regressed on its indicator
    (its interaction, for a pair) and the other findings of the scope, moves by less than 0.02.
    """
    ind = attribute_indicators(attrs)
    account = perf.set_index("creative_id")["account_id"].reindex(ind.index)
    creatives = truth["creatives"]
    gt = pd.DataFrame([c["attributes"] for c in creatives.values()], index=list(creatives)).reindex(ind.index)
    planted = pd.DataFrame({"ctr": [np.log(c["element_ctr_multiplier"]) for c in creatives.values()],
                            "cvr": [np.log(c["element_cvr_multiplier"]) for c in creatives.values()]},
                           index=list(creatives)).reindex(ind.index)
    planted["score"] = planted["roas"] = planted["ctr"] + planted["cvr"]
    hits = [gt[e["attribute"]].map(lambda v, val=e["value"]: v == val and type(v) is type(val)).astype(float)
            for e in truth["effects"]]
    found = table[table["recommendation"].isin(["DO", "DON'T"])]
    matches, no_cause = {}, []
    for idx, r in found.iterrows():
        scope = account.eq(r.scope) if r.scope != "ALL" else pd.Series(True, index=ind.index)
        x = ind.loc[scope, f"{r.attribute}={r.value}"]
        x = x.fillna(x.mean())
        matches[idx] = [] if r.kind != "single" else [
            (i, np.sign(c)) for i, e in enumerate(truth["effects"])
            if not (e["accounts"] and r.scope != "ALL" and r.scope not in e["accounts"])
            and abs(c := np.corrcoef(x, hits[i][scope])[0, 1]) >= 0.5]
        cols = [x.to_numpy()]
        if r.kind == "combination":
            xb = ind.loc[scope, f"{r.attribute_b}={r.value_b}"].fillna(0).to_numpy()
            cols = [x.to_numpy(), xb, x.to_numpy() * xb]
        for o in found[(found["scope"] == r.scope) & (found.index != idx) & (found["kind"] == "single")].itertuples():
            xo = ind.loc[scope, f"{o.attribute}={o.value}"]
            cols.append(xo.fillna(xo.mean()).to_numpy())
        design = np.column_stack([np.ones(int(scope.sum())), *cols])
        coef = np.linalg.lstsq(design, planted.loc[scope, r.metric].to_numpy(), rcond=None)[0]
        no_cause.append(abs(coef[1 if r.kind == "single" else 3]) < 0.02)
    recovered, missed = [], []
    for i, e in enumerate(truth["effects"]):
        if abs(np.log(e["multiplier"])) < MIN_PLANTED:
            continue
        for scope in e["accounts"] or ["ALL"]:
            right = [idx for idx, m in matches.items() if found.loc[idx, "scope"] == scope and any(
                j == i and np.sign(found.loc[idx, f"lift_{e['metric']}"]) * s == np.sign(np.log(e["multiplier"]))
                for j, s in m)]
            (recovered if len(right) == 1 else missed).append((e["attribute"], e["value"], scope, len(right)))
    per_effect: dict[tuple, int] = {}
    for idx, m in matches.items():
        for i, _ in m:
            per_effect[(i, found.loc[idx, "scope"])] = per_effect.get((i, found.loc[idx, "scope"]), 0) + 1
    return {"recovered": recovered, "missed": missed, "n_findings": len(found), "no_cause": int(np.sum(no_cause)),
            "duplicates": sum(v - 1 for v in per_effect.values()),
            "max_rows_per_scope": int(table.groupby("scope").size().max()) if len(table) else 0}


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    truth, attrs, perf = _scenario(tmp_path_factory.mktemp("recommendation_scenario"), seed=0)
    effects = attribute_effects(attrs, perf)
    table = recommend(attrs, perf, effects=effects)
    return truth, attrs, perf, effects, table


@pytest.fixture(scope="module")
def held_out(tmp_path_factory):
    """Two variants the defaults were not tuned on, as (truth, attrs seen by the method, perf, table)."""
    out = []
    for seed, effects, disguise in ((3, VARIANT_1, True), (5, VARIANT_2, False)):
        truth, attrs, perf = _scenario(tmp_path_factory.mktemp(f"variant_{seed}"), seed, effects)
        attrs = _disguised(attrs, seed) if disguise else attrs
        out.append((truth, attrs, perf, recommend(attrs, perf)))
    return out


def test_screening_recovers_planted_effects_with_the_right_sign(scenario):
    """Screening (`attribute_effects`): each planted effect >= 15 % significant (BH q <= 0.05) with
    the right sign where planted (account-specific effects in their account, others in ALL). A
    two-level attribute is tested on one level; the other level's effect is its mirror image."""
    truth, _attrs, _, effects, _ = scenario
    checked = 0
    for e in truth["effects"]:
        if abs(np.log(e["multiplier"])) < MIN_PLANTED:
            continue
        value = str(e["value"]).lower() if isinstance(e["value"], bool) else str(e["value"])
        for scope in e["accounts"] or ["ALL"]:
            rows = effects[(effects["scope"] == scope) & (effects["attribute"] == e["attribute"])
                           & (effects["metric"] == e["metric"])]
            row, sign = rows[rows["value"] == value], 1.0
            if row.empty:  # the mirror level of a two-level attribute
                row, sign = rows, -1.0
            assert len(row) == 1, f"{e['attribute']}={value} not tested in {scope}"
            r = row.iloc[0]
            assert r["q_value"] <= 0.05, f"{e['attribute']}={value} ({e['metric']}) in {scope}: q={r['q_value']:.3g}"
            assert np.sign(r["lift"]) * sign == np.sign(np.log(e["multiplier"])), f"{e['attribute']} wrong sign"
            checked += 1
    assert checked >= 5


def test_findings_meet_the_goals_on_the_default_scenario(scenario):
    truth, attrs, perf, _, table = scenario
    fig = _goal_figures(table, truth, attrs, perf)
    assert not fig["missed"], f"planted effects not recovered exactly once: {fig['missed']}"
    assert len(fig["recovered"]) == 5
    assert fig["duplicates"] == 0
    assert fig["no_cause"] <= 1 and fig["n_findings"] >= 8
    assert fig["max_rows_per_scope"] <= 15


def test_findings_meet_the_goals_on_held_out_variants(scenario, held_out):
    """Pooled over the default scenario and both held-out variants: every planted effect >= 15 %
    once with the right sign in its scope, no duplicates, <= 5 % of findings without a planted
    cause, <= 15 rows per scope; no object tag and no collinear duplicate column becomes a finding
    of its own."""
    runs = [scenario[:3] + (scenario[4],), *held_out]
    figures = [_goal_figures(table, truth, attrs, perf) for truth, attrs, perf, table in runs]
    assert [m for f in figures for m in f["missed"]] == []
    assert sum(len(f["recovered"]) for f in figures) == 14
    assert sum(f["duplicates"] for f in figures) == 0
    findings, no_cause = sum(f["n_findings"] for f in figures), sum(f["no_cause"] for f in figures)
    assert no_cause <= 0.05 * findings, f"{no_cause} of {findings} findings have no planted cause"
    assert max(f["max_rows_per_scope"] for f in figures) <= 15
    disguised = held_out[0][3]
    assert not disguised["attribute"].str.startswith(("tag_", "person_", "title_on")).any()
    person = disguised[(disguised["scope"] == "acc_02") & (disguised["attribute"] == "person")]
    assert len(person) == 1 and {"person_count=high", "person_area=high"} <= set(person["members"].iloc[0])
    # the members are columns (for BI) but words in the sentence a strategist reads
    assert "Also seen as Person area: high, Person count: high." in person["sentence"].iloc[0]
    assert "=" not in disguised["sentence"].str.cat()


def test_rows_are_readable_ranked_and_consistent(scenario):
    _, _, _, _, table = scenario
    assert list(table.columns) == list(RECOMMENDATION_COLUMNS)
    assert problems_recommendations(table) == []
    assert not table.duplicated(["scope", "finding_id"]).any()
    for _, g in table.groupby("scope"):
        assert list(g["rank"]) == list(range(1, len(g) + 1))
        assert g["shown"].tolist() == (g["rank"] <= 10).tolist()
        sig = g[g["recommendation"] != "TEST"]
        assert sig["expected_impact"].is_monotonic_decreasing
    sig = table[table["recommendation"] != "TEST"]
    assert (sig["stability"] >= 0.6).all() and (sig["prevalence"] >= 0.05).all()
    assert table["evidence_creatives"].map(len).gt(0).all()
    face = table[(table["scope"] == "ALL") & (table["attribute"] == "has_face")]
    assert len(face) == 1
    r = face.iloc[0]
    assert r["recommendation"] == "DO" and r["metric"] == "ctr" and r["finding"] == "Faces in the creative"
    assert r["lift_ctr"] == r["lift"] and np.isfinite([r["lift_score"], r["lift_cvr"], r["lift_roas"]]).all()
    assert r["sentence"].startswith("DO: Faces in the creative → CTR +") and "95% CI" in r["sentence"]
    assert "e.g. cr_" in r["sentence"].lower()
    assert "=" not in table["sentence"].str.cat()  # members in words ("Number of faces: high"), not face_count=high


def test_an_interaction_is_kept_and_a_pair_restating_one_effect_is_not():
    """Planted: A lifts by 25 %, A with C adds 30 % beyond both; B is a noisy copy of A (r ~ 0.75).
    Expected pairs: A & C only (A & B and B & C restate A's main effect); B is not a finding."""
    rng = np.random.default_rng(7)
    n = 900
    a = rng.random(n) < 0.5
    b = np.where(rng.random(n) < 0.75, a, rng.random(n) < 0.5)
    c = rng.random(n) < 0.5
    log_ctr = np.log(0.01) + np.log(1.25) * a + np.log(1.3) * (a & c) + rng.normal(0, 0.2, n)
    perf = pd.DataFrame({"creative_id": [f"cr_{i}" for i in range(n)], "account_id": "acc_01", "spend": 100.0,
                         "placement": rng.choice(["feed", "stories"], n), "ctr_shrunk": np.exp(log_ctr),
                         "score": log_ctr - log_ctr.mean()})
    attrs = pd.DataFrame({"creative_id": perf["creative_id"], "a": a, "b": b, "c": c})
    table = recommend(attrs, perf, RecommendationParams(metrics=("ctr",), scopes=("acc_01",)))
    pairs = table[table["kind"] == "combination"]
    assert pairs["finding_id"].tolist() == ["a=true & c=true"]
    assert 0.1 < pairs["lift"].iloc[0] < 0.5
    singles = table[(table["kind"] == "single") & (table["recommendation"] != "TEST")]
    # b is explained by a; c's average effect (its lift among A creatives, diluted) may be a finding.
    assert "a" in set(singles["attribute"]) and "b" not in set(singles["attribute"])


def test_pair_tests_are_the_interaction_coefficient_of_the_full_regression():
    """Every pair's beta is the interaction's coefficient in one least-squares fit of y on the strata, the
    selected representatives, the pair's main effects and the interaction (Frisch-Waugh-Lovell), and its
    standard error the cluster-robust one of that fit (residuals inflated by 1 / (1 - leverage))."""
    from creative_dag.marts.recommendations import _fixed_effects, _JointModel

    rng = np.random.default_rng(3)
    n = 240
    x_raw = (rng.random((n, 4)) < np.array([0.5, 0.4, 0.6, 0.3])).astype(float)
    x_raw[:, 1] = np.where(rng.random(n) < 0.6, x_raw[:, 0], x_raw[:, 1])  # correlated mains
    strata = rng.integers(0, 3, n)
    dummies = np.eye(3)[strata]
    sw = np.sqrt(rng.uniform(0.5, 2.0, n))
    y = (0.3 * x_raw[:, 0] - 0.2 * x_raw[:, 2] + 0.4 * x_raw[:, 0] * x_raw[:, 3] + 0.1 * strata
         + rng.normal(0, 0.3, n)) * sw
    q = _fixed_effects(pd.DataFrame({"stratum": strata}), ["stratum"], sw)
    groups = rng.integers(0, 150, n)
    names = ["a=true", "b=true", "c=true", "d=true"]
    model = _JointModel(x_raw, names, y, sw, q, groups)
    model.hold(["c=true"])
    params = RecommendationParams(min_support=5, min_combination_support=5)
    rows = model.pair_tests("acc_01", "ctr", {"a": "a=true", "b": "b=true", "c": "c=true", "d": "d=true"}, params)
    assert {(r["rule"], r["rule_b"]) for r in rows} >= {("a=true", "b=true"), ("a=true", "d=true"), ("c=true", "d=true")}
    clusters = np.unique(groups).size
    for r in rows:
        i, j = names.index(r["rule"]), names.index(r["rule_b"])
        mains = [k for k in (i, j) if names[k] != "c=true"]
        x = np.column_stack([dummies * sw[:, None], x_raw[:, [2]] * sw[:, None], x_raw[:, mains] * sw[:, None],
                             x_raw[:, i] * x_raw[:, j] * sw])
        beta, *_ = np.linalg.lstsq(x, y, rcond=None)
        assert r["beta"] == pytest.approx(beta[-1], rel=1e-8)
        xtx_inv = np.linalg.pinv(x.T @ x)
        lev = np.einsum("ij,jk,ik->i", x, xtx_inv, x)
        e = (y - x @ beta) / (1.0 - np.clip(lev, 0.0, 0.95))
        scores = np.stack([(x[groups == g] * e[groups == g, None]).sum(axis=0) for g in np.unique(groups)])
        cov = clusters / (clusters - 1) * xtx_inv @ (scores.T @ scores) @ xtx_inv
        assert r["se"] == pytest.approx(np.sqrt(cov[-1, -1]), rel=1e-6)


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
    assert recommend(attrs, perf, params).query("recommendation != 'TEST'").empty


def test_a_contrast_left_to_one_pair_by_the_strata_is_no_finding():
    """A small account (as acc_03 of a 150-creative export, 19 creatives): the tag is on every feed
    creative and on no stories creative, so once placement is held equal only the two reels creatives
    (one with, one without) carry its contrast. One parameter fits those two exactly, the sandwich
    standard error collapsed to ~1e-15 and the tag came out a DO with a CI of +19 % to +19 % and p = 0.
    Its estimate rests on two creatives: it is not tested, and not a finding."""
    from creative_dag.marts.recommendations import effective_support

    rng = np.random.default_rng(11)
    placement = np.array(["feed"] * 9 + ["stories"] * 9 + ["reels"] * 2)
    tag = np.array([True] * 9 + [False] * 9 + [True, False])
    log_ctr = np.log(0.01) + np.where(placement == "stories", np.log(0.7), 0.0) + rng.normal(0, 0.25, 20)
    perf = pd.DataFrame({"creative_id": [f"cr_{i}" for i in range(20)], "account_id": "acc_03", "spend": 100.0,
                         "platform": "meta", "placement": placement, "ctr_shrunk": np.exp(log_ctr),
                         "score": log_ctr - log_ctr.mean()})
    attrs = pd.DataFrame({"creative_id": perf["creative_id"], "tag_tiger_cat": tag})
    params = RecommendationParams(metrics=("score", "ctr"), scopes=("acc_03",))
    screen = attribute_effects(attrs, perf, params)
    assert screen.empty or not (screen["p_value"] < 0.05).any()
    table = recommend(attrs, perf, params)
    assert table.query("recommendation != 'TEST'").empty
    assert not ((table["ci_high"] - table["ci_low"]) < 1e-6).any()
    # What the guard measures: two creatives here, about n_with for a rare indicator, n for a balanced one.
    assert effective_support(np.array([0.0] * 18 + [0.5, -0.5])) == pytest.approx(2.0)
    rare = np.r_[np.ones(8), np.zeros(142)]
    assert 8 <= effective_support(rare - rare.mean()) <= 9.5
    balanced = np.r_[np.ones(50), np.zeros(50)]
    assert effective_support(balanced - balanced.mean()) == pytest.approx(100.0)


def test_a_finding_is_named_for_its_cause_not_for_the_object_tag_that_carried_it():
    """The effect sits on the image content (a cat, tagged by ImageNet) and the tag follows the product
    category (one cause): the estimate may come from the tag, but the finding reads as the category."""
    rng = np.random.default_rng(5)
    n = 300
    pets = rng.random(n) < 0.4
    tag = np.where(rng.random(n) < 0.92, pets, ~pets)
    log_ctr = np.log(0.01) + np.log(1.35) * tag + rng.normal(0, 0.2, n)
    perf = pd.DataFrame({"creative_id": [f"cr_{i}" for i in range(n)], "account_id": "acc_01", "spend": 100.0,
                         "placement": rng.choice(["feed", "stories"], n), "ctr_shrunk": np.exp(log_ctr),
                         "score": log_ctr - log_ctr.mean()})
    attrs = pd.DataFrame({"creative_id": perf["creative_id"], "tag_tiger_cat": tag,
                          "product_category": np.where(pets, "pet_supplies", "beauty")})
    table = recommend(attrs, perf, RecommendationParams(metrics=("ctr",), scopes=("acc_01",), combinations=False))
    found = table[table["recommendation"] == "DO"]
    assert len(found) == 1
    row = found.iloc[0]
    assert row["attribute"] == "tag_tiger_cat"  # the member with the stronger signal carried the estimate
    assert row["finding_id"].startswith("product_category=")
    assert row["finding"].startswith("Product category") and "tiger" not in row["sentence"].split("→")[0]
    assert "tag_tiger_cat=true" in list(row["members"])
    # the support counted is the tag's, so the sentence says what was counted
    assert "measured as Image tagged 'tiger cat': " in row["sentence"] and "tag_" not in row["sentence"]


def test_indicators_clusters_and_bad_input():
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
    # Declared family (faces) at |r| ~ 0.6 and an undeclared pair at |r| = 1 are one cause each;
    # levels of one attribute never merge.
    rng = np.random.default_rng(0)
    face = rng.random(200) < 0.4
    frame = pd.DataFrame({"creative_id": range(200), "face_present": face,
                          "face_area_ratio": np.where(face & (rng.random(200) < 0.7), rng.random(200) + 1, 0.0),
                          "x": face, "y": ~face, "hue": rng.choice(["warm", "cool"], 200)})
    causes = indicator_clusters(attribute_indicators(frame))
    assert causes["face_area_ratio=high"] == causes["x=true"] == causes["y=true"] == "face_present=true"
    assert causes.nunique() == 2
    empty = recommend(pd.DataFrame({"creative_id": pd.Series(dtype=object)}), pd.DataFrame(
        {"creative_id": pd.Series(dtype=object), "account_id": pd.Series(dtype=object), "spend": pd.Series(dtype=float)}))
    assert list(empty.columns) == list(RECOMMENDATION_COLUMNS) and empty.empty
    assert empty.dtypes.astype(str).to_dict() == {c: t if t != "object" else "object"
                                                  for c, t in RECOMMENDATION_COLUMNS.items()}


@pytest.mark.slow
def test_goal_figures_hold_across_seeds(tmp_path):
    """Five more seeds (default and held-out effects): recall of planted effects >= 15 % at least
    85 % (measured 22 / 24: account-only effects in a 170-230-creative account are at the power
    limit), no duplicates, <= 5 % findings without a planted cause, <= 15 rows per scope."""
    figures = []
    for seed, effects, disguise in ((11, None, False), (12, None, False), (21, VARIANT_1, True),
                                    (22, VARIANT_2, True), (23, VARIANT_2, False)):
        truth, attrs, perf = _scenario(tmp_path / str(seed), seed, effects)
        attrs = _disguised(attrs, seed) if disguise else attrs
        figures.append(_goal_figures(recommend(attrs, perf), truth, attrs, perf))
    recovered = sum(len(f["recovered"]) for f in figures)
    assert recovered >= 0.85 * (recovered + sum(len(f["missed"]) for f in figures))
    assert sum(f["duplicates"] for f in figures) == 0
    assert sum(f["no_cause"] for f in figures) <= 0.05 * sum(f["n_findings"] for f in figures)
    assert max(f["max_rows_per_scope"] for f in figures) <= 15

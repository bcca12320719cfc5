"""CBR on a generated scenario with known answers: backtest vs baselines, near-duplicates, as-of.

TEST BLOCK VECTORS. The encoder assets are not used here (they are tested on their own and are
slow). Instead two blocks are derived from the scenario's ground truth, plus noise, standing in for
what an image encoder would see:
* `visual`: one-hot of the rendered element attributes (background style and hue, hue family,
  product, face, text coverage, CTA, positions, font, orientation) + N(0, 0.15) noise per dim, the
  view of an interpretable colour/layout extractor;
* `clip`: 0.6 x an "image identity" unit vector (seeded by the full attribute record, headline
  included, so near-duplicate variants of one family get the same one) + 0.8 x the normalised
  attribute vector, + small noise: a semantic embedding in which variants are near-identical.
The scenario plants its effects in visual elements only (context multipliers set to 1), so a
method that sees the creative should rank outcomes better than ones that see only the account or
the targeting context.
"""

from __future__ import annotations

import hashlib
import json

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from creative_dag.cbr.backtest import BacktestConfig, run_backtest
from creative_dag.cbr.case_base import OUTCOME_COLUMNS, build_case_base
from creative_dag.cbr.index import to_days
from creative_dag.cbr.query import (
    CaseMemory,
    format_neighbors,
    index_dir_for,
    similar,
    similar_for_creative,
)
from creative_dag.features.build import build_outcomes
from creative_dag.resources.warehouse import DuckDBWarehouse

NEUTRAL = {"cpm": 1.0, "ctr": 1.0, "cvr": 1.0}
VISUAL_SCENARIO = {
    "context": {
        "placement_effects": {p: NEUTRAL for p in ("feed", "stories", "reels", "search_display", "discover")},
        "audience_effects": {a: NEUTRAL for a in ("broad", "interest", "lookalike", "retargeting")},
        "objective_effects": {o: NEUTRAL for o in ("conversions", "traffic", "awareness")},
    },
    "effects": [
        {"attribute": "hue_family", "value": "warm", "metric": "ctr", "multiplier": 1.6, "accounts": []},
        {"attribute": "has_face", "value": True, "metric": "ctr", "multiplier": 1.5, "accounts": []},
        {"attribute": "text_coverage", "value": "heavy", "metric": "ctr", "multiplier": 0.6, "accounts": []},
        {"attribute": "background_style", "value": "photo", "metric": "cvr", "multiplier": 1.5, "accounts": []},
    ],
    "quality": {"ctr_sigma": 0.1, "cvr_sigma": 0.1},
}
ATTRIBUTES = ("background_style", "hue_family", "background_hue", "product", "product_kind", "has_face",
              "text_coverage", "has_cta", "cta_color", "cta_position", "headline_position", "headline_font",
              "orientation")
PRELAUNCH = ("creative_id", "account_id", "campaign_id", "launch_date", "image_path", "platform", "placement",
             "format", "objective", "audience", "country", "product_category", "headline", "primary_text", "cta")


def ground_truth_blocks(creatives: pd.DataFrame, truth: dict, seed: int = 0) -> dict[str, pd.DataFrame]:
    """Test-only block tables derived from ground truth (see module docstring)."""
    rng = np.random.default_rng(seed)
    tokens = [[f"{a}={truth['creatives'][c]['attributes'].get(a)}" for a in ATTRIBUTES] for c in creatives["creative_id"]]
    vocab = {t: i for i, t in enumerate(sorted({t for row in tokens for t in row}))}
    onehot = np.zeros((len(tokens), len(vocab)))
    for i, row in enumerate(tokens):
        onehot[i, [vocab[t] for t in row]] = 1.0
    visual = onehot + rng.normal(0, 0.15, onehot.shape)
    identity = []
    for c in creatives["creative_id"]:
        attrs = truth["creatives"][c]["attributes"]
        record = json.dumps({k: attrs[k] for k in sorted(attrs) if k != "extra_lines"}, sort_keys=True, default=str)
        identity.append(np.random.default_rng(int(hashlib.sha256(record.encode()).hexdigest()[:8], 16)).normal(size=64))
    identity = np.array(identity)
    identity /= np.linalg.norm(identity, axis=1, keepdims=True)
    attrs_unit = onehot / np.linalg.norm(onehot, axis=1, keepdims=True)
    clip = np.hstack([0.6 * identity, 0.8 * attrs_unit]) + rng.normal(0, 0.01, (len(tokens), 64 + len(vocab)))
    ids = creatives["creative_id"].astype(str)
    return {"visual": pd.DataFrame({"creative_id": ids, "vector": list(visual)}),
            "clip": pd.DataFrame({"creative_id": ids, "vector": list(clip)})}


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    from creative_dag.synth import generate_scenario

    root = tmp_path_factory.mktemp("cbr_scenario")
    generate_scenario(root, n_creatives=200, n_days=90, seed=3, image_size=64, scenario=VISUAL_SCENARIO)
    creatives = pd.read_csv(root / "creatives.csv")
    daily = pd.read_csv(root / "daily_metrics.csv")
    truth = json.loads((root / "ground_truth.json").read_text())
    prelaunch = creatives[list(PRELAUNCH)].copy()
    outcomes = build_outcomes(creatives, daily)
    blocks = ground_truth_blocks(creatives, truth)
    build = build_case_base(prelaunch, outcomes, blocks, daily)
    return {"root": root, "creatives": creatives, "daily": daily, "truth": truth, "prelaunch": prelaunch,
            "outcomes": outcomes, "blocks": blocks, "build": build, "memory": CaseMemory(build.frame)}


@pytest.fixture(scope="module")
def backtest_result(scenario):
    return run_backtest(scenario["build"].frame, scenario["memory"], BacktestConfig(gbm_refit_days=14))


def test_case_base_shape_blocks_and_outcome_group(scenario):
    frame = scenario["build"].frame
    assert len(frame) == 200 and frame["creative_id"].is_unique
    assert scenario["build"].layout.blocks == ("clip", "visual", "context")
    # Unavailable blocks are present as all-null columns; available ones are unit vectors.
    assert frame["cnn"].isna().all() and frame["text"].isna().all()
    assert all(abs(np.linalg.norm(v) - 1) < 1e-5 for v in frame["visual"])
    assert set(frame["blocks_present"]) == {"clip,visual,context"}
    # Outcome columns are one prefixed group; nothing leaky from the export reaches the case base.
    assert set(OUTCOME_COLUMNS) <= set(frame.columns)
    assert not {"last_7d_ctr", "lifetime_spend", "lifetime_roas", "ctr", "impressions"} & set(frame.columns)
    # available_date = mature_date (= launch + 14 days here).
    assert (pd.to_datetime(frame["available_date"]) == pd.to_datetime(frame["mature_date"])).all()
    assert ((pd.to_datetime(frame["mature_date"]) - pd.to_datetime(frame["launch_date"])).dt.days == 14).all()


def test_outcomes_cover_the_maturity_window_only(scenario):
    frame = scenario["build"].frame.set_index("creative_id")
    daily = scenario["daily"].copy()
    daily["date"] = pd.to_datetime(daily["date"])
    long_lived = scenario["outcomes"].sort_values("days_active").iloc[-1]["creative_id"]
    row = frame.loc[long_lived]
    inside = daily[(daily["creative_id"] == long_lived) & (daily["date"] >= pd.Timestamp(row["launch_date"]))
                   & (daily["date"] < pd.Timestamp(row["mature_date"]))]
    assert row["outcome_impressions"] == inside["impressions"].sum()
    assert row["outcome_clicks"] == inside["clicks"].sum()
    lifetime = daily.loc[daily["creative_id"] == long_lived, "impressions"].sum()
    assert lifetime > row["outcome_impressions"]  # the days after maturity are not in the label


def test_cbr_beats_account_mean_and_context_only_baselines(backtest_result):
    r = backtest_result
    print(r.summary_markdown())
    for baseline in ("account_mean", "context_knn"):
        assert r.value("cbr", "spearman") >= r.value(baseline, "spearman") + 0.05, baseline
        assert r.value("cbr", "spearman_within_cohort") >= r.value(baseline, "spearman_within_cohort") + 0.3, baseline
        assert r.value("cbr", "ndcg@10") >= r.value(baseline, "ndcg@10") + 0.04, baseline
    # The planted effects are visual: the visual block alone ranks far better than context alone.
    assert r.value("block:visual", "spearman_within_cohort") >= r.value("block:context", "spearman_within_cohort") + 0.3
    assert r.value("cbr", "spearman") > r.value("random", "spearman") + 0.4
    # Table shape: method x metric x window, with the GBM baseline and ablations present.
    methods = set(r.metrics["method"])
    assert {"cbr", "cbr_learned", "account_mean", "context_knn", "gbm_prelaunch", "block:visual",
            "without:clip", "random"} <= methods
    assert set(r.metrics["metric"]) == {"spearman", "spearman_within_cohort", "ndcg@10", "top_decile_precision"}


def test_learned_weights_never_see_the_test_window(scenario, backtest_result):
    learned = backtest_result.learned_weights
    assert learned is not None and learned["visual"] > 0
    # Scramble the outcomes of every test-window creative: the learned weights must not move.
    frame = scenario["build"].frame.copy()
    test_ids = set(backtest_result.predictions.loc[backtest_result.predictions["window"] == "test", "creative_id"])
    sel = frame["creative_id"].isin(test_ids)
    rng = np.random.default_rng(5)
    for c in ("outcome_impressions", "outcome_clicks", "outcome_conversions"):
        frame.loc[sel, c] = rng.permutation(frame.loc[sel, c].to_numpy())
    frame.loc[sel, "outcome_score"] = rng.permutation(frame.loc[sel, "outcome_score"].to_numpy())
    again = run_backtest(frame, CaseMemory(frame), BacktestConfig(gbm_refit_days=14, ablations=False))
    assert again.learned_weights == learned


def test_near_duplicate_variants_are_each_others_top_neighbours(scenario):
    memory, families = scenario["memory"], scenario["truth"]["families"]
    assert len(families) >= 5
    for family, members in families.items():
        for cid in members:
            top = memory.similar(cid, k=len(members) - 1, as_of="2100-01-01")
            assert set(top["creative_id"]) == set(members) - {cid}, (family, cid, list(top["creative_id"]))


def test_no_neighbour_launched_or_matured_after_the_query(scenario):
    memory, frame = scenario["memory"], scenario["build"].frame
    table = memory.neighbors(k=10)
    launch = to_days(table["launch_date"])
    assert (to_days(table["neighbor_launch_date"]) < launch).all()
    assert (to_days(table["neighbor_mature_date"]) < launch).all()
    assert (table["neighbor_id"] != table["creative_id"]).all()
    # The earliest creatives have no history at all; later ones get k neighbours, rank 1..k.
    first_day = pd.to_datetime(frame["launch_date"]).min()
    early = frame.loc[pd.to_datetime(frame["launch_date"]) < first_day + pd.Timedelta(days=15), "creative_id"]
    assert not set(early) & set(table["creative_id"])
    per_query = table.groupby("creative_id")["neighbor_rank"].agg(["min", "max", "count"])
    assert (per_query["min"] == 1).all() and (per_query["count"] == per_query["max"]).all()
    assert table.groupby("creative_id")["similarity"].apply(lambda s: s.is_monotonic_decreasing).all()
    # A single as-of query: same rule, and a later as-of date sees more cases.
    late = frame.sort_values("launch_date").iloc[-1]["creative_id"]
    own = memory.similar(late, k=200)
    later = memory.similar(late, k=200, as_of="2100-01-01")
    assert (pd.to_datetime(own["mature_date"]) < pd.Timestamp(frame.set_index("creative_id").at[late, "launch_date"])).all()
    assert len(later) > len(own)


def test_similar_with_weights_filters_and_a_new_creative(scenario):
    memory, frame = scenario["memory"], scenario["build"].frame
    cid = frame.sort_values("launch_date").iloc[-1]["creative_id"]
    only_account = similar(memory, cid, k=5, filters={"account_id": "acc_02"}, weights="context=0")
    assert (only_account["account_id"] == "acc_02").all()
    assert only_account["sim_context"].notna().all()  # shown, though it weighs 0 here
    expected = (only_account["sim_clip"] * 1.0 + only_account["sim_visual"] * 1.0) / 2.0
    np.testing.assert_allclose(only_account["similarity"], expected, atol=1e-6)
    # A new creative given as vectors + context values (no as-of limit by default).
    row = frame.set_index("creative_id").loc[cid]
    query = {"visual": row["visual"], "platform": row["platform"], "placement": row["placement"]}
    new = memory.similar(query, k=3)
    assert new.iloc[0]["creative_id"] == cid and new.iloc[0]["sim_visual"] == pytest.approx(1.0, abs=1e-5)
    assert np.isnan(new.iloc[0]["sim_clip"])  # not given in the query
    with pytest.raises(ValueError, match="query block 'visual' has 3 values"):
        memory.similar({"visual": [1.0, 0.0, 0.0]})
    with pytest.raises(KeyError, match="cr_999999"):
        memory.similar("cr_999999")
    with pytest.raises(ValueError, match="unknown column 'colour'"):
        memory.similar(cid, filters={"colour": "red"})


def test_bad_block_rows_count_as_missing_and_are_reported(scenario):
    blocks = {b: t.copy() for b, t in scenario["blocks"].items()}
    visual = blocks["visual"]
    visual.at[0, "vector"] = np.zeros(len(visual.at[0, "vector"]))          # degenerate
    visual.at[1, "vector"] = np.asarray(visual.at[1, "vector"])[:-2]        # wrong length
    visual.at[2, "vector"] = np.full(len(visual.at[2, "vector"]), np.nan)   # not finite
    blocks["text"] = pd.DataFrame({"creative_id": [], "vector": []})        # model unavailable
    build = build_case_base(scenario["prelaunch"], scenario["outcomes"], blocks, scenario["daily"])
    report = build.report["blocks"]
    assert report["visual"]["bad_rows"] == 3 and report["visual"]["rows"] == 197
    assert report["text"]["available"] is False
    bad_ids = visual["creative_id"].iloc[:3]
    rows = build.frame.set_index("creative_id").loc[bad_ids]
    assert rows["visual"].isna().all() and (rows["blocks_present"] == "clip,context").all()
    # Those cases still retrieve and are retrieved, scored over the blocks they share.
    memory = CaseMemory(build.frame)
    assert len(memory.index.groups) == 2
    res = memory.similar(bad_ids.iloc[0], k=3, as_of="2100-01-01")
    assert res["sim_visual"].isna().all() and res["similarity"].notna().all()


def test_assets_materialise_and_cli_reads_the_persisted_index(scenario, tmp_path):
    from creative_dag.assets import cbr as cbr_assets
    from creative_dag.checks import cbr as cbr_checks
    from creative_dag.resources.landing import LandingResource
    from creative_dag.resources.warehouse import WarehouseResource

    db = tmp_path / "creative.duckdb"
    wh = DuckDBWarehouse(db)
    wh.write_table("features.prelaunch", scenario["prelaunch"].assign(launch_date=pd.to_datetime(scenario["prelaunch"]["launch_date"]).dt.date))
    wh.write_table("features.outcomes", scenario["outcomes"])
    daily = scenario["daily"].assign(date=pd.to_datetime(scenario["daily"]["date"]).dt.date)
    wh.write_table("raw.daily_metrics", daily)
    for block, table in scenario["blocks"].items():
        wh.write_table(f"embeddings.{block}", table.assign(vector=[np.asarray(v).tolist() for v in table["vector"]]))
    assets = dg.load_assets_from_modules([cbr_assets])
    checks = dg.load_asset_checks_from_modules([cbr_checks])
    result = dg.materialize(
        [*assets, *checks],
        resources={"warehouse": WarehouseResource(database=str(db)), "landing": LandingResource(root=str(scenario["root"]))},
        run_config={"ops": {"cbr__backtest": {"config": {"gbm_refit_days": 14, "ablations": False}}}},
        selection=dg.AssetSelection.groups("cbr"),
    )
    assert result.success
    evaluations = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert evaluations == {"decision_time_columns": True, "vectors_and_dates": True, "as_of_neighbors": True,
                           "cbr_beats_account_mean": True}
    meta = {e.asset_key.to_user_string(): e.materialization.metadata for e in result.get_asset_materialization_events()}
    assert meta["cbr/case_base"]["blocks_available"].value == "clip, visual, context"
    assert meta["cbr/neighbors"]["as_of_violations"].value == 0
    assert meta["cbr/backtest"]["CBR Spearman"].value > meta["cbr/backtest"]["account_mean Spearman"].value
    assert "| cbr " in meta["cbr/backtest"]["summary"].value
    assert (index_dir_for(db) / "manifest.json").exists()
    # The CLI path: persisted index reused (same fingerprint), as-of the creative's launch date.
    case_base = wh.read_table("cbr.case_base")
    cid = case_base.sort_values("launch_date").iloc[-1]["creative_id"]
    out = similar_for_creative(wh, cid, k=5, weights="clip=1,visual=2")
    assert len(out) == 5 and (pd.to_datetime(out["mature_date"]) < pd.Timestamp(case_base.set_index("creative_id").at[cid, "launch_date"])).all()
    text = format_neighbors(out)
    assert out.iloc[0]["creative_id"] in text and "sim_visual" in text
    assert "no eligible cases" in format_neighbors(out.iloc[0:0])
    with pytest.raises(LookupError, match="cbr/case_base"):
        similar_for_creative(DuckDBWarehouse(tmp_path / "empty.duckdb"), cid)
    # A leaky column in the case base fails the blocking decision-time check.
    wh.write_table("cbr.case_base", case_base.assign(lifetime_roas=1.0, ctr=0.01))
    check_context = dg.build_asset_check_context(resources={
        "warehouse": WarehouseResource(database=str(db)), "landing": LandingResource(root=str(scenario["root"]))})
    evaluation = cbr_checks.case_base_decision_time_columns(check_context)
    assert not evaluation.passed
    assert set(evaluation.metadata["denied_columns"].value) == {"lifetime_roas", "ctr"}


def test_ranking_metrics_equal_scipys_on_ties_nans_and_constant_cohorts():
    """The backtest's own rank code (it ranks thousands of cohorts per run) gives scipy's numbers to the bit."""
    from scipy.stats import rankdata, spearmanr

    from creative_dag.cbr.backtest import _spearman, average_ranks, evaluate_ranking

    rng = np.random.default_rng(3)
    for trial in range(3000):
        n = int(rng.integers(1, 30))
        a = [rng.normal(size=n), rng.integers(0, 3, size=n).astype(float), np.round(rng.normal(size=n), 1)][trial % 3]
        b = rng.integers(0, 4, size=n).astype(float) if trial % 2 else rng.normal(size=n)
        if trial % 50 == 0 and n:
            a[-1] = np.nan
        np.testing.assert_array_equal(average_ranks(a), rankdata(a))
        if n >= 3 and not (np.allclose(a, a[0]) or np.allclose(b, b[0])):
            expected = float(spearmanr(a, b).statistic)
            assert _spearman(a, b) == expected or (np.isnan(expected) and np.isnan(_spearman(a, b)))
    assert np.isnan(_spearman(np.ones(5), np.arange(5.0)))        # a constant side has no rank correlation
    assert np.isnan(_spearman(np.arange(2.0), np.arange(2.0)))     # nor do two values
    cohorts = np.repeat(np.arange(4), 6)
    pred, actual = rng.normal(size=24), rng.normal(size=24)
    pred[:6] = 1.0                                                 # a cohort the method cannot order counts 0
    scores = evaluate_ranking(pred, actual, cohorts, BacktestConfig(), np.random.default_rng(0))
    within = [0.0] + [float(spearmanr(pred[c * 6:(c + 1) * 6], actual[c * 6:(c + 1) * 6]).statistic) for c in (1, 2, 3)]
    assert scores["spearman_within_cohort"] == pytest.approx(np.mean(within), abs=1e-15)
    assert scores["spearman"] == float(spearmanr(pred, actual).statistic)

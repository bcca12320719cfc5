"""The prelaunch forecast (creative_dag.forecast) on a generated scenario with known answers.

Uses the visual-effects scenario of tests/test_cbr_scenario.py (effects planted in image elements only,
block vectors derived from ground truth): the forecast must rank the test window better than the
baselines that cannot see the creative, report a calibrated interval, never use what happened after a
creative's launch, and save models a user can reload without pickle.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
from test_cbr_scenario import scenario  # noqa: F401  (module fixture: tests/ is on sys.path)
from test_worker_processes import _children

from creative_dag.cbr.backtest import AsOfLabels, BacktestConfig, run_backtest
from creative_dag.cbr.query import CaseMemory
from creative_dag.forecast.model import (
    ForecastConfig,
    adapted_level,
    rolling_conformal,
    run_forecast,
    save_models,
)
from creative_dag.forecast.targets import KpiTarget, TargetSpec
from creative_dag.forecast.validation import boosting_validation

FAST = ForecastConfig(kpis=("score", "ctr"), evaluate_kpis=("score",))


@pytest.fixture(scope="module")
def forecast(scenario):  # noqa: F811
    truth = scenario["truth"]["creatives"]
    oracle = {"score": {c: v["expected_outcome"] for c, v in truth.items()},
              "ctr": {c: v["observable_ctr"] for c, v in truth.items()}}
    return run_forecast(scenario["build"].frame, scenario["memory"], None, FAST, oracle=oracle)


def test_the_table_says_how_many_forecasts_were_the_account_level():
    """On a short history the validation window comes before any model could be fitted: every input set
    forecasts the account's level and their Table-I rows agree to the last digit. n_account_level says so."""
    from creative_dag.forecast.model import RollingResult, evaluate_forecast

    rng = np.random.default_rng(0)
    rows = np.arange(40)
    actual = rng.normal(size=40)
    n_train = np.where(rows < 25, 0, 30)  # the first 25 launches: fewer than min_train matured cases
    res = RollingResult(rows, actual + rng.normal(0, 0.5, 40), actual, np.full(40, -1), n_train)
    window = pd.Series(np.where(rows < 20, "validation", "test"), index=rows)
    table = pd.DataFrame(evaluate_forecast("context", "score", res, actual, window, np.zeros(40, int),
                                           BacktestConfig(), None, None)).set_index("window")
    assert table.loc["validation", "n_account_level"] == 20 and table.loc["validation", "n"] == 20
    assert table.loc["test", "n_account_level"] == 5 and table.loc["test", "n"] == 20


@pytest.mark.slow
def test_forecast_ranks_better_than_what_cannot_see_the_creative(scenario, forecast):  # noqa: F811
    bt = run_backtest(scenario["build"].frame, scenario["memory"], BacktestConfig(ablations=False, learn_weights=False))
    served = forecast.served("score")
    print(forecast.table_markdown("test"))
    for baseline in ("account_mean", "context_knn", "gbm_prelaunch"):
        assert served >= bt.value(baseline, "spearman") + 0.08, (baseline, served, bt.value(baseline, "spearman"))
    # The CBR forecast is a member of the served ensemble; the ensemble must not lose to it.
    assert served >= bt.value("cbr", "spearman") - 0.02
    # A model that sees the images beats one on the account and context only, and the observable oracle
    # (ground truth without the quality draw) bounds them all.
    assert forecast.value("all_blocks", "score") > forecast.value("context", "score") + 0.1
    assert forecast.value("observable oracle", "score") > served
    # The 80 % interval covers roughly 80 % of the test window (88 creatives: ±0.08 is sampling noise).
    assert 0.7 <= forecast.served("score", "interval_coverage") <= 0.95
    assert 0.7 <= forecast.served("ctr", "interval_coverage") <= 0.97
    table = forecast.performance
    assert {"rmse", "mae", "r2", "spearman", "spearman_within_cohort", "interval_coverage", "n"} <= set(table.columns)
    # the coverage says over how many creatives: the ones with an interval, as in marts.predictions
    served_rows = table[table["served"]].set_index(["kpi", "window"])
    live = forecast.predictions.assign(has=forecast.predictions["lower"].notna() & forecast.predictions["realised"].notna())
    for (kpi, window), row in served_rows.iterrows():
        rows = live[(live["kpi"] == kpi) & (live["window"] == window)]
        assert row["n_with_interval"] == rows["has"].sum() <= row["n"], (kpi, window)
    assert (table.loc[~table["served"], "n_with_interval"] == 0).all()
    assert set(table.loc[table["kpi"] == "score", "input_set"]) >= {
        "context", "block:clip", "block:visual", "all_blocks", "all+cbr", "cbr", "served", "observable oracle"}
    assert set(table["target"]) >= {"normalised", "raw"}


@pytest.mark.slow
def test_predictions_one_row_per_creative_and_kpi_with_evidence(scenario, forecast):  # noqa: F811
    p = forecast.predictions
    assert not p.duplicated(["creative_id", "kpi"]).any()
    assert set(p["kpi"]) == {"score", "ctr"}
    assert p["forecast"].notna().all()
    # Intervals start once 10 residuals are known before a launch: every later creative has one.
    forecast_rows = p[p["lower"].notna()]
    assert len(forecast_rows) > 0.6 * len(p)
    first_interval = pd.to_datetime(forecast_rows["launch_date"]).min()
    assert p.loc[pd.to_datetime(p["launch_date"]) > first_interval + pd.Timedelta(days=7), "lower"].notna().all()
    assert (forecast_rows["lower"] <= forecast_rows["forecast"] + 1e-9).all()
    assert (forecast_rows["forecast"] <= forecast_rows["upper"] + 1e-9).all()
    assert (p.loc[p["kpi"] == "ctr", "forecast"].dropna() >= 0).all()
    # Evidence ids are as-of neighbours: launched before the creative.
    launch = scenario["build"].frame.set_index("creative_id")["launch_date"]
    for _, row in p[p["kpi"] == "score"].head(40).iterrows():
        assert 0 < len(row["evidence_ids"]) <= 3
        assert all(pd.Timestamp(launch[e]) < pd.Timestamp(row["launch_date"]) for e in row["evidence_ids"])
    # A model only ever trained on the past.
    trained = p.dropna(subset=["model_trained_through"])
    assert (pd.to_datetime(trained["model_trained_through"]) < pd.to_datetime(trained["launch_date"])).all()
    assert set(p["window"]) <= {"validation", "test", "live", "unevaluated"}
    # Before any model, the rows say so (the case memory's member made them look fitted: n_train 1, 'ensemble')
    unfitted = p[p["n_train"] == 0]
    assert len(unfitted) and (unfitted["input_set"] == "account level (too little history)").all()
    assert unfitted["model_trained_through"].isna().all() and p.loc[p["n_train"] > 0, "model_trained_through"].notna().all()


@pytest.mark.slow
def test_nothing_after_a_launch_reaches_its_forecast(scenario):  # noqa: F811
    frame = scenario["build"].frame
    config = ForecastConfig(kpis=("score",), evaluate=False)
    before = run_forecast(frame, CaseMemory(frame), None, config).predictions
    # Rewrite the outcomes of every creative launched after the cut: forecasts up to the cut must not move.
    launch = pd.to_datetime(frame["launch_date"])
    cut = launch.min() + (launch.max() - launch.min()) * 0.6
    later = launch > cut
    changed = frame.copy()
    rng = np.random.default_rng(11)
    for col in ("outcome_impressions", "outcome_clicks", "outcome_conversions", "outcome_spend", "outcome_revenue",
                "outcome_score"):
        changed.loc[later, col] = rng.permutation(changed.loc[later, col].to_numpy())
    after = run_forecast(changed, CaseMemory(changed), None, config).predictions
    early = pd.to_datetime(before["launch_date"]) <= cut
    assert early.sum() > 50
    for col in ("forecast", "lower", "upper"):
        np.testing.assert_allclose(before.loc[early, col].to_numpy(float), after.loc[early, col].to_numpy(float),
                                   rtol=1e-9, atol=1e-12, err_msg=col)
    late = ~early & before["forecast"].notna()
    assert not np.allclose(before.loc[late, "forecast"], after.loc[late, "forecast"])


def test_normalised_target_round_trips_and_uses_only_the_past(scenario):  # noqa: F811
    frame = scenario["build"].frame
    labels = AsOfLabels(frame)
    for kpi in ("score", "ctr", "roas"):
        target = KpiTarget(frame, kpi, TargetSpec(), labels)
        rows = np.flatnonzero(np.isfinite(target.level) & np.isfinite(target.value))
        back = target.from_model(target.to_model(target.value[rows], rows), rows)
        np.testing.assert_allclose(back, target.value[rows], rtol=1e-9)
    # The trailing level of the last creative ignores a case that became available after its launch.
    target = KpiTarget(frame, "ctr", TargetSpec(), labels)
    last = int(np.argmax(target.launch))
    future = np.flatnonzero(target.available >= target.launch[last])
    changed = frame.copy()
    changed.loc[changed.index[future], "outcome_clicks"] *= 3
    again = KpiTarget(changed, "ctr", TargetSpec(), AsOfLabels(changed))
    assert again.level[last] == pytest.approx(target.level[last])


def _error_stream(scale, seed: int, n_days: int = 300, per_day: int = 3, delay: int = 7):
    """Forecasts of 0 whose errors have standard deviation scale(launch day), known `delay` days later."""
    rng = np.random.default_rng(seed)
    launch = np.repeat(np.arange(n_days), per_day)
    z_actual = rng.normal(0.0, 1.0, len(launch)) * scale(launch)
    return np.zeros(len(launch)), z_actual, np.ones(len(launch), bool), launch + delay, launch


@pytest.mark.parametrize("trend, scale", [("improving", lambda t: 1 / (1 + t / 60)),
                                          ("worsening", lambda t: 1 + t / 150),
                                          ("steady", lambda t: np.ones(len(t)))])
def test_interval_level_adapts_to_how_often_past_intervals_missed(trend, scale):
    # A model that keeps improving makes even recent residuals overstate the next error: plain split-conformal
    # over-covers (and under-covers when errors grow); adapting the level to past misses brings it back to 80 %.
    coverage = {}
    for gamma in (0.0, 0.01):
        hits = []
        for seed in range(10):
            z_pred, z_actual, calibrate, available, launch = _error_stream(scale, seed)
            half, _ = rolling_conformal(z_pred, z_actual, calibrate, available, launch, 0.8, 50, gamma)
            later = launch >= 150
            hits.append(np.mean(np.abs(z_actual - z_pred)[later] <= half[later]))
        coverage[gamma] = float(np.mean(hits))
    assert abs(coverage[0.01] - 0.8) <= 0.012, coverage
    if trend == "improving":
        assert coverage[0.0] >= 0.815, coverage
    elif trend == "worsening":
        assert coverage[0.0] <= 0.79, coverage
    assert adapted_level(0.8, np.zeros(0), 0.01) == 0.8 and adapted_level(0.8, np.ones(5), 0.0) == 0.8
    assert adapted_level(0.8, np.zeros(10), 0.01) < 0.8 < adapted_level(0.8, np.ones(10), 0.01)


def test_saved_models_reload_without_pickle(scenario, tmp_path):  # noqa: F811
    import lightgbm as lgb

    frame = scenario["build"].frame
    result = run_forecast(frame, CaseMemory(frame), None,
                          ForecastConfig(kpis=("score",), evaluate=False, target_mode="normalised"))
    written = save_models(result.models, tmp_path)
    assert written and not any(p.suffix in (".pkl", ".pickle", ".joblib") for p in written)
    meta_files = [p for p in written if p.suffix == ".json"]
    meta = json.loads(meta_files[0].read_text())
    assert meta["kpi"] == "score" and meta["features"] and meta["trained_through"] < str(frame["launch_date"].max())
    assert meta["target"]["normalise"] is True and np.isfinite(meta["conformal_q"])
    assert 0.5 <= meta["interval_level"] <= 1.0
    model_txt = [p for p in written if p.name.endswith(".lightgbm.txt")]
    if model_txt:  # LightGBM got a stack weight: its text model reloads and names the same features
        booster = lgb.Booster(model_file=str(model_txt[0]))
        assert booster.feature_name() == [f for f in meta["features"]]


def test_degrades_without_attributes_or_image_blocks(scenario):  # noqa: F811
    frame = scenario["build"].frame.copy()
    frame["clip"] = None
    frame["visual"] = None
    result = run_forecast(frame, CaseMemory(frame), None, ForecastConfig(kpis=("score",), evaluate=False))
    assert any("blocks without vectors" in note for note in result.info["notes"])
    assert any("no interpretable attributes" in note for note in result.info["notes"])
    assert result.predictions["forecast"].notna().mean() > 0.8
    with pytest.raises(ValueError, match="warm-up"):
        run_forecast(frame.head(12), None, None, ForecastConfig(kpis=("score",), evaluate=False))


def _truth_attributes(scenario) -> pd.DataFrame:  # noqa: F811
    truth = scenario["truth"]["creatives"]
    return pd.DataFrame([{"creative_id": c, **{k: v for k, v in truth[c]["attributes"].items() if k != "extra_lines"}}
                         for c in scenario["build"].frame["creative_id"]])


@pytest.mark.parametrize(("attribute", "similar"), [("has_face", "hue_family=warm"),
                                                    ("hue_family=warm", "hue_family=neutral")])
def test_boosting_an_attribute_is_learnt_from_the_images_alone(scenario, attribute, similar):  # noqa: F811
    """Dutt et al.'s Hypothesis A with the model seeing only the block vectors: the predicted uplift of
    held-out creatives with the boosted attribute grows with the factor; the others barely move."""
    table = boosting_validation(scenario["build"].frame, _truth_attributes(scenario), attribute, (1, 2, 5),
                                kpi="ctr", similar=similar, memory=scenario["memory"], blocks_only=True)
    print(table.round(3).to_string())
    with_a = table["uplift_with"].to_numpy()
    assert with_a[0] == 0 and np.all(np.diff(with_a) > 0)
    top = table.iloc[-1]
    assert top["uplift_with"] > 0.5 * top["factor"]  # at least half of the planted boost is learnt
    assert top["uplift_without"] < 0.25 * top["uplift_with"]
    assert top["uplift_similar"] < 0.25 * top["uplift_with"]
    assert top["uplift_with_ci_low"] > top["uplift_without"]


def test_boosting_names_a_missing_or_rare_attribute(scenario):  # noqa: F811
    attrs = _truth_attributes(scenario)
    with pytest.raises(ValueError, match="not in the attribute frame"):
        boosting_validation(scenario["build"].frame, attrs, "no_such_column", memory=scenario["memory"])
    with pytest.raises(ValueError, match="too few creatives"):
        boosting_validation(scenario["build"].frame, attrs, "product=" + attrs["product"].value_counts().index[-1],
                            memory=scenario["memory"])


@pytest.mark.slow
def test_with_attributes_the_served_mean_has_an_interpretable_member(scenario, forecast, tmp_path):  # noqa: F811
    """With an attribute frame, context + attributes (no vectors) joins the served mean on both targets; where
    the effects are planted in those elements it ranks far above the context alone, and its fitted models are
    saved like the others."""
    frame = scenario["build"].frame
    result = run_forecast(frame, scenario["memory"], _truth_attributes(scenario),
                          ForecastConfig(kpis=("score",), evaluate_kpis=("score",)))
    served = result.info["served"]["score"]
    assert "context+attributes (normalised)" in served and "context+attributes (raw)" in served
    print(result.table_markdown("test"))
    assert result.value("context+attributes", "score") > result.value("context", "score") + 0.1
    saved = {p.name for p in save_models(result.models, tmp_path)}
    assert {"score.context_attributes.normalised.json", "score.context_attributes.raw.json"} <= saved
    # Without attributes the member does not exist (it would be the context model again).
    assert "context+attributes" not in forecast.info["input_sets"]
    assert "context+attributes" not in forecast.info["served"]["score"]


def test_block_reductions_are_shared_across_the_models_of_a_run(scenario, monkeypatch):  # noqa: F811
    """Every model of a run that reduces a block on the same training rows gets the same PCA, fitted once:
    the forecast and its table are exactly what a PCA per model gives."""
    # reduce_blocks imports PCA when called: a subclass patched in counts its fits
    from sklearn.decomposition import PCA

    from creative_dag.forecast import features, model

    frame = scenario["build"].frame
    config = ForecastConfig(kpis=("score",), evaluate_kpis=("score",), workers=1)  # the patches reach no worker
    fits = []

    class CountingPCA(PCA):
        def fit(self, x, y=None):
            fits.append(x.shape)
            return super().fit(x, y)

    monkeypatch.setattr("sklearn.decomposition.PCA", CountingPCA)
    shared = run_forecast(frame, CaseMemory(frame), None, config)
    n_shared = len(fits)
    monkeypatch.setattr(model, "reduce_blocks",
                        lambda blocks, train, dims, seed=0, cache=None: features.reduce_blocks(blocks, train, dims, seed))
    fits.clear()
    alone = run_forecast(frame, CaseMemory(frame), None, config)
    assert n_shared * 2 <= len(fits), (n_shared, len(fits))
    pd.testing.assert_frame_equal(shared.predictions, alone.predictions, check_exact=True)
    pd.testing.assert_frame_equal(shared.performance, alone.performance, check_exact=True)

    blocks = {"b": np.random.default_rng(0).normal(size=(40, 8))}
    cache: dict = {}
    first, _ = features.reduce_blocks(blocks, np.arange(30), 4, cache=cache)
    again, _ = features.reduce_blocks(blocks, np.arange(30), 4, cache=cache)
    other, _ = features.reduce_blocks(blocks, np.arange(25), 4, cache=cache)
    assert again["b"] is first["b"] and len(cache) == 2 and not np.allclose(other["b"], first["b"])
    with pytest.raises(ValueError):
        first["b"][0, 0] = 1.0  # shared by every model of the run: nobody may write into it


def test_the_answers_do_not_depend_on_the_number_of_workers(scenario, tmp_path):  # noqa: F811
    """Two worker processes give exactly the forecast, table, saved models and memo of one."""
    from creative_dag.forecast.memo import RefitMemo

    frame = scenario["build"].frame
    runs, memos, saved = {}, {}, {}
    for workers in (1, 2):
        memos[workers] = RefitMemo(None)
        runs[workers] = run_forecast(frame, CaseMemory(frame), None,
                                     ForecastConfig(kpis=("score", "ctr"), evaluate_kpis=("score",), workers=workers),
                                     memo=memos[workers])
        saved[workers] = {p.name: p.read_bytes() for p in save_models(runs[workers].models, tmp_path / str(workers))}
    pd.testing.assert_frame_equal(runs[1].predictions, runs[2].predictions, check_exact=True)
    pd.testing.assert_frame_equal(runs[1].performance, runs[2].performance, check_exact=True)
    assert saved[1] == saved[2] and saved[1]
    one, two = memos[1], memos[2]
    assert one.fitted == two.fitted > 0 and sorted(one.used) == sorted(two.used)
    assert all(np.array_equal(one.used[k], two.used[k]) for k in one.used)


def test_jobs_are_spread_evenly_over_the_workers():
    from creative_dag.forecast.parallel import (
        RollingJob,
        balanced_groups,
        job_cost,
        worker_count,
    )

    jobs = [RollingJob((kpi, name, norm), None, ["c"] * 100, blocks)
            for kpi in ("score", "ctr") for norm in (True, False)
            for name, blocks in (("all", ["visual", "cnn", "text"]), ("context", []), ("visual", ["visual"]))]
    groups = balanced_groups(jobs, 2)
    assert sorted(j.key for g in groups for j in g) == sorted(j.key for j in jobs)  # each job exactly once
    loads = [sum(job_cost(j) for j in g) for g in groups]
    assert max(loads) - min(loads) <= max(job_cost(j) for j in jobs)
    assert worker_count(8, 3) == 3 and worker_count(1, 10) == 1 and 1 <= worker_count(0, 10) <= 10



def _fail_on_ctr(inputs, job, rows, config, memo):
    if job.key[0] == "ctr":
        raise ValueError(f"no {job.key[0]} today")
    return job.key


def test_workers_are_gone_when_the_jobs_return_or_fail():
    """A step must not keep idle workers: Dagster's multiprocess executor waits for them before the next step."""
    from creative_dag.forecast.parallel import RollingJob, run_jobs

    jobs = [RollingJob((kpi, "context", norm), None, [], []) for kpi in ("score", "ctr") for norm in (True, False)]
    ok = run_jobs(_fail_on_ctr, None, jobs[:2], None, None, None, workers=2)
    assert ok == {j.key: j.key for j in jobs[:2]}
    assert not _children()
    with pytest.raises(ValueError, match="no ctr today"):
        run_jobs(_fail_on_ctr, None, jobs, None, None, None, workers=2)
    assert not _children()


def _fit_unless_kept(inputs, job, rows, config, memo):
    """A job that fits (and says where) unless the memo kept its answer."""
    key = memo.key(*map(str, job.key))
    if memo.get(key) is None:
        memo.put(key, np.array([os.getpid()]))
    return os.getpid()


def test_a_day_whose_refits_are_all_kept_starts_no_workers():
    from creative_dag.forecast.memo import RefitMemo
    from creative_dag.forecast.parallel import RollingJob, run_jobs

    jobs = [RollingJob((kpi, name, True), None, [], blocks) for kpi in ("score", "ctr")
            for name, blocks in (("context", []), ("visual", ["visual"]), ("all", ["visual", "text"]))]
    cold = RefitMemo(None)
    first = run_jobs(_fit_unless_kept, None, jobs, None, None, cold, workers=2)
    assert cold.fitted == len(jobs) and os.getpid() not in first.values(), "a cold run goes to the workers"

    kept = RefitMemo(None, salt=cold.salt, stored=dict(cold.used))
    again = run_jobs(_fit_unless_kept, None, jobs, None, None, kept, workers=2)
    assert set(again.values()) == {os.getpid()} and kept.fitted == 0 and kept.hits == len(jobs)

    # a new week: one job fits here, the rest go to the workers, and the memo hears of every fit
    partial = RefitMemo(None, salt=cold.salt, stored={k: v for i, (k, v) in enumerate(cold.used.items()) if i % 2})
    mixed = run_jobs(_fit_unless_kept, None, jobs, None, None, partial, workers=2)
    assert partial.fitted == len(jobs) // 2 and partial.hits == len(jobs) - len(jobs) // 2
    assert sorted(partial.used) == sorted(cold.used)
    assert os.getpid() in mixed.values() and len(set(mixed.values())) > 1


def test_a_forecast_worker_does_not_import_dagster():
    """Each worker process imports what `run_job` needs; Dagster (~1 s of every worker's start on a refit day)
    is not part of it: the catalog names tables without it."""
    import subprocess
    import sys

    probe = "import sys, creative_dag.forecast.model, creative_dag.forecast.parallel; print('dagster' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr[-2000:]


@pytest.mark.parametrize("n,p", [(400, 30), (60, 80), (25, 5), (150, 600)])
def test_the_ridge_member_is_scikit_learns_ridgecv(n, p):
    """`ridge_loo` (one eigendecomposition for every penalty) picks the penalty RidgeCV picks and fits the
    same coefficients, with the design's constant columns (missing indicators that never fire), a column
    that repeats another (one-hot levels of collinear attributes) and more columns than rows."""
    from sklearn.linear_model import RidgeCV

    from creative_dag.forecast.learners import RIDGE_ALPHAS, ridge_loo

    rng = np.random.default_rng(n + p)
    x = rng.normal(size=(n, p))
    x[:, : p // 3] = rng.integers(0, 2, size=(n, p // 3))
    x[:, -1] = 0.0
    x[:, 2] = 2.0 * x[:, 3]
    y = 2.0 * x[:, 0] - x[:, 1] + rng.normal(scale=0.5 + rng.random(), size=n) + 3.0
    coef, intercept, alpha = ridge_loo(x, y, RIDGE_ALPHAS)
    ref = RidgeCV(alphas=RIDGE_ALPHAS).fit(x, y)
    assert alpha == ref.alpha_
    np.testing.assert_allclose(coef, ref.coef_, rtol=1e-9, atol=1e-10)
    assert intercept == pytest.approx(ref.intercept_, abs=1e-9)


def test_a_grouped_ridge_keeps_the_few_interpretable_effects_one_penalty_smears_over_hundreds_of_columns():
    """On the demo the attribution's ridge saw 40 interpretable columns beside 113 image tags and 85 block
    components with 256 training creatives; one leave-one-out penalty (316) left faces' coefficient at 0.002
    per sd, a tenth of what the planted CTR x 1.2 means on that target (~0.025). Here: 4 attribute columns carry the signal, 120 tags and 100 components are
    noise; the grouped ridge turns both noise groups down, recovers the held-out signal better, and its
    payload predicts what it predicted."""
    from creative_dag.forecast.learners import (
        KeptFit,
        LinearModel,
        fitted_from_payload,
        fitted_payload,
        predict_fitted,
    )

    rng = np.random.default_rng(11)
    n, fit_n = 260, 200
    core = rng.normal(size=(n, 4))
    beta = np.array([0.35, -0.3, 0.25, 0.0])
    y = core @ beta + rng.normal(scale=0.6, size=n)
    x = pd.concat([pd.DataFrame(core, columns=[f"attr_a{i}" for i in range(4)]),
                   pd.DataFrame(rng.integers(0, 2, size=(n, 120)).astype(float), columns=[f"attr_tag_t{i}" for i in range(120)]),
                   pd.DataFrame(rng.normal(size=(n, 100)), columns=[f"cnn_pc{i + 1}" for i in range(100)])], axis=1)
    x["ctx_account_id"] = rng.integers(0, 3, size=n).astype(float)
    cats = ["ctx_account_id"]
    single = LinearModel.fit(x.iloc[:fit_n], y[:fit_n], cats)
    grouped = LinearModel.fit(x.iloc[:fit_n], y[:fit_n], cats, grouped=True)
    assert set(grouped.weights) == {"tags", "block:cnn"} and max(grouped.weights.values()) <= 0.25
    assert single.weights == {}
    signal = core[fit_n:] @ beta

    def fidelity(model):
        return np.corrcoef(model.predict(x.iloc[fit_n:]), signal)[0, 1]

    assert fidelity(grouped) > fidelity(single) + 0.05, (fidelity(grouped), fidelity(single))
    # the attribute's effect (a one-sd change of attr_a0) is nearer its true 0.35 than the single penalty's
    step = x.iloc[fit_n:].copy()
    step["attr_a0"] += 1.0

    def effect(model):
        return float(np.mean(model.predict(step) - model.predict(x.iloc[fit_n:])))

    assert abs(effect(grouped) - 0.35) < abs(effect(single) - 0.35)
    kept = fitted_from_payload(fitted_payload(KeptFit({"linear": grouped}, list(x.columns), cats, {})))
    np.testing.assert_allclose(predict_fitted(kept.members, x.iloc[fit_n:]), grouped.predict(x.iloc[fit_n:]))
    # bootstrap refits keep the first fit's weights
    again = LinearModel.fit(x.iloc[:100], y[:100], cats, weights=grouped.weights)
    assert again.weights == grouped.weights


def test_the_stack_fits_the_image_tags_apart_from_the_interpretable_attributes():
    """One ridge over ~110 tags and ~30 attributes shrank the attributes with the tags; apart, the stack's
    non-negative weights can drop the tags' member and keep the attributes'."""
    from creative_dag.forecast.learners import column_groups, penalty_group

    groups = column_groups(["ctx_account_id", "attr_face_present", "attr_tag_binder", "attr_tag_web_site",
                            "cnn_pc1", "cnn_pc2", "cbr_residual_score"])
    assert groups == {"context": ["ctx_account_id"], "attributes": ["attr_face_present"],
                      "tags": ["attr_tag_binder", "attr_tag_web_site"], "block:cnn": ["cnn_pc1", "cnn_pc2"],
                      "cbr": ["cbr_residual_score"]}
    assert [penalty_group(c) for c in ("ctx_account_id", "attr_face_present", "attr_tag_binder", "cnn_pc1")] == \
        ["core", "core", "tags", "block:cnn"]

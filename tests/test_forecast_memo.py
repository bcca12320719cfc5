"""The forecast's refit memo (creative_dag.forecast.memo): a daily run reuses the as-of refits whose inputs did
not change, and never gives a different answer than a run without it.

The scenario of tests/test_cbr_scenario.py with its last day held back (the creatives launched on it and every
metric row of that day), then the whole export: what a daily run sees.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_cbr_scenario import PRELAUNCH, ground_truth_blocks, scenario  # noqa: F401

from creative_dag.cbr.case_base import build_case_base
from creative_dag.cbr.query import CaseMemory
from creative_dag.features.build import build_outcomes
from creative_dag.forecast.memo import RefitMemo
from creative_dag.forecast.model import ForecastConfig, run_forecast

# One KPI, every input set of the evaluation table: the served path (keep_last) and the comparison path.
CONFIG = ForecastConfig(kpis=("score",), evaluate_kpis=("score",), n_estimators=40)


def case_base_until(scenario, last_day: str | None) -> pd.DataFrame:  # noqa: F811
    creatives, daily = scenario["creatives"], scenario["daily"]
    # The fixture's vectors draw noise for all creatives at once: embed them all, as the warehouse holds
    # them (a creative's vectors do not change when others land), then keep the landed ones.
    blocks = ground_truth_blocks(creatives, scenario["truth"])
    if last_day is not None:
        creatives = creatives[creatives["launch_date"] < last_day]
        daily = daily[daily["date"] < last_day]
        blocks = {b: t[t["creative_id"].isin(creatives["creative_id"].astype(str))] for b, t in blocks.items()}
    prelaunch = creatives[list(PRELAUNCH)].copy()
    return build_case_base(prelaunch, build_outcomes(creatives, daily), blocks, daily).frame


@pytest.fixture(scope="module")
def daily_runs(scenario, tmp_path_factory):  # noqa: F811
    last_day = max(scenario["daily"]["date"])
    before, full = case_base_until(scenario, last_day), case_base_until(scenario, None)
    path = tmp_path_factory.mktemp("memo") / "refits.npz"
    first = RefitMemo.open(path)
    run_forecast(before, CaseMemory(before), None, CONFIG, memo=first)
    first.save()
    # The same day again (a re-run): every refit is reused, and the kept models must survive its save.
    unchanged = RefitMemo.open(path)
    run_forecast(before, CaseMemory(before), None, CONFIG, memo=unchanged)
    unchanged.save()
    second = RefitMemo.open(path)
    memoised = run_forecast(full, CaseMemory(full), None, CONFIG, memo=second)
    fresh = run_forecast(full, CaseMemory(full), None, CONFIG)
    second.save()
    # A correction of an early creative's metrics (a platform restating a past day) reaches the refits after it.
    corrected = full.copy()
    early = corrected["launch_date"] == corrected["launch_date"].min()
    corrected.loc[early, "outcome_clicks"] *= 2
    corrected.loc[early, "outcome_ctr"] *= 2
    third = RefitMemo.open(path)
    return {"first": first, "unchanged": unchanged, "second": second, "memoised": memoised, "fresh": fresh, "before": before, "full": full,
            "third": third, "corrected": run_forecast(corrected, CaseMemory(corrected), None, CONFIG, memo=third),
            "corrected_fresh": run_forecast(corrected, CaseMemory(corrected), None, CONFIG)}


@pytest.mark.slow
def test_a_new_day_gives_the_same_forecast_as_a_fresh_run(daily_runs):
    assert len(daily_runs["full"]) > len(daily_runs["before"])  # the held-back day launched creatives
    pd.testing.assert_frame_equal(daily_runs["memoised"].predictions, daily_runs["fresh"].predictions)
    pd.testing.assert_frame_equal(daily_runs["memoised"].performance, daily_runs["fresh"].performance)


@pytest.mark.slow
def test_a_restated_past_refits_what_it_reaches(daily_runs):
    pd.testing.assert_frame_equal(daily_runs["corrected"].predictions, daily_runs["corrected_fresh"].predictions)
    assert not daily_runs["corrected"].predictions["forecast"].equals(daily_runs["memoised"].predictions["forecast"])
    assert daily_runs["third"].fitted > daily_runs["second"].fitted  # the refits after the correction


@pytest.mark.slow
def test_a_new_day_fits_nothing_new_inside_a_refit_week(daily_runs):
    """The held-back day falls inside the last refit week: every earlier week's predictions are reused, and the
    last week, whose query rows gained the new day's creatives, is predicted with the model kept from the day
    before (each rolling forecast, KPI x input set x target, keeps one) — bit for bit what a new fit gives."""
    first, second = daily_runs["first"], daily_runs["second"]
    assert first.hits == 0 and first.models_reused == 0 and first.fitted > 40
    rolling = sum(key.startswith("fit:") for key in first.used)  # one kept model per rolling forecast
    assert rolling >= 7, first.summary()
    assert daily_runs["unchanged"].fitted == 0, daily_runs["unchanged"].summary()
    assert second.fitted == 0 and second.models_reused == rolling, second.summary()
    assert second.hits + second.models_reused == first.fitted, second.summary()
    for name in ("predictions", "performance"):
        pd.testing.assert_frame_equal(getattr(daily_runs["memoised"], name), getattr(daily_runs["fresh"], name),
                                      check_exact=True)
    # The saved model of a served member is the kept one: the same text as a fresh run writes.
    memoised, fresh = daily_runs["memoised"].models, daily_runs["fresh"].models
    assert memoised.keys() == fresh.keys()
    for key in fresh:
        assert memoised[key].features == fresh[key].features and memoised[key].pca == fresh[key].pca
        assert memoised[key].members.keys() == fresh[key].members.keys()
        assert memoised[key].members["stack"] == fresh[key].members["stack"]
        if "lightgbm" in fresh[key].members:
            assert memoised[key].members["lightgbm"].model_to_string() == \
                fresh[key].members["lightgbm"].model_to_string()


def test_changed_code_or_inputs_do_not_reuse(tmp_path):
    memo = RefitMemo(tmp_path / "refits.npz", salt="code-a")
    rows = np.array([b"a" * 16, b"b" * 16], dtype="S16")
    key = memo.key("lightgbm", rows, np.array([1.0, 2.0]))
    memo.put(key, np.array([0.5]))
    memo.save()
    again = RefitMemo.open(memo.path)
    again.salt = "code-a"
    np.testing.assert_array_equal(again.get(again.key("lightgbm", rows, np.array([1.0, 2.0]))), [0.5])
    assert again.get(again.key("lightgbm", rows, np.array([1.0, 2.5]))) is None  # a label changed
    assert again.get(again.key("linear", rows, np.array([1.0, 2.0]))) is None  # another learner
    other_code = RefitMemo.open(memo.path)
    other_code.salt = "code-b"
    assert other_code.get(other_code.key("lightgbm", rows, np.array([1.0, 2.0]))) is None
    # Saving keeps only what this run used: the file does not grow with every day.
    again.save()
    assert len(np.load(memo.path).files) == 1
    other_code.save()
    assert len(np.load(memo.path).files) == 0


def test_an_unreadable_memo_starts_empty_with_a_note(tmp_path):
    path = tmp_path / "refits.npz"
    path.write_bytes(b"not a zip file")
    memo = RefitMemo.open(path)
    assert memo.stored == {} and "unreadable" in memo.note and str(path) in memo.note


def test_a_tag_only_later_creatives_have_never_reaches_an_earlier_refit():
    from creative_dag.forecast.model import _binary_columns, learnable_columns

    static = pd.DataFrame({"attr_brightness": np.linspace(0, 1, 40), "attr_tag_rule": [0.0] * 34 + [1.0] * 6,
                           "attr_tag_face": [0.0, 1.0] * 20, "ctx_placement": [0.0, 1.0, 2.0, 3.0] * 10})
    cols = list(static.columns)
    binary = _binary_columns(static, cols)
    assert binary == ["attr_tag_rule", "attr_tag_face"]
    early, late = np.arange(30), np.arange(40)
    # The first 30 cases never show the tag: a refit on them reads the same columns as before the tag existed.
    assert learnable_columns(static, cols, binary, early, 5) == ["attr_brightness", "attr_tag_face", "ctx_placement"]
    assert learnable_columns(static, cols, binary, late, 5) == cols


@pytest.mark.parametrize("learner", ["stacked", "blend", "lightgbm", "linear"])
def test_a_kept_refit_predicts_what_the_fresh_fit_predicted(learner):
    """Every learner with a portable format survives the memo's JSON (LightGBM as its text format) and
    predicts new rows bit for bit as the fitted model does; scikit-learn's booster is not kept."""
    from creative_dag.forecast.features import apply_pca, reduce_blocks
    from creative_dag.forecast.learners import (
        KeptFit,
        fitted_from_payload,
        fitted_payload,
        predict_fitted,
    )
    from creative_dag.forecast.model import design_matrix, fit_predict

    rng = np.random.default_rng(3)
    n = 120
    static = pd.DataFrame({"ctx_placement": rng.integers(0, 3, n).astype(float), "attr_face": rng.integers(0, 2, n) * 1.0,
                           "attr_brightness": rng.normal(size=n)})
    static.loc[::7, "attr_brightness"] = np.nan
    block = rng.normal(size=(n, 16))
    block[::11] = np.nan  # creatives without the block
    y = static["attr_face"].to_numpy() + 0.5 * np.nan_to_num(block[:, 0]) + rng.normal(0, 0.3, n)
    train, query = np.arange(80), np.arange(80, n)
    config = ForecastConfig(n_estimators=30)
    reduced, pca = reduce_blocks({"cnn": block}, train, 4)
    x = design_matrix(static, list(static.columns), reduced)
    z, members = fit_predict(learner, x, y, train, query, ["ctx_placement"], config)
    kept = fitted_from_payload(fitted_payload(KeptFit(members, list(x.columns), ["ctx_placement"], pca)))
    again = design_matrix(static, list(static.columns), {b: apply_pca(block, p) for b, p in kept.pca.items()})
    np.testing.assert_array_equal(predict_fitted(kept.members, again.iloc[query][kept.features]), z)
    _, hist = fit_predict("hist_gbm", x, y, train, query, ["ctx_placement"], config)
    assert fitted_payload(KeptFit(hist, list(x.columns), [], pca)) is None


def test_a_damaged_kept_model_is_fitted_again(tmp_path):
    from creative_dag.forecast.learners import KeptFit

    memo = RefitMemo(tmp_path / "refits.npz", salt="code-a")
    memo.put_fit("k", KeptFit({"stack": {"members": [], "weights": [], "intercept": 0.5}}, ["a"], [], {}))
    memo.save()
    again = RefitMemo.open(memo.path, salt="code-a")
    assert again.get_fit("k").members["stack"]["intercept"] == 0.5 and again.models_reused == 1
    again.stored["fit:k"] = np.frombuffer(b"{not json", dtype=np.uint8)
    assert again.get_fit("k") is None
    broken_booster = b'{"members": {"lightgbm": {"kind": "lightgbm", "model": "tree\\nnot a model"}}, ' \
                     b'"features": ["a"], "categorical": [], "pca": {}}'
    again.stored["fit:k"] = np.frombuffer(broken_booster, dtype=np.uint8)
    assert again.get_fit("k") is None

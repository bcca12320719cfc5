"""The forecast's refit memo (creative_dag.forecast.memo): a daily run reuses the as-of refits whose inputs did
not change, and never gives a different answer than a run without it.

The scenario of tests/test_cbr_scenario.py with its last day held back (the creatives launched on it and every
metric row of that day), then the whole export: what a daily run sees. The held-back day's creatives run in a
country no earlier creative had, whose code sorts before every other: a new category level must not change the
inputs of the refits before it.
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
from creative_dag.forecast.model import (
    ForecastConfig,
    next_refit_from,
    refit_dates,
    run_forecast,
)

# One KPI, every input set of the evaluation table: the served path (keep_last) and the comparison path.
CONFIG = ForecastConfig(kpis=("score",), evaluate_kpis=("score",), n_estimators=40)


NEW_COUNTRY = "AA"


def case_base_until(scenario, last_day: str | None) -> pd.DataFrame:  # noqa: F811
    creatives, daily = scenario["creatives"].copy(), scenario["daily"]
    held_back = creatives["launch_date"] == max(daily["date"])
    assert held_back.any() and (creatives["country"] > NEW_COUNTRY).all()
    creatives.loc[held_back, "country"] = NEW_COUNTRY
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
    last_day = pd.Timestamp(daily_runs["full"]["launch_date"].max())
    assert last_day not in refit_dates(daily_runs["full"]["launch_date"], CONFIG)
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


@pytest.mark.slow
def test_a_new_day_that_starts_a_refit_week_fits_one_model_per_rolling_forecast(scenario, tmp_path):  # noqa: F811
    """`refit_dates` names the days whose run fits (bench/e2e.py times one such day and one between): landing
    the first creatives of a refit week fits that week's model once per rolling forecast and reuses the rest."""
    refit = refit_dates(scenario["creatives"]["launch_date"], CONFIG)[-1]
    day_after = (refit + pd.Timedelta(days=1)).date().isoformat()
    before, on_the_day = case_base_until(scenario, refit.date().isoformat()), case_base_until(scenario, day_after)
    assert (pd.to_datetime(on_the_day["launch_date"]) == refit).any()
    assert refit not in refit_dates(before["launch_date"], CONFIG)
    # What the day before says of the next refit (marts.performance_model's `next_refit`): from a day on or
    # before it, with no launch between.
    next_from = next_refit_from(before["launch_date"], CONFIG)
    launches = pd.to_datetime(scenario["creatives"]["launch_date"])
    assert next_from <= refit and not ((launches >= next_from) & (launches < refit)).any()
    assert next_refit_from(on_the_day["launch_date"], CONFIG) > refit
    first = RefitMemo.open(tmp_path / "refits.npz")
    run_forecast(before, CaseMemory(before), None, CONFIG, memo=first)
    first.save()
    second = RefitMemo.open(tmp_path / "refits.npz")
    run_forecast(on_the_day, CaseMemory(on_the_day), None, CONFIG, memo=second)
    rolling = sum(key.startswith("fit:") for key in first.used)
    assert second.fitted == rolling and second.hits == first.fitted, second.summary()


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


def test_a_new_category_level_changes_no_earlier_input():
    """A new day's creative with a level nobody had, sorting before the others (a first "left" face position, a
    new country), leaves every earlier creative's category codes and context similarities bit for bit as they
    were: otherwise every past refit reads changed inputs and the memo fits them all again."""
    from creative_dag.cbr.context import ContextEncoder
    from creative_dag.cbr.similarity import l2_normalize
    from creative_dag.forecast.features import attribute_features, context_features

    rng = np.random.default_rng(0)
    n = 40
    before = pd.DataFrame({"creative_id": [f"c{i:02d}" for i in range(n)],
                           "launch_date": pd.date_range("2026-01-01", periods=n).astype(str),
                           "account_id": "a1", "format": "image", "product_category": rng.choice(["shoes", "bags"], n),
                           # vocabularies of a real account: the vectors are long enough for numpy's
                           # vectorised sums, whose rounding depends on where the columns fall
                           "placement": rng.choice(["feed", "stories", "reels", "search", "discover", "video"], n),
                           "country": rng.choice(["DE", "NL", "FR", "BE", "ES", "IT", "PL", "SE"], n),
                           "platform": rng.choice(["meta", "tiktok"], n), "objective": "sales",
                           "audience": rng.choice(["broad", "lookalike", "retargeting"], n)})
    attrs = pd.DataFrame({"creative_id": before["creative_id"], "face_position": rng.choice(["right", "center"], n),
                          "brightness": rng.random(n)})
    # Rows in another order than their launch: the codes follow the launch, not the frame.
    before, attrs = before.sample(frac=1, random_state=1).reset_index(drop=True), attrs.sample(frac=1, random_state=2)
    new = pd.DataFrame([{**before.iloc[0].to_dict(), "creative_id": "c99", "launch_date": "2026-03-01",
                         "country": "AT", "placement": "audience_network"}])
    after = pd.concat([before, new], ignore_index=True)
    attrs_after = pd.concat([attrs, pd.DataFrame([{"creative_id": "c99", "face_position": "left", "brightness": 0.5}])])

    old = slice(0, n)
    pd.testing.assert_frame_equal(context_features(after).iloc[old], context_features(before), check_exact=True)
    attr_before, cats = attribute_features(before, attrs)
    attr_after, _ = attribute_features(after, attrs_after)
    assert cats == ["attr_face_position"]
    pd.testing.assert_frame_equal(attr_after.iloc[old], attr_before, check_exact=True)
    assert attr_after["attr_face_position"].iloc[n] == 2.0  # the next code, not 0

    def cosines(frame):
        vectors, _ = l2_normalize(ContextEncoder().fit(frame).transform(frame)[:n])
        return vectors.astype(np.float64) @ vectors.astype(np.float64).T

    np.testing.assert_array_equal(cosines(after), cosines(before))


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

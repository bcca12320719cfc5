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
    return {"first": first, "second": second, "memoised": memoised, "fresh": fresh, "before": before, "full": full,
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
def test_a_new_day_refits_only_the_last_week(daily_runs):
    first, second = daily_runs["first"], daily_runs["second"]
    assert first.hits == 0 and first.fitted > 40
    # Each rolling forecast (KPI x input set x target) refits its last week for the new creatives; the weeks
    # before the new day read nothing new.
    assert second.hits >= 0.8 * first.fitted, second.summary()
    assert second.fitted <= 0.2 * first.fitted, second.summary()


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

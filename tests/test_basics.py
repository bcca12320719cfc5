"""Locations, block weights and metric formulas: the definitions everything else imports."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from creative_dag import metrics
from creative_dag.blocks import BLOCKS, DEFAULT_WEIGHTS, parse_weights
from creative_dag.settings import resolve_locations


def test_locations_explicit_beats_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("CREATIVE_DAG_HOME", str(tmp_path / "env-home"))
    monkeypatch.delenv("CREATIVE_DAG_LANDING", raising=False)
    env = resolve_locations()
    assert env.home == tmp_path / "env-home"
    assert env.landing == tmp_path / "env-home" / "landing"
    assert env.database == tmp_path / "env-home" / "creative.duckdb"
    explicit = resolve_locations(tmp_path / "h", tmp_path / "in")
    assert (explicit.home, explicit.landing) == (tmp_path / "h", tmp_path / "in")


def test_landing_env_is_independent_of_home(monkeypatch, tmp_path):
    monkeypatch.setenv("CREATIVE_DAG_HOME", str(tmp_path / "h"))
    monkeypatch.setenv("CREATIVE_DAG_LANDING", str(tmp_path / "export"))
    assert resolve_locations().landing == tmp_path / "export"


def test_parse_weights():
    assert parse_weights(None) == DEFAULT_WEIGHTS
    assert parse_weights("clip=1,cnn=0.5") == {"clip": 1.0, "cnn": 0.5}
    assert set(DEFAULT_WEIGHTS) == set(BLOCKS)
    with pytest.raises(ValueError, match="unknown block 'pixels'"):
        parse_weights("pixels=1")
    with pytest.raises(ValueError, match="must be a number"):
        parse_weights("clip=high")
    with pytest.raises(ValueError, match=">= 0"):
        parse_weights("clip=-1")


def test_metric_formulas_and_zero_denominators():
    frame = pd.DataFrame({
        "impressions": [1000, 0], "clicks": [20, 0], "conversions": [2, 0],
        "spend": [50.0, 0.0], "revenue": [150.0, 0.0], "video_3s_views": [300, 0],
    })
    out = metrics.add_rate_columns(frame)
    assert out.loc[0, ["ctr", "cvr", "roas", "cpa", "thumb_stop"]].tolist() == [0.02, 0.1, 3.0, 25.0, 0.3]
    assert out.loc[1, ["ctr", "cvr", "roas", "cpa", "thumb_stop"]].isna().all()
    assert np.isnan(metrics.ctr(5, 0)) and metrics.ctr(5, 10) == 0.5

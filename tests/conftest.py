"""Test ordering for parallel runs.

`make test` runs the suite on several pytest-xdist workers, one test module per worker at a time
(`--dist loadfile`, so a module's fixtures are built once). A worker takes the next module when it
runs dry, so the run ends when the last long module does: the longest modules go first, and the
many short ones fill in behind them. Order only; every test still runs.
"""

from __future__ import annotations

import pytest

# Longest first, by seconds per module (setup and calls) in a run on 2 workers on 2 cores (2026-12-06,
# 16 min 40 s in all). A module not listed (or a new one) runs after these, in the usual order.
LONGEST_MODULES = (
    "test_daily_path.py",  # 413 s: the real dagster-daemon over two exports
    "test_pipeline_e2e.py",  # 370 s: the whole graph in-process, then under the multiprocess executor
    "test_graph_bad_export.py",  # 203 s: the whole graph on bad rows and bad images
    "test_forecast.py",  # 143 s
    "test_scale_out.py",  # 123 s: a Dask backfill on two worker processes
    "test_attribution.py",  # 83 s
    "test_imports.py",
    "test_layout.py",
    "test_marts_repetition.py",
    "test_encoders_assets.py",
    "test_forecast_memo.py",
    "test_cli.py",
    "test_faults.py",
    "test_dagster_ui.py",
    "test_marts_recommendations.py",
    "test_cbr_real_encoders.py",  # 22 s; every module after it takes less than 20 s
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_MODULES)}
    # stable: tests keep their order inside a module, and every worker sorts the same way
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))

"""Test ordering for parallel runs.

`make test` runs the suite on several pytest-xdist workers, one test module per worker at a time
(`--dist loadfile`, so a module's fixtures are built once). A worker takes the next module when it
runs dry, so the run ends when the last long module does: the longest modules go first, and the
many short ones fill in behind them. Order only; every test still runs.
"""

from __future__ import annotations

import pytest

# Seconds per module in clean-clone CI runs on 2 cores (sum of setup and calls), longest first.
# A module not listed (or a new one) runs after these, in the usual order.
LONGEST_MODULES = (
    "test_daily_path.py",  # the real dagster-daemon over two exports: ~330 s
    "test_pipeline_e2e.py",  # the whole graph in-process, then under the multiprocess executor: ~280 s
    "test_graph_bad_export.py",  # the whole graph on bad rows and bad images: ~130 s
    "test_scale_out.py",  # a Dask backfill on two worker processes: ~110 s
    "test_forecast.py",
    "test_layout.py",
    "test_attribution.py",
    "test_faults.py",
    "test_imports.py",
    "test_cli.py",
    "test_forecast_memo.py",
    "test_dagster_ui.py",
    "test_marts_repetition.py",
    "test_marts_recommendations.py",
    "test_encoders_assets.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_MODULES)}
    # stable: tests keep their order inside a module, and every worker sorts the same way
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))

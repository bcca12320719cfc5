"""Which members should the served forecast average? Test-window Spearman per composition.

For each materialised warehouse (--home, repeatable; the landing folder beside it is not needed),
runs the as-of forecast's members once per KPI (creative_dag.forecast.model.served_forecast) and
scores the mean of several member sets on the test window of cbr.backtest: the served mean, the
mean without the context + attributes member, without the CBR forecast, and single members. This
is how the figures of docs/marts.md ("Why the context + attributes member") were measured.
Results: bench/results/forecast_members.json.

    .venv/bin/python bench/forecast_members.py --home warehouse [--home other_home ...]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def compositions(members: list[tuple[str, bool]]) -> dict[str, list[tuple[str, bool]]]:
    from creative_dag.forecast.model import INTERPRETABLE_SET

    out = {"served": members,
           "without context+attributes": [m for m in members if m[0] != INTERPRETABLE_SET],
           "without cbr": [m for m in members if m[0] != "cbr"],
           "context+attributes alone": [m for m in members if m[0] == INTERPRETABLE_SET]}
    out.update({f"{name} ({'normalised' if norm else 'raw'}) alone": [(name, norm)] for name, norm in members})
    return {k: v for k, v in out.items() if v}


def measure(home: Path) -> list[dict]:
    from creative_dag.assets.marts import attribute_frame_of
    from creative_dag.cbr.backtest import (
        AsOfLabels,
        BacktestConfig,
        account_week_cohorts,
        query_windows,
    )
    from creative_dag.cbr.index import to_days
    from creative_dag.cbr.query import CaseMemory
    from creative_dag.forecast.features import build_inputs
    from creative_dag.forecast.model import (
        ForecastConfig,
        average_members,
        evaluate_forecast,
        input_sets,
        served_forecast,
    )
    from creative_dag.forecast.targets import KPIS, kpi_targets, realised
    from creative_dag.resources.warehouse import DuckDBWarehouse

    warehouse = DuckDBWarehouse(home / "creative.duckdb", read_only=True)
    case_base, attributes = warehouse.read_table("cbr.case_base"), attribute_frame_of(warehouse)
    config = ForecastConfig()
    memory = CaseMemory(case_base)
    cb = memory.case_base
    launch = np.asarray(to_days(cb["launch_date"]), dtype=np.int64)
    query_rows, window = query_windows(cb, config.warmup_days, config.validation_share)
    window_of = pd.Series(window, index=query_rows)
    rows = np.flatnonzero(launch >= launch.min() + config.warmup_days)
    labels = AsOfLabels(cb, config.target.prior_strength)
    targets = kpi_targets(cb, KPIS, config.target, labels)
    inputs = build_inputs(memory, attributes, targets[True], k=config.k)
    sets = input_sets(inputs)
    cohorts = account_week_cohorts(cb)
    bt = BacktestConfig(warmup_days=config.warmup_days, validation_share=config.validation_share, seed=config.seed)
    out = []
    for kpi in KPIS:
        start = time.perf_counter()
        runs, members, _ = served_forecast(inputs, {n: targets[n][kpi] for n in (True, False)}, sets, rows, config)
        seconds = time.perf_counter() - start
        actual = realised(cb, kpi)
        for name, chosen in compositions(members).items():
            for r in evaluate_forecast(name, kpi, average_members(runs, chosen, kpi), actual, window_of, cohorts, bt,
                               None, None):
                if r["window"] == "test":
                    out.append({"data": str(home), "kpi": kpi, "composition": name, "spearman": r["spearman"],
                                "n": r["n"], "members_seconds": round(seconds, 1)})
        print(f"{home} {kpi}: members fitted in {seconds:.0f} s", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, action="append", required=True, help="a materialised warehouse home")
    args = parser.parse_args()
    results = [row for home in args.home for row in measure(home)]
    out = ROOT / "bench" / "results" / "forecast_members.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    table = pd.DataFrame(results).pivot_table(index=["data", "composition"], columns="kpi", values="spearman")
    print(table.round(3).to_markdown())


if __name__ == "__main__":
    main()

"""Which booster for the prelaunch forecast? Ranking quality and fit time per learner.

Runs the as-of forecast (creative_dag/forecast) on the visual-effects scenario of the tests (200
creatives x 90 days, block vectors derived from ground truth) and, when given, on a materialised
warehouse (--home), once per learner, and prints the test-window Spearman of the composite score
and the wall time. Results: bench/results/forecast.json.

--margins S [S ...] instead scores the served forecast (default learner) against every baseline of
cbr.backtest on the visual-effects scenario at each seed S (the tests use seed 3): the issue's "beats
every baseline by a clear margin" over more than one draw. Results: bench/results/forecast_margins.json.

    .venv/bin/python bench/forecast.py [--home warehouse]
    .venv/bin/python bench/forecast.py --margins 3 4 5 6
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

LEARNERS = ("lightgbm", "hist_gbm", "linear", "grouped_linear", "stacked")


def scenario_case_base(seed: int = 3):
    from test_cbr_scenario import PRELAUNCH, VISUAL_SCENARIO, ground_truth_blocks

    from creative_dag.cbr.case_base import build_case_base
    from creative_dag.features.build import build_outcomes
    from creative_dag.synth import generate_scenario

    root = Path(tempfile.mkdtemp(prefix="bench_forecast_"))
    generate_scenario(root, n_creatives=200, n_days=90, seed=seed, image_size=64, scenario=VISUAL_SCENARIO)
    creatives = pd.read_csv(root / "creatives.csv")
    daily = pd.read_csv(root / "daily_metrics.csv")
    truth = json.loads((root / "ground_truth.json").read_text())
    build = build_case_base(creatives[list(PRELAUNCH)].copy(), build_outcomes(creatives, daily),
                            ground_truth_blocks(creatives, truth), daily)
    return build.frame, None


def margins(seeds: list[int]) -> list[dict]:
    """Test-window Spearman of the served score forecast and of every baseline, per seed."""
    from creative_dag.cbr.backtest import BacktestConfig, run_backtest
    from creative_dag.cbr.query import CaseMemory
    from creative_dag.forecast.model import ForecastConfig, run_forecast

    rows = []
    for seed in seeds:
        case_base, _ = scenario_case_base(seed)
        memory = CaseMemory(case_base)
        backtest = run_backtest(case_base, memory, BacktestConfig(ablations=False))
        # every method of the backtest (ablations off) but its random floor
        methods = [m for m in backtest.metrics["method"].drop_duplicates() if m != "random"]
        baselines = {name: round(backtest.value(name, "spearman"), 3) for name in methods}
        served = run_forecast(case_base, memory, None, ForecastConfig(kpis=("score",), evaluate=False)).served("score")
        best = max(baselines, key=baselines.get)
        rows.append({"seed": seed, "served": round(served, 3), "best_baseline": best,
                     "margin": round(served - baselines[best], 3), **baselines})
        print(rows[-1], flush=True)
    return rows


def warehouse_case_base(home: Path):
    from creative_dag.assets.marts import attribute_frame_of
    from creative_dag.resources.warehouse import DuckDBWarehouse

    warehouse = DuckDBWarehouse(home / "creative.duckdb", read_only=True)
    return warehouse.read_table("cbr.case_base"), attribute_frame_of(warehouse)


def measure(name: str, case_base: pd.DataFrame, attributes) -> list[dict]:
    from creative_dag.cbr.query import CaseMemory
    from creative_dag.forecast.model import ForecastConfig, run_forecast

    rows = []
    memory = CaseMemory(case_base)
    for learner in LEARNERS:
        config = ForecastConfig(kpis=("score",), evaluate=False, learner=learner)
        start = time.perf_counter()
        result = run_forecast(case_base, memory, attributes, config)
        seconds = time.perf_counter() - start
        perf = result.performance
        members = perf[(perf["window"] == "test") & (perf["input_set"].isin(["all+cbr", "all_blocks"]))]
        rows.append({"data": name, "learner": learner, "served_spearman": result.served("score"),
                     "best_member_spearman": float(members["spearman"].max()), "seconds": round(seconds, 1)})
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=None, help="a materialised warehouse home to measure too")
    parser.add_argument("--margins", type=int, nargs="+", default=None, metavar="SEED",
                        help="score the served forecast against the baselines at these seeds instead")
    args = parser.parse_args()
    if args.margins:
        results = margins(args.margins)
        (ROOT / "bench" / "results" / "forecast_margins.json").write_text(json.dumps(results, indent=1))
        print(pd.DataFrame(results).to_markdown(index=False))
        return
    results = measure("visual-effects scenario (200 x 90)", *scenario_case_base())
    if args.home:
        results += measure(f"warehouse {args.home}", *warehouse_case_base(args.home))
    out = ROOT / "bench" / "results" / "forecast.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    print(pd.DataFrame(results).to_markdown(index=False))


if __name__ == "__main__":
    main()

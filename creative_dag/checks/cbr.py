"""Checks beside the CBR assets (docs/features.md, docs/cbr.md).

* cbr.case_base `decision_time_columns` (blocking): GX column-set suite from
  creative_dag.checks.decision_time — only id/prelaunch registry columns, the block vectors, the as-of
  dates and the `outcome_*` label group may be present. The outcome group is allowed by an explicit
  exception: it is what retrieval returns for *past* cases, released only after their
  available_date (as-of), measured over the maturity window, and never an input of a decision
  about the case itself. Any other column (e.g. a leaky export column) fails the check.
* cbr.case_base `vectors_and_dates` (blocking): every stored block vector is unit length and
  available_date >= launch_date, mature_date.
* cbr.neighbors `as_of_neighbors` (blocking): no neighbour launched or matured on/after its
  query's launch date, and no creative is its own neighbour.
* cbr.backtest `cbr_beats_account_mean` (warning): on the test window CBR's Spearman is at least the
  account-mean baseline's.
"""


import dagster as dg
import numpy as np

from creative_dag.assets.cbr import as_of_violations
from creative_dag.blocks import BLOCKS
from creative_dag.catalog import (
    CBR_BACKTEST,
    CBR_CASE_BASE,
    CBR_NEIGHBORS,
)
from creative_dag.cbr.case_base import OUTCOME_COLUMNS
from creative_dag.cbr.index import to_days
from creative_dag.checks.decision_time import decision_time_check
from creative_dag.vectors import is_missing_vector

CASE_BASE_DERIVED_COLUMNS: tuple[str, ...] = (*BLOCKS, "blocks_present", "mature_date", "available_date", *OUTCOME_COLUMNS)
NORM_TOLERANCE = 1e-3

case_base_decision_time_columns = decision_time_check(
    CBR_CASE_BASE.key, CBR_CASE_BASE, extra_allowed=CASE_BASE_DERIVED_COLUMNS)


@dg.asset_check(asset=CBR_CASE_BASE.key, name="vectors_and_dates", blocking=True, required_resource_keys={"warehouse"},
                pool="warehouse",
                description="Every block vector in cbr.case_base is L2-normalised; available_date is on or after "
                            "launch_date and mature_date (as-of retrieval relies on it).")
def case_base_vectors_and_dates(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    warehouse = context.resources.warehouse
    frame = warehouse.read_table(CBR_CASE_BASE)
    bad_norms: dict[str, list[str]] = {}
    for block in BLOCKS:
        if block not in frame.columns:
            continue
        for cid, vec in zip(frame["creative_id"], frame[block]):
            if is_missing_vector(vec):
                continue
            if abs(float(np.linalg.norm(np.asarray(vec, dtype=float))) - 1.0) > NORM_TOLERANCE:
                bad_norms.setdefault(block, []).append(str(cid))
    launch = np.asarray(to_days(frame["launch_date"]))
    mature = np.asarray(to_days(frame["mature_date"]))
    available = np.asarray(to_days(frame["available_date"]))
    has_mature = mature != np.iinfo(np.int64).max
    bad_dates = frame.loc[(available < launch) | (has_mature & (available < mature)), "creative_id"].astype(str).tolist()
    passed = not bad_norms and not bad_dates
    return dg.AssetCheckResult(
        passed=passed, severity=dg.AssetCheckSeverity.ERROR,
        description="ok" if passed else (f"{sum(map(len, bad_norms.values()))} vectors not unit length "
                                         f"({', '.join(bad_norms)}); {len(bad_dates)} rows with available_date "
                                         "before launch/mature date: re-materialise cbr/case_base"),
        metadata={"not_unit_length": {b: ids[:20] for b, ids in bad_norms.items()},
                  "bad_available_date": bad_dates[:20]},
    )


@dg.asset_check(asset=CBR_NEIGHBORS.key, name="as_of_neighbors", blocking=True, required_resource_keys={"warehouse"},
                pool="warehouse",
                description="No neighbour in cbr.neighbors was launched or matured on/after its query's launch date.")
def neighbors_as_of(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    table = context.resources.warehouse.read_table(CBR_NEIGHBORS)
    violations = as_of_violations(table)
    return dg.AssetCheckResult(
        passed=violations == 0, severity=dg.AssetCheckSeverity.ERROR,
        description=f"{violations} neighbour rows break as-of retrieval" if violations else
        f"all {len(table)} neighbour rows are as-of",
        metadata={"violations": violations, "rows": len(table)},
    )


@dg.asset_check(asset=CBR_BACKTEST.key, name="cbr_beats_account_mean", required_resource_keys={"warehouse"},
                pool="warehouse",
                description="Warning when CBR ranks creatives no better than the account's as-of mean (test window).")
def backtest_cbr_beats_account_mean(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    table = context.resources.warehouse.read_table(CBR_BACKTEST)
    test = table[(table["window"] == "test") & (table["metric"] == "spearman")].set_index("method")["value"]
    if "cbr" not in test.index or "account_mean" not in test.index:
        return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.WARN,
                                   description="backtest skipped (too little history): nothing to compare")
    cbr, base = float(test["cbr"]), float(test["account_mean"])
    return dg.AssetCheckResult(
        passed=bool(np.isfinite(cbr) and cbr >= base), severity=dg.AssetCheckSeverity.WARN,
        description=f"test Spearman: cbr {cbr:.3f} vs account_mean {base:.3f}",
        metadata={"cbr_spearman": cbr, "account_mean_spearman": base},
    )

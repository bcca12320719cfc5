"""CBR assets (docs/cbr.md): cbr.case_base, cbr.neighbors, cbr.backtest.

Thin wrappers over creative_dag.cbr: read the warehouse, call the compute, write through the
warehouse resource. The FAISS case index is persisted beside the warehouse file
(<home>/index/cbr) when cbr.case_base materialises; later steps and the CLI reuse it when its
fingerprint matches the case base and rebuild it otherwise. Checks: creative_dag/checks/cbr.py.
"""


import dagster as dg
import numpy as np
import pandas as pd
from pydantic import Field

from creative_dag.assets.metadata import table_metadata
from creative_dag.blocks import BLOCKS, EMBEDDING_BLOCKS, parse_weights
from creative_dag.catalog import (
    CBR_BACKTEST,
    CBR_CASE_BASE,
    CBR_NEIGHBORS,
    EMBEDDING_KEYS,
    FEATURES_OUTCOMES,
    FEATURES_PRELAUNCH,
    RAW_DAILY_METRICS,
)
from creative_dag.cbr.backtest import METRICS, BacktestConfig, run_backtest
from creative_dag.cbr.case_base import build_case_base
from creative_dag.cbr.index import to_days
from creative_dag.cbr.query import CaseMemory, empty_neighbors, index_dir_for
from creative_dag.dagster_config import config_from

_COMMON = dict(group_name="cbr", kinds={"duckdb", "python"}, pool="warehouse",
               required_resource_keys={"warehouse"})
# stored as DATE like every other table's dates (the case base's Timestamps would be TIMESTAMP)
NEIGHBOR_TYPES = {"launch_date": "DATE", "neighbor_launch_date": "DATE", "neighbor_mature_date": "DATE"}


class CaseBaseConfig(dg.Config):
    """pca_dims: optional per-block PCA sizes, e.g. {"cnn": 128}; fitted only on creatives launched in
    the first `pca_fit_days` days (the backtest warm-up), so later creatives never shape it.
    approximate_above / approximate / exact_below: index modes (see creative_dag.cbr.index.CaseIndex)."""

    pca_dims: dict[str, int] = Field({}, description='Optional PCA size per block, e.g. {"cnn": 128} (none by '
                                                     "default: the blocks' own dimensions).")
    pca_fit_days: int = Field(21, description="The PCA is fitted on creatives launched in the first pca_fit_days "
                                              "days only (the backtest warm-up).")
    approximate_above: int = Field(200_000, description="Cases above which the index searches approximately.")
    approximate: str = Field("hnsw", description="Approximate index kind above approximate_above (hnsw).")
    exact_below: int = Field(4096, description="Cases below which every search is exact (brute force).")


class NeighborsConfig(dg.Config):
    """k neighbours per creative; weights as "clip=1,cnn=0.5" (overrides DEFAULT_WEIGHTS; empty = defaults)."""

    k: int = Field(10, description="Neighbours stored per creative.")
    weights: str = Field("", description='Block weights as "clip=1,cnn=0.5" overriding the defaults; empty = '
                                         "the defaults (docs/cbr.md).")


class BacktestAssetConfig(config_from(BacktestConfig, "k", "warmup_days", "validation_share", "learn_weights",
                                      "ablations", "gbm_refit_days")):
    """creative_dag.cbr.backtest.BacktestConfig."""


def _memory(warehouse) -> tuple[pd.DataFrame, CaseMemory | None]:
    """The case base and its memory; None when there is no case (no creative landed)."""
    case_base = warehouse.read_table(CBR_CASE_BASE)
    if case_base.empty:
        return case_base, None
    return case_base, CaseMemory.open(case_base, index_dir_for(warehouse.database))


NO_CREATIVES = "no creatives: cbr.case_base is empty (raw.creatives has no usable row; see raw.quarantine)"


@dg.asset(key=CBR_CASE_BASE.key, deps=[*EMBEDDING_KEYS, FEATURES_PRELAUNCH.key, FEATURES_OUTCOMES.key, RAW_DAILY_METRICS.key], **_COMMON,
          description="One row per creative: L2-normalised block vectors (null = block missing), prelaunch "
                      "context, mature/available dates, and the outcome_* label group (maturity-window outcomes, "
                      "evaluation only). Also builds and persists the FAISS case index.")
def case_base(context: dg.AssetExecutionContext, config: CaseBaseConfig) -> dg.MaterializeResult:
    warehouse = context.resources.warehouse
    with warehouse.reading() as db:
        tables = {b: db.read_optional(f"embeddings.{b}") for b in EMBEDDING_BLOCKS}
        prelaunch = db.read_table(FEATURES_PRELAUNCH)
        outcomes = db.read_table(FEATURES_OUTCOMES)
        daily = db.read_optional(RAW_DAILY_METRICS)
    unknown = [b for b in config.pca_dims if b not in BLOCKS]
    if unknown:
        raise ValueError(f"CaseBaseConfig.pca_dims has unknown blocks {unknown}; blocks are {', '.join(BLOCKS)}")
    pca_fit_before = None
    if config.pca_dims:
        first = pd.to_datetime(prelaunch["launch_date"]).min()
        pca_fit_before = first + pd.Timedelta(days=config.pca_fit_days)
    build = build_case_base(prelaunch, outcomes, tables, daily, pca_dims=config.pca_dims or None,
                            pca_fit_before=pca_fit_before)
    frame = build.frame
    # a block no creative has (CLIP offline) is still a list column, like the others
    warehouse.write_table(CBR_CASE_BASE, frame, types={b: "DOUBLE[]" for b in BLOCKS if b in frame.columns})
    index_summary: dict = {"status": "no block vectors: index not built"}
    if build.layout is not None:
        memory = CaseMemory(frame, approximate_above=config.approximate_above, approximate=config.approximate,
                            exact_below=config.exact_below)
        memory.index.save(index_dir_for(warehouse.database))
        index_summary = memory.index.summary()
    available = [b for b in BLOCKS if build.report["blocks"].get(b, {}).get("available")]
    block_rows = pd.DataFrame([
        {"block": b, "available": bool(r.get("available")), "creatives": r.get("rows", 0), "dim": r.get("dim", 0),
         "bad_rows": r.get("bad_rows", 0), "pca": r.get("pca", ""), "note": r.get("reason", "")}
        for b, r in build.report["blocks"].items()])
    context.log.info(f"cbr.case_base: {len(frame)} cases, blocks {available}; index {index_summary}")
    return dg.MaterializeResult(metadata=table_metadata(
        CBR_CASE_BASE, frame,
        blocks_available=", ".join(available) or "(none)",
        blocks=block_rows,
        outcome_window=build.report["outcome_window"],
        cases_with_outcome=int(frame["outcome_score"].notna().sum()),
        index=index_summary,
    ))


@dg.asset(key=CBR_NEIGHBORS.key, deps=[CBR_CASE_BASE.key], **_COMMON,
          description="Top-K as-of neighbours of every creative (cases launched and matured before its launch) "
                      "with overall and per-block similarity (sim_<block>) and the neighbours' outcomes.")
def neighbors(context: dg.AssetExecutionContext, config: NeighborsConfig) -> dg.MaterializeResult:
    warehouse = context.resources.warehouse
    case_base_frame, memory = _memory(warehouse)
    if memory is None:
        table = empty_neighbors()
        warehouse.write_table(CBR_NEIGHBORS, table, types=NEIGHBOR_TYPES)
        context.log.warning(f"cbr.neighbors: {NO_CREATIVES}")
        return dg.MaterializeResult(metadata=table_metadata(CBR_NEIGHBORS, table, status=NO_CREATIVES))
    weights = parse_weights(config.weights) if config.weights else None
    table = memory.neighbors(k=config.k, weights=weights)
    warehouse.write_table(CBR_NEIGHBORS, table, types=NEIGHBOR_TYPES)
    violations = as_of_violations(table)
    with_neighbors = table["creative_id"].nunique() if len(table) else 0
    top1 = table.loc[table["neighbor_rank"] == 1, "similarity"] if len(table) else pd.Series(dtype=float)
    return dg.MaterializeResult(metadata=table_metadata(
        CBR_NEIGHBORS, table,
        creatives_with_neighbors=int(with_neighbors),
        creatives_without_history=int(len(case_base_frame) - with_neighbors),
        mean_top1_similarity=float(top1.mean()) if len(top1) else float("nan"),
        as_of_violations=int(violations),
        k=config.k,
    ))


@dg.asset(key=CBR_BACKTEST.key, deps=[CBR_CASE_BASE.key], **_COMMON,
          description="As-of backtest: CBR outcome-rank prediction vs account mean, context kNN, prelaunch GBM and "
                      "block ablations. Rows = method × metric × window (Spearman, within-cohort Spearman, "
                      "NDCG@10 in account-week cohorts, top-decile precision).")
def backtest(context: dg.AssetExecutionContext, config: BacktestAssetConfig) -> dg.MaterializeResult:
    warehouse = context.resources.warehouse
    case_base_frame, memory = _memory(warehouse)
    bt_config = config.to_params()
    try:
        if memory is None:
            raise ValueError(NO_CREATIVES)
        result = run_backtest(case_base_frame, memory, bt_config)
    except ValueError as exc:
        # Too little history is a state of the data, not a failure: record it and go on.
        empty = pd.DataFrame({"method": pd.Series(dtype=str), "metric": pd.Series(dtype=str),
                              "window": pd.Series(dtype=str), "value": pd.Series(dtype=float),
                              "n_queries": pd.Series(dtype="int64"), "n_cohorts": pd.Series(dtype="int64"),
                              "description": pd.Series(dtype=str)})
        warehouse.write_table(CBR_BACKTEST, empty)
        return dg.MaterializeResult(metadata=table_metadata(CBR_BACKTEST, empty, status=f"skipped: {exc}"))
    warehouse.write_table(CBR_BACKTEST, result.metrics)
    figures = {
        "CBR Spearman": result.value("cbr", "spearman"),
        "account_mean Spearman": result.value("account_mean", "spearman"),
        "summary": dg.MetadataValue.md(result.summary_markdown("test")),
        "validation_summary": dg.MetadataValue.md(result.summary_markdown("validation")),
        "test_creatives": result.info["n_test"],
        "validation_creatives": result.info["n_validation"],
        "default_weights": result.info["default_weights"],
    }
    if result.learned_weights is not None:
        figures["learned_weights"] = result.learned_weights
        figures["CBR (learned weights) Spearman"] = result.value("cbr_learned", "spearman")
    return dg.MaterializeResult(metadata=table_metadata(CBR_BACKTEST, result.metrics, preview_rows=len(METRICS) * 4, **figures))


def as_of_violations(neighbors_table: pd.DataFrame) -> int:
    """Neighbour rows launched or matured on/after their query's launch date, or the query itself."""
    if neighbors_table.empty:
        return 0
    launch = np.asarray(to_days(neighbors_table["launch_date"]))
    nb_launch = np.asarray(to_days(neighbors_table["neighbor_launch_date"]))
    nb_mature = np.asarray(to_days(neighbors_table["neighbor_mature_date"]))
    bad = (nb_launch >= launch) | (nb_mature >= launch) | (
        neighbors_table["neighbor_id"].to_numpy() == neighbors_table["creative_id"].to_numpy())
    return int(bad.sum())

"""Report stage: publish the serving copy that BI tools read (docs/operations.md)."""


from collections.abc import Sequence
from pathlib import Path

import dagster as dg

from creative_dag.assets.metadata import counts_markdown
from creative_dag.resources.warehouse import WarehouseResource

SERVING_COPY_KEY = dg.AssetKey(["report", "serving_copy"])


def build_serving_copy_asset(upstream: Sequence[dg.AssetKey]) -> dg.AssetsDefinition:
    """The last step of the graph: depends on every table asset so it publishes a consistent state."""

    @dg.asset(
        key=SERVING_COPY_KEY,
        deps=list(upstream),
        group_name="report",
        kinds={"duckdb", "parquet"},
        pool="warehouse",
        description=(
            "Parquet files plus a DuckDB file of tables under $CREATIVE_DAG_HOME/serving, swapped in "
            "atomically. BI tools open only this copy, never the live warehouse (a reader's lock "
            "would block the pipeline's writes)."
        ),
    )
    def serving_copy(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
        serving_dir = Path(warehouse.database).parent / "serving"
        counts = warehouse.get().publish(serving_dir)
        context.log.info(f"published {len(counts)} tables to {serving_dir}")
        return dg.MaterializeResult(
            metadata={
                "path": dg.MetadataValue.path(str(serving_dir / "creative.duckdb")),
                "tables": dg.MetadataValue.int(len(counts)),
                "row_counts": counts_markdown(counts, "table", "rows"),
            }
        )

    return serving_copy

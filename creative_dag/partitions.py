"""Partitions: creatives are partitioned by launch date, the unit of backfill for per-creative work."""

from __future__ import annotations

import dagster as dg

from creative_dag.catalog import (
    RAW_CREATIVES,
)
from creative_dag.resources.warehouse import DuckDBWarehouse

# Dynamic rather than daily-from-a-fixed-start: an account's history can begin any day, and
# only days on which something launched deserve a partition. The launch-date sensor and
# `creative-dag materialize` register new dates as they land.
launch_date_partitions = dg.DynamicPartitionsDefinition(name="launch_date")
# Run tags of one run over a range of launch dates (Dagster's single-run backfill tags).
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def launch_dates_in_warehouse(warehouse: DuckDBWarehouse) -> list[str]:
    """ISO launch dates present in raw.creatives, sorted; empty before the first ingest."""
    if not warehouse.exists(RAW_CREATIVES):
        return []
    frame = warehouse.query(
        "SELECT DISTINCT CAST(launch_date AS VARCHAR) AS d FROM raw.creatives WHERE launch_date IS NOT NULL ORDER BY 1"
    )
    return frame["d"].tolist()


def unregistered_launch_dates(instance: dg.DagsterInstance, warehouse: DuckDBWarehouse) -> list[str]:
    """Launch dates in the warehouse that are not yet `launch_date` partitions of this instance."""
    existing = set(instance.get_dynamic_partitions(launch_date_partitions.name))
    return [d for d in launch_dates_in_warehouse(warehouse) if d not in existing]


# One partition per folder `<landing>/candidates/<batch>/` of new creatives to assess; the candidates
# sensor (and `creative-dag materialize`) adds them as batches land.
candidate_batch_partitions = dg.DynamicPartitionsDefinition(name="candidate_batch")

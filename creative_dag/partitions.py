"""Partitions: creatives are partitioned by launch date, the unit of backfill for per-creative work."""

from __future__ import annotations

import dagster as dg

# Dynamic rather than daily-from-a-fixed-start: an account's history can begin any day, and
# only days on which something launched deserve a partition. The launch-date sensor and
# `creative-dag materialize` register new dates as they land.
launch_date_partitions = dg.DynamicPartitionsDefinition(name="launch_date")

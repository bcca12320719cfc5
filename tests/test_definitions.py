"""The Definitions object loads, validates, and stays cheap to import (no GX, no torch at load)."""

from __future__ import annotations

import json
import subprocess
import sys

import dagster as dg


def test_definitions_validate_loadable():
    from creative_dag.definitions import build_definitions

    defs = build_definitions()
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {"raw/creatives", "raw/daily_metrics", "raw/images", "raw/quarantine", "report/serving_copy"} <= keys


def test_asset_keys_follow_schema_table_and_writers_share_the_pool():
    from creative_dag.definitions import build_definitions

    defs = build_definitions()
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        assert len(key.path) == 2, f"{key} must be [schema, table]"
    for asset in defs.assets:
        for spec in asset.specs:
            assert asset.op.pool == "warehouse", f"{spec.key} writes DuckDB and must use pool='warehouse'"


def test_loading_definitions_does_not_import_heavy_libraries():
    code = (
        "import sys, json; import creative_dag.definitions; "
        "print(json.dumps([m for m in ('great_expectations', 'torch', 'transformers', 'easyocr', 'umap') if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_encoders_retry_transient_failures_and_a_sensor_reaps_killed_runs():
    from creative_dag.definitions import build_definitions

    defs = build_definitions()
    for asset in defs.assets:
        if asset.group_names_by_key.get(next(iter(asset.keys))) == "encoders" and asset.partitions_def is not None:
            policy = asset.op.retry_policy
            assert policy is not None and policy.max_retries >= 1, f"{asset.keys} has no retry policy"
    stale = next(s for s in defs.sensors if s.name == "stale_runs_sensor")
    assert stale.default_status == dg.DefaultSensorStatus.RUNNING, "a killed run must not block later runs"

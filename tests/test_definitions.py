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


def test_asset_keys_follow_schema_table_and_only_encoder_compute_is_outside_the_pool():
    from creative_dag.definitions import build_definitions

    defs = build_definitions()
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        assert len(key.path) == 2, f"{key} must be [schema, table]"
    for asset in defs.assets:
        ops = list(asset.node_def.iterate_op_defs()) if isinstance(asset.node_def, dg.GraphDefinition) \
            else [asset.op]
        for op in ops:
            if op.name.startswith("encode_"):
                # the encoders' heavy step writes the embedding store, never DuckDB, and holds no lock
                assert op.pool is None, f"{op.name} must run outside the warehouse pool"
            else:
                assert op.pool == "warehouse", f"{op.name} writes DuckDB and must use pool='warehouse'"


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
            for op in asset.node_def.iterate_op_defs():
                policy = op.retry_policy
                assert policy is not None and policy.max_retries >= 1, f"{op.name} has no retry policy"
    stale = next(s for s in defs.sensors if s.name == "stale_runs_sensor")
    assert stale.default_status == dg.DefaultSensorStatus.RUNNING, "a killed run must not block later runs"


def test_the_daily_path_is_automated_without_a_schedule():
    """What `dagster dev` runs by itself (creative_dag/automation.py; tests/test_daily_path.py runs it)."""
    from creative_dag.automation import (
        AUTOMATION_SENSOR,
        CANDIDATES_JOB,
        EMBED_JOB,
        INGEST_JOB,
        REFRESH_JOB,
    )
    from creative_dag.definitions import build_definitions

    defs = build_definitions()
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        condition = graph.get(key).automation_condition
        group = graph.get(key).group_name
        if group == "ingest":
            assert condition is None, f"{key.to_user_string()}: the landing sensor starts ingest"
        elif group == "candidates":
            assert condition is None, f"{key.to_user_string()}: the candidates sensor starts each batch"
        else:
            assert condition is not None, f"{key.to_user_string()} has no automation condition"
    sensors = {s.name: s.default_status for s in defs.sensors}
    assert sensors == {
        "landing_sensor": dg.DefaultSensorStatus.STOPPED,
        "stale_runs_sensor": dg.DefaultSensorStatus.RUNNING,
        "launch_date_sensor": dg.DefaultSensorStatus.RUNNING,
        AUTOMATION_SENSOR: dg.DefaultSensorStatus.RUNNING,
        "candidates_sensor": dg.DefaultSensorStatus.RUNNING,
    }
    assert not list(defs.schedules or [])
    assert {j.name for j in defs.jobs} == {INGEST_JOB, EMBED_JOB, REFRESH_JOB, CANDIDATES_JOB}

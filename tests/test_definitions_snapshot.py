"""A snapshot of the Dagster definitions: every change to the graph is a visible diff in review.

Asset keys with their group, partitioning, pools and whether they carry an automation condition;
asset checks with their `blocking` flag; jobs; schedules; sensors with their default status. When a
change is intended, regenerate the snapshot and commit it with the change:

    UPDATE_SNAPSHOTS=1 .venv/bin/python -m pytest tests/test_definitions_snapshot.py
"""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path

from creative_dag.definitions import build_definitions

SNAPSHOT = Path(__file__).parent / "snapshots" / "definitions.json"


def describe(home: Path) -> dict:
    defs = build_definitions(home=home, landing=home / "landing", refresh_cron="0 5 * * *")
    graph = defs.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys()):
        node = graph.get(key)
        partitions = node.partitions_def
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "partitions": None if partitions is None else getattr(partitions, "name", None) or type(partitions).__name__,
            "pools": sorted(node.pools or []),
            "automation": node.automation_condition is not None,
            "kinds": sorted(node.kinds),
        }
    checks = {f"{k.asset_key.to_user_string()}:{k.name}": {"blocking": graph.get_check_spec(k).blocking}
              for k in sorted(graph.asset_check_keys, key=lambda k: (k.asset_key.to_user_string(), k.name))}
    return {
        "assets": assets,
        "checks": checks,
        "jobs": sorted(j.name for j in defs.resolve_all_job_defs() if not j.name.startswith("__")),
        "schedules": sorted(s.name for s in defs.schedules or []),
        "sensors": {s.name: s.default_status.value for s in sorted(defs.sensors or [], key=lambda s: s.name)},
    }


def test_definitions_match_the_committed_snapshot(tmp_path):
    current = json.dumps(describe(tmp_path), indent=1, sort_keys=True) + "\n"
    if os.environ.get("UPDATE_SNAPSHOTS"):
        SNAPSHOT.write_text(current)
    expected = SNAPSHOT.read_text() if SNAPSHOT.exists() else ""
    diff = "".join(difflib.unified_diff(expected.splitlines(True), current.splitlines(True),
                                        "tests/snapshots/definitions.json", "current definitions"))
    assert not diff, ("The asset graph changed. If intended, run UPDATE_SNAPSHOTS=1 .venv/bin/python -m pytest "
                      f"tests/test_definitions_snapshot.py and commit the snapshot.\n{diff}")

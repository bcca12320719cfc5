"""The Dagster instance the CLI runs against: $CREATIVE_DAG_HOME/.dagster, configured from dagster.yaml."""

from __future__ import annotations

import json
import os
from pathlib import Path

import dagster as dg

from creative_dag.pool_claims import DEFAULT_CLAIM_POLL_SECONDS
from creative_dag.settings import Locations

# The repository's dagster.yaml; a wheel install without the repo falls back to the built-in text.
_REPO_INSTANCE_YAML = Path(__file__).resolve().parents[1] / "dagster.yaml"
_FALLBACK_INSTANCE_YAML = """\
concurrency:
  pools:
    default_limit: 1
telemetry:
  enabled: false
"""


def prepare_dagster_home(locations: Locations) -> Path:
    """Create $CREATIVE_DAG_HOME/.dagster with the project's instance config; set DAGSTER_HOME."""
    home = locations.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    target = home / "dagster.yaml"
    text = instance_yaml(home)
    if not target.exists() or target.read_text() != text:
        target.write_text(text)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def instance_yaml(dagster_home: Path) -> str:
    """The repository's dagster.yaml plus this home's event-log storage (`pool_claims`: prompt pool
    re-checks), its folder written out: where Dagster's default storage keeps it, so history stays."""
    base = _REPO_INSTANCE_YAML.read_text() if _REPO_INSTANCE_YAML.exists() else _FALLBACK_INSTANCE_YAML
    runs = json.dumps(str(dagster_home.resolve() / "history" / "runs"))  # a YAML-safe quoted path
    return (base.rstrip("\n") + "\n\n# Written by creative_dag.instance for this home: a step waiting for the"
            f" warehouse pool\n# checks again every {DEFAULT_CLAIM_POLL_SECONDS} s (creative_dag/pool_claims.py).\n"
            "event_log_storage:\n  module: creative_dag.pool_claims\n  class: PromptClaimSqliteEventLogStorage\n"
            f"  config:\n    base_dir: {runs}\n    claim_poll_seconds: {DEFAULT_CLAIM_POLL_SECONDS}\n")


def get_instance(locations: Locations) -> dg.DagsterInstance:
    """A persistent instance under the warehouse home, so CLI runs show up in `dagster dev`."""
    prepare_dagster_home(locations)
    return dg.DagsterInstance.get()

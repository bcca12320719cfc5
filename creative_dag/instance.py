"""The Dagster instance the CLI runs against: $CREATIVE_DAG_HOME/.dagster, configured from dagster.yaml."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import dagster as dg

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
    if _REPO_INSTANCE_YAML.exists():
        if not target.exists() or target.read_bytes() != _REPO_INSTANCE_YAML.read_bytes():
            shutil.copyfile(_REPO_INSTANCE_YAML, target)
    elif not target.exists():
        target.write_text(_FALLBACK_INSTANCE_YAML)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def get_instance(locations: Locations) -> dg.DagsterInstance:
    """A persistent instance under the warehouse home, so CLI runs show up in `dagster dev`."""
    prepare_dagster_home(locations)
    return dg.DagsterInstance.get()

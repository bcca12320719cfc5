"""Imported last by the step processes' forkserver (`step_processes.PRELOAD_MODULES`), after the project and
its libraries: it prepares what every forked step process inherits.

- The modules of the Dagster instance's configured classes (storages, compute logs, run launcher): each
  step opens the instance first, and importing them there took ~0.2 s of each step of `refresh_memory`
  (0.22 s -> 0.06 s per step once preloaded; ~40 steps).
- `gc.freeze()` moves the preloaded objects (~0.9 M: the definitions, torch, pandas, Dagster) to the
  collector's permanent generation, so no step's full collection walks them again, and walking them no
  longer writes to their pages, which forked processes would then copy: what CPython's `gc.freeze`
  documentation recommends before forking.
- Full collections are spaced out as in the CLI (`process_gc`).

Python's forkserver offers no hook other than importing modules, hence a module whose import is the
point; nothing else imports it.
"""

from __future__ import annotations

import gc
import importlib
import os

from creative_dag.process_gc import space_out_full_collections

INSTANCE_CLASSES = ("storage_data", "run_storage_data", "event_storage_data", "schedule_storage_data",
                    "compute_logs_data", "local_artifact_storage_data", "run_coordinator_data", "run_launcher_data",
                    "scheduler_data")


def import_instance_classes(dagster_home: str | None) -> list[str]:
    """Import the modules of the classes $DAGSTER_HOME/dagster.yaml configures (and upath, which opening an
    instance imports); returns their names. Nothing when there is no readable instance: the steps then
    report that themselves."""
    if not dagster_home:
        return []
    from dagster._core.instance.ref import InstanceRef

    try:
        ref = InstanceRef.from_dir(dagster_home)
    except Exception:  # noqa: BLE001 — an optimisation only; a step opening this instance names the error
        return []
    names = sorted({data.module_name for data in (getattr(ref, a, None) for a in INSTANCE_CLASSES) if data is not None})
    for name in [*names, "upath"]:
        importlib.import_module(name)
    return names


import_instance_classes(os.environ.get("DAGSTER_HOME"))
space_out_full_collections()
gc.freeze()

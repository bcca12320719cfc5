"""How the multiprocess executor starts each step's process: forked from a server that has imported the
project and its heavy libraries once per run, instead of a fresh interpreter per step.

Dagster's multiprocess executor (the default of runs launched from the UI, by the daemon's sensors and
automation, and of `dagster job execute`) spawns a new Python process per step unless told otherwise, and
each one imports the definitions (~4 s on 2 cores) and whatever its step needs (great_expectations,
torch, timm, lightgbm, umap: 2-3 s each). A whole-history refresh of the demo is ~40 steps: measured
on a copy of the demo home (`bench/step_processes.py`), `refresh_memory` took 175-216 s spawning and
73-80 s forking from a preloaded server, with every warehouse table equal.

Run config still decides: `start_method: {spawn: {}}` (or a forkserver with other preload modules) is
passed through unchanged, and `in_process` runs are untouched. Modules missing from an install are
skipped by the forkserver. On Windows (no forkserver) and macOS (forking after system frameworks were
loaded can crash) steps are spawned as before; there, name the forkserver in run config to try it.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

import dagster as dg

# What the steps of this graph import: the project first (its definitions), then the libraries its
# assets import lazily; last, forkserver_ready adds the Dagster instance's classes and freezes all of it
# for the collector (see there).
PRELOAD_MODULES = ("creative_dag.definitions", "great_expectations", "torch", "torchvision", "timm", "lightgbm",
                   "sklearn", "scipy", "umap", "cv2", "duckdb", "pyarrow", "creative_dag.forkserver_ready")
FORKSERVER = {"forkserver": {"preload_modules": list(PRELOAD_MODULES)}}


def forks_by_default(platform: str | None = None) -> bool:
    """Linux only: Windows has no forkserver, and on macOS a process forked after system frameworks were
    loaded (torch, OpenCV) can crash, which is why Python itself spawns there."""
    import multiprocessing

    return (platform or sys.platform).startswith("linux") and "forkserver" in multiprocessing.get_all_start_methods()


def with_forkserver(multiprocess_config: Mapping[str, Any] | None) -> dict[str, Any]:
    """A multiprocess executor's config with the preloaded forkserver as its start method, unless it names
    one or the platform is not Linux (`forks_by_default`: Dagster's spawn then)."""
    config = dict(multiprocess_config or {})
    if forks_by_default():
        config.setdefault("start_method", FORKSERVER)
    return config


def _default_executor_config(config: Mapping[str, Any]) -> dict[str, Any]:
    if "in_process" in config:
        return dict(config)
    return {"multiprocess": with_forkserver(config.get("multiprocess"))}


def project_executor() -> dg.ExecutorDefinition:
    """Dagster's default executor (multiprocess, or in_process by run config) with forked step processes."""
    base = dg.multi_or_in_process_executor
    return base.configured(_default_executor_config, name=base.name,
                           config_schema=base.config_schema.as_field(),
                           description="Dagster's default executor; multiprocess steps fork from a server that "
                                       "preloaded the project (creative_dag/step_processes.py)")


def multiprocess_executor() -> dg.ExecutorDefinition:
    """Dagster's multiprocess executor with forked step processes (same config)."""
    base = dg.multiprocess_executor
    return base.configured(with_forkserver, name=base.name, config_schema=base.config_schema.as_field(),
                           description="Dagster's multiprocess executor; steps fork from a server that preloaded "
                                       "the project (creative_dag/step_processes.py)")

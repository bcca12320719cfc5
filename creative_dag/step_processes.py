"""How the multiprocess executor starts each step's process: forked from a server that has imported the
project and its heavy libraries once per run, instead of a fresh interpreter per step.

Dagster's multiprocess executor (the default of runs launched from the UI, by the daemon's sensors and
automation, and of `dagster job execute`) spawns a new Python process per step unless told otherwise, and
each one imports the definitions (~4 s on 2 cores) and whatever its step needs (great_expectations,
torch, timm, lightgbm, umap: 2-3 s each). A whole-history refresh of the demo is ~40 steps: measured
on a copy of the demo home (`bench/step_processes.py`), `refresh_memory` took 175-216 s spawning and
73-80 s forking from a preloaded server, with every warehouse table equal.

The server preloads what the run's steps import (`PlanPreloadingExecutor`): the project, great_expectations,
DuckDB and pyarrow always, the model and learning libraries only where a step of the run imports them (an
ingest run on the demo: 17.0-17.9 s with every library preloaded, 11.2-11.9 s without them).

Run config still decides: `start_method: {spawn: {}}` (or a forkserver with a preload list other than the
default's) is passed through unchanged, and `in_process` runs are untouched. Modules missing from an install are
skipped by the forkserver. On Windows (no forkserver) and macOS (forking after system frameworks were
loaded can crash) steps are spawned as before; there, name the forkserver in run config to try it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import dagster as dg
from dagster._core.definitions.executor_definition import ExecutorDefinition
from dagster._core.events import DagsterEvent, EngineEventData
from dagster._core.execution.context.system import PlanOrchestrationContext
from dagster._core.execution.plan.plan import ExecutionPlan
from dagster._core.executor.multiprocess import MultiprocessExecutor

# What a run's step processes inherit from the forkserver: always the project (its definitions) and what every
# step or check imports; the heavy libraries only where the run has a step of a role that imports them (its
# assets import them lazily; the roles are creative_dag/automation.py's). Last, forkserver_ready adds the
# Dagster instance's classes and freezes all of it for the collector (see there).
BASE_MODULES = ("creative_dag.definitions", "great_expectations", "duckdb", "pyarrow")
LAST_MODULE = "creative_dag.forkserver_ready"
# Not timm: it builds the CNN only when the home keeps no frozen copy of it (creative_dag/encoders/compiled.py),
# once per install, and costs 0.27 s on top of torchvision, which EasyOCR imports anyway.
_EVERY_LIBRARY = ("torch", "torchvision", "lightgbm", "sklearn", "scipy", "umap", "cv2")
LIBRARIES_BY_ROLE: dict[str, tuple[str, ...]] = {
    "ingest": (),
    "features": (),
    "partitioned": ("torch", "torchvision", "cv2"),  # the encoders
    "whole_history": _EVERY_LIBRARY,  # the forecast, the landscape, the attribution's re-encoded edits
    "candidates": _EVERY_LIBRARY,  # encoders and forecast for the batch
}
# The run log's engine event that names the preload: PRELOAD_EVENT + "a, b, c (creative_dag/step_processes.py)"
PRELOAD_EVENT = "Step processes fork from a server that preloads "
# A run with steps of every role (and the preload that run config names to get the per-run choice)
PRELOAD_MODULES = (*BASE_MODULES, *_EVERY_LIBRARY, LAST_MODULE)
FORKSERVER = {"forkserver": {"preload_modules": list(PRELOAD_MODULES)}}


def preload_for(roles: Iterable[str]) -> list[str]:
    """The forkserver's preload for a run whose steps have these roles; an unknown role preloads everything."""
    libraries: set[str] = set()
    for role in roles:
        libraries.update(LIBRARIES_BY_ROLE.get(role, _EVERY_LIBRARY))
    return [*BASE_MODULES, *(m for m in _EVERY_LIBRARY if m in libraries), LAST_MODULE]


def plan_roles(job_def: dg.JobDefinition, steps: Iterable[Any]) -> set[str]:
    """Roles of the assets (or checked assets) the steps compute; "unknown" for a step of no asset."""
    from creative_dag.automation import role_of

    layer = job_def.asset_layer
    roles: set[str] = set()
    for step in steps:
        keys = layer.get_selected_entity_keys_for_node(step.node_handle)
        if not keys:
            roles.add("unknown")
        for key in keys:
            asset_key = key.asset_key if isinstance(key, dg.AssetCheckKey) else key
            node = layer.get(asset_key) if layer.has(asset_key) else None
            roles.add(role_of(node.group_name, node.partitions_def is not None) if node else "unknown")
    return roles


class PlanPreloadingExecutor(MultiprocessExecutor):
    """Dagster's multiprocess executor whose forkserver preloads what the run's steps import, not every library
    of the graph: an ingest or features run's steps need none of torch, timm, lightgbm or umap, and preloading
    them took ~6 s of a ~17 s ingest run on the demo (bench/step_processes.py)."""

    def execute(self, plan_context: PlanOrchestrationContext, execution_plan: ExecutionPlan) -> Iterator[DagsterEvent]:
        steps = [execution_plan.get_step_by_key(k) for k in execution_plan.step_keys_to_execute]
        preload = preload_for(plan_roles(plan_context.job.get_definition(), steps))
        self._explicit_forkserver_preload = preload
        yield DagsterEvent.engine_event(plan_context, PRELOAD_EVENT + ", ".join(preload) + " (creative_dag/step_processes.py)",
                                        EngineEventData())
        yield from super().execute(plan_context, execution_plan)


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


def _planning_preloads(base: dg.ExecutorDefinition) -> ExecutorDefinition:
    """`base` whose multiprocess executor, when it forks from the default preload (FORKSERVER), chooses the
    preload per run (`PlanPreloadingExecutor`); any other config gets Dagster's executor unchanged."""

    def create(init_context: dg.InitExecutorContext):
        executor = base.executor_creation_fn(init_context)
        config = init_context.executor_config
        multiprocess = config.get("multiprocess", config)  # multi_or_in_process nests it; multiprocess does not
        if type(executor) is MultiprocessExecutor and multiprocess.get("start_method") == FORKSERVER:
            # the same executor, with `execute` choosing the preload (no state of its own to set up)
            executor.__class__ = PlanPreloadingExecutor
        return executor

    return ExecutorDefinition(name=base.name, config_schema=base.config_schema, requirements=base.get_requirements,
                              executor_creation_fn=create, description=base.description)


def project_executor() -> dg.ExecutorDefinition:
    """Dagster's default executor (multiprocess, or in_process by run config) with forked step processes."""
    base = _planning_preloads(dg.multi_or_in_process_executor)
    return base.configured(_default_executor_config, name=base.name,
                           config_schema=base.config_schema.as_field(),
                           description="Dagster's default executor; multiprocess steps fork from a server that "
                                       "preloaded the project and the libraries of the run's steps "
                                       "(creative_dag/step_processes.py)")


def multiprocess_executor() -> dg.ExecutorDefinition:
    """Dagster's multiprocess executor with forked step processes (same config)."""
    base = _planning_preloads(dg.multiprocess_executor)
    return base.configured(with_forkserver, name=base.name, config_schema=base.config_schema.as_field(),
                           description="Dagster's multiprocess executor; steps fork from a server that preloaded "
                                       "the project and the libraries of the run's steps "
                                       "(creative_dag/step_processes.py)")

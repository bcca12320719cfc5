"""The same assets on another executor: Dask, Celery or Kubernetes (docs/operations.md, "Scale-out").

Why this is a module of the package: an executor that runs steps in other processes (a Dask
worker, a Celery worker, a Kubernetes step pod) rebuilds the job in that process from a code
pointer, here `creative_dag.scale_out:encoder_backfill_job(executor=...)`. A module of the
installed package imports in any such process whatever its working directory; `tests/` and
`bench/` do not. Nothing here changes an asset: where a step runs (GPU nodes, a Celery queue)
is executor configuration (`deploy/`), so the asset code stays executor-agnostic.

Locations come from CREATIVE_DAG_HOME / CREATIVE_DAG_LANDING, as for `dagster dev`. The Dask,
Celery and Kubernetes executors come with the `scale` extra (`pip install -e '.[scale]'`).

The `dask` executor is dagster-dask's (same config, same cluster types) with two repairs, see
`dask_executor_def`: as released (0.29.x) it cannot submit a run whose steps use a concurrency pool,
and it never claims pool slots, so two Dask workers would write DuckDB at once.

As a code location (`dagster dev -m creative_dag.scale_out`, or a k8s/Celery deployment's
workspace), `defs` is the whole project on the executor named by $CREATIVE_DAG_EXECUTOR
(default `multiprocess`), plus the `encoder_backfill` job. Runs that carry no run config (a UI
backfill, a sensor or automation run) need the executor's settings in code:
$CREATIVE_DAG_EXECUTOR_CONFIG names a run-config YAML (e.g. deploy/k8s/run_config.yaml) whose
`execution.config` becomes the executor's configuration.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg

from creative_dag.definitions import build_definitions
from creative_dag.partitions import launch_date_partitions

EXECUTOR_ENV = "CREATIVE_DAG_EXECUTOR"
EXECUTOR_CONFIG_ENV = "CREATIVE_DAG_EXECUTOR_CONFIG"
EXECUTORS = ("in_process", "multiprocess", "dask", "celery", "k8s")
ENCODER_BACKFILL_JOB = "encoder_backfill"
ENCODER_GROUP = "encoders"


def executor_def(name: str) -> dg.ExecutorDefinition:
    """The executor definition for a name in EXECUTORS (imported only when asked for)."""
    if name == "in_process":
        return dg.in_process_executor
    if name == "multiprocess":
        from creative_dag.step_processes import multiprocess_executor

        return multiprocess_executor()
    try:
        if name == "dask":
            return dask_executor_def()
        if name == "celery":
            from dagster_celery import celery_executor

            return celery_executor
        if name == "k8s":
            from dagster_k8s import k8s_job_executor

            return k8s_job_executor
    except ImportError as exc:
        raise ImportError(f"the {name!r} executor needs the scale extra: pip install -e '.[scale]' ({exc})") from exc
    raise ValueError(f"unknown executor {name!r}; one of {', '.join(EXECUTORS)}")


def execution_config(run_config_yaml: str | os.PathLike) -> Mapping[str, Any]:
    """`execution.config` of a run-config YAML file ({} when it has none)."""
    import yaml

    document = yaml.safe_load(Path(run_config_yaml).read_text()) or {}
    return dict((document.get("execution") or {}).get("config") or {})


def encoder_backfill_keys(defs: dg.Definitions) -> list[dg.AssetKey]:
    """The launch-date-partitioned assets of group `encoders` (the unit of a backfill)."""
    graph = defs.resolve_asset_graph()
    return [key for key in graph.toposorted_asset_keys
            if graph.get(key).group_name == ENCODER_GROUP and graph.get(key).partitions_def is not None]


def scale_out_definitions(executor: str | None = None, home: str | os.PathLike | None = None,
                          landing: str | os.PathLike | None = None,
                          executor_config: str | os.PathLike | None = None) -> dg.Definitions:
    """The project's Definitions with `executor` (default $CREATIVE_DAG_EXECUTOR, else multiprocess)
    for every job, plus `encoder_backfill`: the encoder blocks over a launch-date range.

    executor_config: a run-config YAML whose `execution.config` is baked into the executor (default
    $CREATIVE_DAG_EXECUTOR_CONFIG; none: runs give it in their run config, or take the defaults)."""
    name = executor or os.environ.get(EXECUTOR_ENV) or "multiprocess"
    chosen = executor_def(name)
    config_file = executor_config or os.environ.get(EXECUTOR_CONFIG_ENV)
    if config_file:
        chosen = chosen.configured(execution_config(config_file), name=chosen.name)
    base = build_definitions(home, landing, executor=chosen)
    job = dg.define_asset_job(
        ENCODER_BACKFILL_JOB, selection=encoder_backfill_keys(base), partitions_def=launch_date_partitions,
        description="Embed the creatives of a launch-date range (tags dagster/asset_partition_range_start/end), "
                    "one step per block.",
    )
    return dg.Definitions.merge(base, dg.Definitions(jobs=[job]))


def encoder_backfill_job(executor: str = "in_process") -> dg.JobDefinition:
    """The `encoder_backfill` job on `executor` (locations from the environment). Module-level, so
    workers can rebuild it: see reconstructable_encoder_backfill."""
    return scale_out_definitions(executor).resolve_job_def(ENCODER_BACKFILL_JOB)


def reconstructable_encoder_backfill(executor: str):
    """A reconstructable `encoder_backfill` job on `executor`, for dg.execute_job."""
    return dg.build_reconstructable_job(__name__, encoder_backfill_job.__name__,
                                        reconstructable_kwargs={"executor": executor})


@dg.definitions
def defs() -> dg.Definitions:
    return scale_out_definitions()


# ----------------------------------------------------------------------------- Dask
# dagster-dask 0.29.x submits each step with `client.submit(fn, deps, recon_job, dagster_run, ...)`.
# Dask walks every tuple argument looking for futures, and a DagsterRun is a NamedTuple that holds a
# `RunOpConcurrency` @record, which forbids iteration: any run with a pooled step fails before a
# step starts ("Iteration is not allowed on `@record` RunOpConcurrency"; seen with dask 2024.10
# through 2026.8). Its workers also call execute_plan without Dagster's instance concurrency context,
# so pool limits are not applied. Here the arguments travel in an opaque box, and a step with a
# pool claims a slot of that pool (the instance's, shared with every other run) before it runs.
POOL_CLAIM_POLL_S = 0.5


class _Opaque:
    """A box Dask does not look into (it only traverses tuples, lists, sets and dicts)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def _run_step_on_dask_worker(dependencies: list, box: _Opaque, pool: str | None) -> _Opaque:
    """On a worker: claim the step's pool slot (if any), then run the step as dagster-dask does and
    return its events (boxed too: Dask would walk the list to size it). `dependencies` (the
    upstream steps' results) are only there so Dask orders the tasks."""
    from dagster._core.execution.plan.instance_concurrency_context import (
        InstanceConcurrencyContext,
    )
    from dagster_dask.executor import query_on_dask_worker

    recon_job, dagster_run, run_config, step_key, instance_ref, known_state = box.value

    def run_step() -> _Opaque:
        return _Opaque(list(query_on_dask_worker(dependencies, recon_job, dagster_run, run_config, [step_key],
                                                 instance_ref, known_state)))

    if not pool:
        return run_step()
    with dg.DagsterInstance.from_ref(instance_ref) as instance, \
            InstanceConcurrencyContext(instance, dagster_run) as slots:
        while not slots.claim(pool, step_key):
            time.sleep(POOL_CLAIM_POLL_S)
        try:
            return run_step()
        finally:
            slots.free_step(step_key)


_DASK_CLUSTERS = {  # cluster type -> (module, class), as dagster-dask creates them
    "local": ("dask.distributed", "LocalCluster"), "ssh": ("dask.distributed", "SSHCluster"),
    "yarn": ("dask_yarn", "YarnCluster"), "pbs": ("dask_jobqueue", "PBSCluster"),
    "moab": ("dask_jobqueue", "MoabCluster"), "sge": ("dask_jobqueue", "SGECluster"),
    "lsf": ("dask_jobqueue", "LSFCluster"), "slurm": ("dask_jobqueue", "SLURMCluster"),
    "oar": ("dask_jobqueue", "OARCluster"), "kube": ("dask_kubernetes", "KubeCluster"),
}


def dask_executor_def() -> dg.ExecutorDefinition:
    """dagster-dask's `dask` executor (same config schema) with the two repairs above."""
    import importlib

    import dask.distributed
    from dagster._utils import iterate_with_context
    from dagster_dask.executor import (
        DaskExecutor,
        dask_executor,
        get_dask_resource_requirements,
    )

    class PoolAwareDaskExecutor(DaskExecutor):
        def execute(self, plan_context, execution_plan):
            if not plan_context.instance.is_persistent:
                raise dg.DagsterInvariantViolationError("Dask execution requires a persistent DagsterInstance")
            job_name = plan_context.job_name
            if self.cluster_type == "existing":
                cluster = self.cluster_configuration["address"]
            elif self.cluster_type in _DASK_CLUSTERS:
                module, cls = _DASK_CLUSTERS[self.cluster_type]
                cluster = getattr(importlib.import_module(module), cls)(**self.build_dict(job_name))
            else:
                raise ValueError(f"unknown Dask cluster type {self.cluster_type!r}")
            # A cluster started for this run is closed with it (dagster-dask leaves it to the
            # interpreter's exit: its worker processes, models loaded, outlive the run).
            owned = cluster if hasattr(cluster, "close") else None
            try:
                yield from self._execute_on(cluster, plan_context, execution_plan)
            finally:
                if owned is not None:
                    owned.close()

        def _execute_on(self, cluster, plan_context, execution_plan):
            from dagster._core.errors import raise_execution_interrupts

            job_name = plan_context.job_name
            run = plan_context.dagster_run
            instance_ref = plan_context.instance.get_ref()
            with dask.distributed.Client(cluster) as client:
                futures: dict[str, Any] = {}
                for level in execution_plan.get_steps_to_execute_by_level():
                    for step in level:
                        deps = [futures[key] for step_input in step.step_inputs for key in step_input.dependency_keys]
                        box = _Opaque((plan_context.reconstructable_job, run, plan_context.run_config, step.key,
                                       instance_ref, execution_plan.known_state))
                        futures[step.key] = client.submit(
                            _run_step_on_dask_worker, deps, box, step.pool,
                            # the run id too: two runs of one job on a shared cluster must not share keys
                            key=f"{job_name}.{step.key}.{run.run_id}",
                            resources=get_dask_resource_requirements(step.tags),
                        )
                results = dask.distributed.as_completed(list(futures.values()), with_results=True)
                for _future, events in iterate_with_context(raise_execution_interrupts, results):
                    yield from events.value

    @dg.executor(name="dask", config_schema=dask_executor.config_schema,
                 requirements=dg.multiple_process_executor_requirements())
    def pool_aware_dask_executor(init_context):
        ((cluster_type, cluster_configuration),) = init_context.executor_config["cluster"].items()
        return PoolAwareDaskExecutor(cluster_type, cluster_configuration)

    return pool_aware_dask_executor

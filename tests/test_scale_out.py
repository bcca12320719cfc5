"""Scale-out on existing distributed engines (docs/operations.md, "Scale-out"; deploy/).

- A launch-date backfill of the encoder blocks on the Dask executor, on a local Dask cluster of two
  worker processes, writes the same `embeddings.*` rows as the same backfill in process; the
  warehouse pool (limit 1) is honoured across the workers.
- The deploy configurations validate against the real schemas, without a cluster, broker or
  database: `deploy/k8s/run_config.yaml` against dagster-k8s's `k8s_job_executor` (and rendered into
  the Kubernetes Jobs of GPU and CPU steps), `deploy/celery/run_config.yaml` against dagster-celery's
  `celery_executor`, `deploy/dagster.postgres.yaml` through Dagster's instance config schema and
  dagster-postgres's storage schema. A config that does not validate fails these tests.
"""

from __future__ import annotations

import os
import shutil
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import yaml

from bench.scale_out import (
    CHEAP_ENCODERS,
    copy_home,
    ingest,
    run_backfill,
    run_dask_backfill,
)
from creative_dag.blocks import EMBEDDING_BLOCKS
from creative_dag.resources.warehouse import DuckDBWarehouse
from creative_dag.scale_out import (
    ENCODER_BACKFILL_JOB,
    ENCODER_GROUP,
    scale_out_definitions,
)

warnings.filterwarnings("ignore", category=dg.BetaWarning)

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
PG_ENV = {"DAGSTER_PG_HOST": "pg.internal", "DAGSTER_PG_PORT": "5433", "DAGSTER_PG_DB": "dagster",
          "DAGSTER_PG_USERNAME": "dagster", "DAGSTER_PG_PASSWORD": "s3cr@t"}
CELERY_ENV = {"CELERY_BROKER_URL": "redis://redis:6379/0", "CELERY_RESULT_BACKEND": "redis://redis:6379/1"}


def _yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def _executor_config(processed: dict) -> dict:
    """The executor's config in a processed run config (keyed by the executor's name there)."""
    (config,) = processed["execution"].values()
    return config


def _backfill_job(executor: str) -> dg.JobDefinition:
    return scale_out_definitions(executor).resolve_job_def(ENCODER_BACKFILL_JOB)


# ----------------------------------------------------------------------------- Postgres instance
def _instance_dir(tmp_path: Path, text: str) -> str:
    folder = tmp_path / "dagster_home"
    folder.mkdir(exist_ok=True)
    (folder / "dagster.yaml").write_text(text)
    return str(folder)


def test_postgres_instance_yaml_loads_through_dagsters_instance_schema(tmp_path, monkeypatch):
    from dagster._config import process_config
    from dagster._core.instance.config import dagster_instance_config
    from dagster._core.instance.ref import InstanceRef
    from dagster._core.run_coordinator import QueuedRunCoordinator, RunCoordinator
    from dagster_postgres import DagsterPostgresStorage
    from dagster_postgres.utils import pg_url_from_config

    for name, value in PG_ENV.items():
        monkeypatch.setenv(name, value)
    text = (DEPLOY / "dagster.postgres.yaml").read_text()
    base_dir = _instance_dir(tmp_path, text)
    config, custom_class = dagster_instance_config(base_dir)  # raises DagsterInvalidConfigError if invalid
    assert custom_class is None

    ref = InstanceRef.from_dir(base_dir)
    for data in (ref.storage_data, ref.run_storage_data, ref.event_storage_data, ref.schedule_storage_data):
        assert data.module_name == "dagster_postgres", data
    storage = process_config(DagsterPostgresStorage.config_type(), ref.storage_data.config_dict)
    assert storage.success, storage.errors
    assert pg_url_from_config(storage.value) == "postgresql://dagster:s3cr%40t@pg.internal:5433/dagster"
    assert isinstance(ref.run_coordinator_data.rehydrate(RunCoordinator), QueuedRunCoordinator)

    # Everything but the storage builds a real instance here (sqlite in place of Postgres): the pool
    # and run limits and run monitoring are those of ./dagster.yaml.
    project = _yaml(ROOT / "dagster.yaml")
    for section in ("concurrency", "run_monitoring", "telemetry"):
        assert config[section] == project[section], section
    local = InstanceRef.from_dir(base_dir, overrides={"storage": {"sqlite": {"base_dir": str(tmp_path / "s")}}})
    with dg.DagsterInstance.from_ref(local) as instance:
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
        assert instance.run_monitoring_enabled


@pytest.mark.parametrize("broken", [
    ("hostname:", "host_name:"),                    # misspelt key
    ("postgres_db:", "postgres_database:"),         # unknown section
    ("free_slots_after_run_end_seconds: 30", "free_slots_after_run_end_seconds: soon"),  # wrong type
])
def test_postgres_instance_yaml_that_does_not_validate_fails(tmp_path, monkeypatch, broken):
    from dagster._core.errors import DagsterInvalidConfigError
    from dagster._core.instance.config import dagster_instance_config

    for name, value in PG_ENV.items():
        monkeypatch.setenv(name, value)
    text = (DEPLOY / "dagster.postgres.yaml").read_text()
    assert broken[0] in text
    with pytest.raises(DagsterInvalidConfigError):
        dagster_instance_config(_instance_dir(tmp_path, text.replace(broken[0], broken[1], 1)))


# ----------------------------------------------------------------------------- Kubernetes
def _gpu_ops(defs: dg.Definitions) -> set[str]:
    """Ops that run a PyTorch model: in each `encoders` asset of kind pytorch, the ops outside the
    warehouse pool (the encode step of a two-step block) or, for a one-op asset, that op."""
    names = set()
    for asset in defs.assets:
        keys = list(asset.keys)
        if asset.group_names_by_key.get(keys[0]) != ENCODER_GROUP:
            continue
        if "pytorch" not in asset.specs_by_key[keys[0]].kinds:
            continue
        ops = list(asset.node_def.iterate_op_defs())
        compute = [op.name for op in ops if not op.pool] if len(ops) > 1 else [ops[0].name]
        names.update(compute)
    return names


def _all_op_names(defs: dg.Definitions) -> set[str]:
    names = set()
    for job in defs.resolve_all_job_defs():
        names.update(op.name for op in job.graph.iterate_op_defs())
    return names


def _render_step_job(executor_config: dict, op_name: str) -> dict:
    """The Kubernetes Job the k8s executor would create for a step of `op_name`, as a dict: the same
    container context merge as dagster_k8s.executor (executor config, then the op's override)."""
    from dagster_k8s.container_context import K8sContainerContext
    from dagster_k8s.job import UserDefinedDagsterK8sConfig, construct_dagster_k8s_job
    from kubernetes.client import ApiClient

    cfg = executor_config
    context = K8sContainerContext(
        service_account_name=cfg.get("service_account_name"), env_config_maps=cfg.get("env_config_maps"),
        env_secrets=cfg.get("env_secrets"), env_vars=cfg.get("env_vars"), volume_mounts=cfg.get("volume_mounts"),
        volumes=cfg.get("volumes"), labels=cfg.get("labels"), namespace=cfg.get("job_namespace"),
        resources=cfg.get("resources"),
        run_k8s_config=UserDefinedDagsterK8sConfig.from_dict(cfg.get("step_k8s_config", {})),
    ).merge(K8sContainerContext(
        run_k8s_config=UserDefinedDagsterK8sConfig.from_dict(cfg.get("per_step_k8s_config", {}).get(op_name, {}))))
    launcher = SimpleNamespace(job_image=None, dagster_home="/opt/dagster/dagster_home",
                               instance_config_map="dagster-instance", postgres_password_secret=None)
    job_config = context.get_k8s_job_config("creative-dag:test", launcher)
    job = construct_dagster_k8s_job(job_config, args=["dagster", "api", "execute_step"],
                                    job_name=f"dagster-step-{op_name.replace('_', '-')}", component="step_worker",
                                    user_defined_k8s_config=context.run_k8s_config)
    return ApiClient().sanitize_for_serialization(job)


def test_k8s_run_config_validates_against_k8s_job_executor():
    job = _backfill_job("k8s")
    assert job.executor_def.name == "k8s"
    run_config = _yaml(DEPLOY / "k8s" / "run_config.yaml")
    processed = dg.validate_run_config(job, run_config)  # raises DagsterInvalidConfigError if invalid
    per_step = _executor_config(processed)["per_step_k8s_config"]
    defs = scale_out_definitions("k8s")
    # per_step_k8s_config is a map: a misspelt or renamed op would be silently ignored.
    assert set(per_step) <= _all_op_names(defs), set(per_step) - _all_op_names(defs)
    gpu = {op for op, cfg in per_step.items()
           if "nvidia.com/gpu" in cfg.get("container_config", {}).get("resources", {}).get("limits", {})}
    assert _gpu_ops(defs) <= gpu, f"PyTorch encoder ops without a GPU: {_gpu_ops(defs) - gpu}"
    assert gpu <= _gpu_ops(defs) | {"embeddings__model_status"}, f"GPU for ops that need none: {gpu - _gpu_ops(defs)}"


def test_k8s_step_jobs_put_encoders_on_gpu_nodes_and_the_rest_on_cpu_nodes():
    job = _backfill_job("k8s")
    processed = dg.validate_run_config(job, _yaml(DEPLOY / "k8s" / "run_config.yaml"))
    executor_config = _executor_config(processed)
    defs = scale_out_definitions("k8s")
    gpu_ops = _gpu_ops(defs)
    cpu_ops = {op.name for op in job.graph.iterate_op_defs()} - gpu_ops
    assert gpu_ops and cpu_ops
    for op_name in sorted(gpu_ops | cpu_ops):
        pod = _render_step_job(executor_config, op_name)["spec"]["template"]["spec"]
        container = pod["containers"][0]
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        assert env["CREATIVE_DAG_HOME"] == "/data/creative-dag", op_name
        assert {"name": "creative-dag-home", "mountPath": "/data/creative-dag"}.items() <= \
            container["volumeMounts"][0].items()
        assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == "creative-dag-home"
        limits = container.get("resources", {}).get("limits", {})
        if op_name in gpu_ops:
            assert str(limits.get("nvidia.com/gpu")) == "1", (op_name, limits)
            assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}, op_name
            assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
        else:
            assert "nvidia.com/gpu" not in limits and not pod.get("nodeSelector"), op_name
            assert container["resources"]["requests"] == {"cpu": "1", "memory": "2Gi"}, op_name


# ----------------------------------------------------------------------------- Celery
def test_celery_run_config_validates_and_routes_the_backfill_to_the_gpu_queue(monkeypatch):
    from dagster_celery.executor import CeleryExecutor
    from dagster_celery.make_app import make_app

    for name, value in CELERY_ENV.items():
        monkeypatch.setenv(name, value)
    job = _backfill_job("celery")
    assert job.executor_def.name == "celery"
    processed = dg.validate_run_config(job, _yaml(DEPLOY / "celery" / "run_config.yaml"))
    config = _executor_config(processed)
    assert config["broker"] == CELERY_ENV["CELERY_BROKER_URL"]  # from the environment
    executor = CeleryExecutor.for_cli(broker=config["broker"], backend=config["backend"],
                                      config_source=config["config_source"])
    app = make_app(executor.app_args())  # no broker connection is made
    assert app.conf.task_default_queue == "creative-dag-gpu"
    assert app.conf.broker_url == CELERY_ENV["CELERY_BROKER_URL"]

    # The same file starts the workers (`dagster-celery worker start -y ...`): it must pass the
    # worker CLI's own validation too.
    from dagster_celery.cli import get_validated_config

    assert get_validated_config(str(DEPLOY / "celery" / "run_config.yaml"))["broker"] == config["broker"]


def test_dask_run_config_validates_against_the_dask_executor(monkeypatch):
    from dagster_dask import dask_executor as released

    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", "tcp://dask-scheduler:8786")
    job = _backfill_job("dask")
    assert job.executor_def.name == "dask"
    run_config = _yaml(DEPLOY / "dask" / "run_config.yaml")
    config = _executor_config(dg.validate_run_config(job, run_config))
    assert config["cluster"] == {"existing": {"address": "tcp://dask-scheduler:8786"}}
    # The project's executor takes exactly dagster-dask's configuration.
    assert job.executor_def.config_schema.config_type.key == released.config_schema.config_type.key


@pytest.mark.parametrize("executor, run_config", [
    ("k8s", {"execution": {"config": {"per_step_k8s_configs": {}}}}),                  # misspelt key
    ("k8s", {"execution": {"config": {"max_concurrent": "many"}}}),                    # wrong type
    ("celery", {"execution": {"config": {"brokers": "redis://x"}}}),                   # misspelt key
    ("dask", {"execution": {"config": {"cluster": {"local": {}, "existing": {"address": "x"}}}}}),  # two clusters
])
def test_executor_configs_that_do_not_validate_fail(executor, run_config):
    with pytest.raises(dg.DagsterInvalidConfigError):
        dg.validate_run_config(_backfill_job(executor), run_config)


def test_executor_settings_from_yaml_for_runs_without_run_config(monkeypatch):
    """UI backfills, sensors and automation launch runs without run config: the executor takes its
    settings from $CREATIVE_DAG_EXECUTOR_CONFIG (the same YAML) instead."""
    for name, value in CELERY_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CREATIVE_DAG_EXECUTOR", "celery")
    monkeypatch.setenv("CREATIVE_DAG_EXECUTOR_CONFIG", str(DEPLOY / "celery" / "run_config.yaml"))
    defs = scale_out_definitions()
    for job in defs.resolve_all_job_defs():
        if job.name.startswith("__"):
            continue
        assert job.executor_def.name == "celery", job.name
        executor = _executor_config(dg.validate_run_config(job, {}))
        assert executor["config_source"]["task_default_queue"] == "creative-dag-gpu", job.name


# ----------------------------------------------------------------------------- Dask
@dg.op(pool="warehouse")
def _pooled_write_a():
    time.sleep(1.0)


@dg.op(pool="warehouse")
def _pooled_write_b():
    time.sleep(1.0)


@dg.job
def pooled_writes():
    _pooled_write_a()
    _pooled_write_b()


def _pooled_job_on(executor: str) -> dg.JobDefinition:
    from creative_dag.scale_out import executor_def

    return pooled_writes.with_executor_def(executor_def(executor))


def released_dask_pooled_job() -> dg.JobDefinition:
    from dagster_dask import dask_executor

    return pooled_writes.with_executor_def(dask_executor)


def project_dask_pooled_job() -> dg.JobDefinition:
    return _pooled_job_on("dask")


THREADED_CLUSTER = {"execution": {"config": {"cluster": {"local": {
    "n_workers": 2, "threads_per_worker": 1, "processes": False, "dashboard_address": ":0"}}}}}
# Two steps at once in threads of one process can deadlock inside Dagster: each step's log manager calls
# logging.config.dictConfig (DagsterInstance.get_yaml_python_handlers), which takes the logging module's
# lock and then every handler's, while the other thread holds a handler's lock and waits for the module's
# (seen once under load, 2026-12-06). Worker processes, as deployments use, cannot meet that.
PROCESS_CLUSTER = {"execution": {"config": {"cluster": {"local": {
    "n_workers": 2, "threads_per_worker": 1, "processes": True, "dashboard_address": ":0"}}}}}


def _step_windows(instance: dg.DagsterInstance, run_id: str) -> list[tuple[float, float]]:
    starts, ends = {}, {}
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event and event.event_type == dg.DagsterEventType.STEP_START:
            starts[event.step_key] = record.timestamp
        elif event and event.event_type == dg.DagsterEventType.STEP_SUCCESS:
            ends[event.step_key] = record.timestamp
    return [(starts[k], ends[k]) for k in starts]


def test_released_dagster_dask_cannot_run_a_pooled_step(tmp_path):
    """Why creative_dag.scale_out has its own `dask` executor: dagster-dask as released hands Dask a
    DagsterRun whose RunOpConcurrency record refuses iteration, so any run with a pool fails at
    submission. If this test fails, dagster-dask fixed it: use its executor directly."""
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        result = dg.execute_job(dg.reconstructable(released_dask_pooled_job), instance=instance,
                                run_config=THREADED_CLUSTER, raise_on_error=False)
        assert not result.success
        failure = next(e for e in instance.all_logs(result.run_id)
                       if e.dagster_event and e.dagster_event.event_type == dg.DagsterEventType.RUN_FAILURE)
        assert "Iteration is not allowed" in str(failure.dagster_event.event_specific_data.error)


def test_project_dask_executor_runs_pooled_steps_one_at_a_time(tmp_path):
    """Two independent steps of pool `warehouse` (default limit 1), two Dask workers: they run, one
    after the other."""
    overrides = {"concurrency": {"pools": {"default_limit": 1}}}
    with dg.instance_for_test(temp_dir=str(tmp_path), overrides=overrides) as instance:
        result = dg.execute_job(dg.reconstructable(project_dask_pooled_job), instance=instance,
                                run_config=PROCESS_CLUSTER, raise_on_error=False)
        assert result.success
        (_, a_end), (b_start, _) = sorted(_step_windows(instance, result.run_id))
        assert b_start >= a_end, "two steps of a pool with limit 1 overlapped"
        assert instance.event_log_storage.get_concurrency_info("warehouse").active_slot_count == 0


def _embeddings(home: Path) -> dict[str, pd.DataFrame]:
    """embeddings.<block> as the warehouse returns it, by creative_id, without timing columns."""
    warehouse = DuckDBWarehouse(home / "creative.duckdb", read_only=True)
    tables = {}
    for block in EMBEDDING_BLOCKS:
        frame = warehouse.read_table(f"embeddings.{block}")
        timing = [c for c in frame.columns if c.endswith(("_at", "_seconds")) or c in ("seconds", "duration_s")]
        tables[block] = frame.drop(columns=timing).sort_values("creative_id").reset_index(drop=True)
    return tables


def _assert_same_rows(block: str, expected: pd.DataFrame, got: pd.DataFrame) -> float:
    """Same columns, creatives and values; numbers up to float round-off (OpenCV and torch reduce in
    a different order with a worker's single thread than with this process's threads). Returns
    the largest numeric difference seen."""
    assert list(got.columns) == list(expected.columns), block
    assert got["creative_id"].tolist() == expected["creative_id"].tolist(), block
    others = [c for c in expected.columns if c != "vector"]
    pd.testing.assert_frame_equal(got[others], expected[others], check_exact=False, rtol=1e-6, atol=1e-9,
                                  obj=f"embeddings.{block}")
    largest = 0.0
    for column in others:
        if pd.api.types.is_float_dtype(expected[column].dtype):
            diff = (got[column].astype(float) - expected[column].astype(float)).abs().max()
            largest = max(largest, float(0.0 if pd.isna(diff) else diff))
    for cid, want, have in zip(expected["creative_id"], expected["vector"], got["vector"]):
        want, have = np.asarray(want, dtype=np.float64), np.asarray(have, dtype=np.float64)
        np.testing.assert_allclose(have, want, rtol=0, atol=1e-6, err_msg=f"embeddings.{block} {cid}")
        if want.size:
            largest = max(largest, float(np.abs(have - want).max()))
    return largest


@pytest.mark.slow
def test_dask_backfill_on_two_worker_processes_equals_the_in_process_backfill(tmp_path_factory):
    from creative_dag.synth import generate_scenario
    from tests.test_encoders_models import build_tiny_clip

    root = tmp_path_factory.mktemp("scale_out")
    landing = root / "landing"
    generate_scenario(landing, n_creatives=16, n_days=12, seed=5, image_size=256)
    tiny_clip = root / "tiny-clip"
    build_tiny_clip(tiny_clip)  # so the CLIP block runs too (the real one is not downloadable here)
    dates = ingest(root / "ingested", landing)
    assert len(dates) > 1
    in_process_home = copy_home(root / "ingested", root / "home-in-process")
    dask_home = copy_home(root / "ingested", root / "home-dask")
    encoders = {**CHEAP_ENCODERS, "clip_model": str(tiny_clip)}

    in_process = run_backfill(in_process_home, landing, "in_process", encoder_config=encoders,
                              env={"HF_HUB_OFFLINE": "1"})
    on_dask = run_dask_backfill(dask_home, landing, n_workers=2, encoder_config=encoders)
    print(f"\nin process: {in_process['seconds']} s; Dask, 2 workers: {on_dask['seconds']} s; "
          f"steps at once on Dask: {on_dask['max_concurrent_steps']}, pooled: {on_dask['max_concurrent_pool_steps']}")

    assert in_process["success"], in_process["failed_steps"]
    assert on_dask["success"], on_dask["failed_steps"]
    assert in_process["partitions"] == on_dask["partitions"] == len(dates)
    assert on_dask["steps_succeeded"] == in_process["steps_succeeded"]
    # The steps ran in the Dask worker processes (two of them), not in this one.
    dask_pids = set(on_dask["step_pids"].values())
    assert os.getpid() not in dask_pids and len(dask_pids) == 2, on_dask["step_pids"]
    assert set(in_process["step_pids"].values()) == {os.getpid()}
    # The warehouse pool (limit 1) held across the workers: never two warehouse writers at once.
    assert on_dask["max_concurrent_pool_steps"] == 1

    expected, got = _embeddings(in_process_home), _embeddings(dask_home)
    differences = {}
    for block in EMBEDDING_BLOCKS:
        assert len(expected[block]) == 16, f"embeddings.{block}: {len(expected[block])} rows"
        differences[block] = _assert_same_rows(block, expected[block], got[block])
    print("largest numeric difference per block:", {b: f"{d:.1e}" for b, d in differences.items()})
    shutil.rmtree(root, ignore_errors=True)

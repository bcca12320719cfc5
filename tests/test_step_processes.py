"""Runs from the UI, the daemon and `dagster job execute` fork each step from a preloaded server
(creative_dag/step_processes.py). A whole run under that executor is compared with the CLI's tables in
tests/test_pipeline_e2e.py; here: what each executor resolves to, and that the preload is real."""

import importlib.util

import dagster as dg
import pytest

from creative_dag.definitions import build_definitions
from creative_dag.scale_out import scale_out_definitions
from creative_dag.step_processes import (
    BASE_MODULES,
    LAST_MODULE,
    PRELOAD_EVENT,
    PRELOAD_MODULES,
    plan_roles,
    preload_for,
)


def _resolved(executor: dg.ExecutorDefinition, config: dict) -> dict:
    result = executor.config_schema.resolve_config({"config": config})
    assert result.success, result.errors
    return result.value["config"]


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> dg.Definitions:
    root = tmp_path_factory.mktemp("step-processes")
    return build_definitions(root / "home", root / "landing")


def test_multiprocess_steps_fork_from_a_preloaded_server_by_default(project):
    for job in ("refresh_memory", "embed_launch_dates", "ingest_landing"):
        executor = project.resolve_job_def(job).executor_def
        for config in ({}, {"multiprocess": {}}, {"multiprocess": {"max_concurrent": 1}}):
            multiprocess = _resolved(executor, config)["multiprocess"]
            assert multiprocess["start_method"] == {"forkserver": {"preload_modules": list(PRELOAD_MODULES)}}
        assert _resolved(executor, {"multiprocess": {"max_concurrent": 1}})["multiprocess"]["max_concurrent"] == 1


def _roles(project: dg.Definitions, job: str) -> set[str]:
    """Roles of a whole job's steps (one per top-level node, as in its execution plan)."""
    from types import SimpleNamespace

    from dagster._core.definitions.dependency import NodeHandle

    job_def = project.resolve_job_def(job)
    return plan_roles(job_def, [SimpleNamespace(node_handle=NodeHandle(n.name, None)) for n in job_def.graph.nodes])


def test_each_run_preloads_the_libraries_of_its_own_steps(project):
    assert _roles(project, "ingest_landing") == {"ingest"}
    assert preload_for({"ingest"}) == preload_for({"features"}) == [*BASE_MODULES, LAST_MODULE]
    embed = preload_for(_roles(project, "embed_launch_dates"))  # the encoders
    assert {"torch", "torchvision", "cv2"} <= set(embed) and not {"lightgbm", "umap"} & set(embed)
    assert "timm" not in PRELOAD_MODULES  # a kept frozen CNN never imports it (tests/test_encoders_models.py)
    assert _roles(project, "refresh_memory") == {"features", "whole_history"}
    assert preload_for(_roles(project, "refresh_memory")) == list(PRELOAD_MODULES)
    assert preload_for({"ingest", "no such role"}) == list(PRELOAD_MODULES)  # unknown: everything
    assert embed[-1] == LAST_MODULE  # forkserver_ready last: it freezes what came before


@pytest.mark.slow
def test_an_ingest_run_forks_its_steps_from_a_server_without_the_model_libraries(tmp_path):
    """As the landing sensor starts it: `ingest_landing` under the project's default (multiprocess) executor.
    Its steps import none of torch, timm, lightgbm or umap, so the forkserver does not preload them (~6 s of a
    ~17 s ingest run on the demo)."""
    from bench.step_processes import refresh
    from creative_dag.instance import instance_yaml
    from creative_dag.resources.warehouse import DuckDBWarehouse
    from creative_dag.synth import generate_scenario

    landing, home = tmp_path / "landing", tmp_path / "home"
    generate_scenario(landing, n_creatives=8, n_days=6, seed=3, image_size=64)
    dagster_home = home / ".dagster"
    dagster_home.mkdir(parents=True)
    (dagster_home / "dagster.yaml").write_text(instance_yaml(dagster_home))
    # `dagster job execute` with the project's default executor; raises with the log's path on failure
    refresh(home, landing, None, {}, tmp_path / "ingest.log", timeout_s=600, job="ingest_landing")
    instance = dg.DagsterInstance.from_config(str(dagster_home))
    try:
        [run] = instance.get_runs()
        assert run.status == dg.DagsterRunStatus.SUCCESS
        messages = [e.message for e in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)]
    finally:
        instance.dispose()
    [preload] = [m.removeprefix(PRELOAD_EVENT) for m in messages if m.startswith(PRELOAD_EVENT)]
    assert preload.split(" (")[0].split(", ") == [*BASE_MODULES, LAST_MODULE]
    assert any("Executing steps using multiprocess executor" in m for m in messages)
    assert len(DuckDBWarehouse(home / "creative.duckdb", read_only=True).read_table("raw.creatives")) == 8


def test_run_config_still_chooses(project):
    executor = project.resolve_job_def("refresh_memory").executor_def
    assert "in_process" in _resolved(executor, {"in_process": {}})
    spawn = _resolved(executor, {"multiprocess": {"start_method": {"spawn": {}}}})
    assert spawn["multiprocess"]["start_method"] == {"spawn": {}}
    other = {"forkserver": {"preload_modules": ["dagster"]}}
    assert _resolved(executor, {"multiprocess": {"start_method": other}})["multiprocess"]["start_method"] == other


def test_the_scale_out_multiprocess_executor_forks_too(tmp_path):
    defs = scale_out_definitions("multiprocess", tmp_path / "home", tmp_path / "landing")
    for job in ("refresh_memory", "encoder_backfill"):
        executor = defs.resolve_job_def(job).executor_def
        assert executor.name == "multiprocess"
        assert "forkserver" in _resolved(executor, {})["start_method"]
    assert scale_out_definitions("in_process", tmp_path / "home").resolve_job_def(
        "refresh_memory").executor_def.name == "in_process"


def test_other_platforms_keep_dagsters_spawn(monkeypatch):
    import multiprocessing
    import sys

    from creative_dag import step_processes

    assert step_processes.forks_by_default("linux")
    assert not step_processes.forks_by_default("darwin")  # forking after system frameworks load can crash
    monkeypatch.setattr(sys, "platform", "darwin")
    assert "start_method" not in step_processes.with_forkserver({"max_concurrent": 2})
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(multiprocessing, "get_all_start_methods", lambda: ["spawn"])  # no forkserver (Windows)
    assert "start_method" not in step_processes.with_forkserver({"max_concurrent": 2})


def test_every_preloaded_module_is_installed():
    # The forkserver skips a module it cannot import without a word: a misspelt or dropped module would
    # silently put its import back into every step.
    missing = [m for m in PRELOAD_MODULES if importlib.util.find_spec(m) is None]
    assert not missing, f"preloaded but not installed: {missing}"


def test_forked_steps_start_with_the_preloaded_objects_frozen():
    """The forkserver imports forkserver_ready last, so every step forked from it inherits what the preloads
    made in the collector's permanent generation (no full collection walks it again, nor copies its pages)
    and the spaced-out full collections. Measured on the demo's refresh_memory: the steps' GC 2.4-3.1 s,
    2-3 full collections -> 0.7-0.9 s, none."""
    import json
    import subprocess
    import sys

    assert PRELOAD_MODULES[-1] == "creative_dag.forkserver_ready"  # after everything it should freeze
    script = ("import gc, json, multiprocessing\n"
              "from creative_dag.step_processes import PRELOAD_MODULES\n"
              "if __name__ == '__main__':\n"
              "    ctx = multiprocessing.get_context('forkserver')\n"
              "    ctx.set_forkserver_preload(list(PRELOAD_MODULES))\n"
              "    with ctx.Pool(1) as pool:\n"
              "        print(json.dumps([pool.apply(gc.get_freeze_count), pool.apply(gc.get_threshold),\n"
              "                          gc.get_freeze_count()]))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    frozen, threshold, here = json.loads(done.stdout.strip().splitlines()[-1])
    assert frozen > 100_000 and here == 0  # the step's inheritance, not the launching process's
    assert threshold[2] == 100


def test_the_forkserver_preloads_what_opening_the_instance_imports(tmp_path):
    """Each step opens the Dagster instance first; importing its storage classes there took ~0.2 s of every
    step (refresh_memory's launch-to-start per step 0.33 -> 0.16 s once the server imports them)."""
    import shutil
    from pathlib import Path

    from creative_dag.forkserver_ready import import_instance_classes
    from creative_dag.instance import instance_yaml

    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(Path(__file__).resolve().parents[1] / "dagster.yaml", home / "dagster.yaml")
    names = import_instance_classes(str(home))
    # Copied by hand: Dagster's SQLite storage with its run, event-log and schedule parts
    assert {"dagster._core.storage.sqlite_storage", "dagster._core.storage.runs", "dagster._core.storage.event_log",
            "dagster._core.storage.schedules"} <= set(names)
    # As creative-dag writes it: the project's event-log storage beside Dagster's run and schedule storages
    (home / "dagster.yaml").write_text(instance_yaml(home))
    assert {"creative_dag.pool_claims", "dagster._core.storage.runs",
            "dagster._core.storage.schedules"} <= set(import_instance_classes(str(home)))
    # No instance, or one that does not load: nothing preloaded, and the steps report it themselves.
    assert import_instance_classes(None) == []
    (home / "dagster.yaml").write_text("event_log_storage:\n  module: no_such_module\n  clas: X\n")
    assert import_instance_classes(str(home)) == []

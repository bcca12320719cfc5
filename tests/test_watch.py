"""`creative-dag watch`: one long-lived process that runs the daily path when the landing folder changes.

The loop is tested with a fake clock; the command as a user starts it, in its own process: it runs
each new export once, its second run (imports and models warm) writes what a fresh process writes, it
stops on SIGTERM, it restarts itself when the package's source changes, and one home has one watch.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from warehouse_snapshot import assert_same_tables, table_snapshot

from creative_dag.resources.warehouse import DuckDBWarehouse
from creative_dag.watch import WatchLock, watch_landing

ROOT = Path(__file__).resolve().parents[1]


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def wait(self, seconds: float) -> bool:
        self.now += seconds
        return False


def _watch(prints: list[str], *, outcomes: list[bool] | None = None, settle_s: float = 30, interval_s: float = 10,
           max_runs: int | None = None, stop_at: float = 1_000, code_changes_at: float | None = None):
    """Run the loop on a fingerprint that follows `prints` (one value per look, the last kept); returns
    (outcome, the fingerprint current at each run, the fake clock)."""
    fake, looks, ran = FakeTime(), iter(prints), []
    current = {"value": None}
    results = iter(outcomes or [])

    def fingerprint() -> str:
        current["value"] = next(looks, current["value"])
        return current["value"]

    def run() -> bool:
        ran.append(current["value"])
        return next(results, True)

    def wait(seconds: float) -> bool:
        fake.wait(seconds)
        return fake.now >= stop_at

    outcome = watch_landing(fingerprint, run, settle_s=settle_s, interval_s=interval_s, wait=wait, clock=fake.clock,
                            code_changed=lambda: code_changes_at is not None and fake.now >= code_changes_at,
                            report=lambda line: None, max_runs=max_runs)
    return outcome, ran, fake


def test_a_change_runs_once_after_it_has_settled_and_not_while_it_is_being_copied():
    # a: the landing folder at start; b1..b3: an export still being copied; b3 then stays
    outcome, ran, _ = _watch(["a", "a", "a", "a", "b1", "b2", "b3"], stop_at=500)
    assert ran == ["a", "b3"]
    assert outcome.reason == "stopped" and outcome.runs == 2 and outcome.failed == 0


def test_a_run_waits_for_the_settle_time_even_at_start():
    _, ran, fake = _watch(["a"], settle_s=25, interval_s=10, max_runs=1)
    assert ran == ["a"] and fake.now == pytest.approx(25)  # 10 + 10 + 5: the last wait is the rest of the settle


def test_a_failed_run_is_not_retried_until_the_fingerprint_changes():
    outcome, ran, _ = _watch(["a"] * 20 + ["b"], outcomes=[False, True], stop_at=600)
    assert ran == ["a", "b"] and outcome.failed == 1


def test_a_look_that_finds_nothing_to_do_is_not_a_run():
    # the first look at a home whose last run had these inputs: nothing to do; then an export, run once
    outcome, ran, _ = _watch(["a"] * 5 + ["b"], outcomes=[None, True], max_runs=1)
    assert ran == ["a", "b"] and outcome.reason == "max runs" and outcome.runs == 1


def test_a_change_is_said_once_while_it_settles():
    said: list[str] = []
    fake, looks = FakeTime(), iter(["a", "a", "a", "a", "b1", "b2", "b3", "b4"])
    last = {"value": "a"}

    def fingerprint() -> str:
        last["value"] = next(looks, last["value"])
        return last["value"]

    watch_landing(fingerprint, lambda: True, settle_s=30, interval_s=10, clock=fake.clock,
                  wait=lambda s: fake.wait(s) or fake.now >= 500, report=said.append)
    assert len([line for line in said if "changed" in line]) == 1, said


def test_a_selection_or_config_no_export_can_fix_is_refused_at_start(tmp_path):
    from click.testing import CliRunner

    from creative_dag.cli import main

    (tmp_path / "landing").mkdir()
    config = tmp_path / "c.yaml"
    config.write_text("marts/element_attribution: {sample_sise: 5}\n")
    base = ["watch", "--home", str(tmp_path / "home"), "--landing", str(tmp_path / "landing")]
    for extra, says in ((["--select", "group:nope"], "group:nope"), (["--config", str(config)], "sample_sise")):
        result = CliRunner().invoke(main, [*base, *extra])
        assert result.exit_code == 1 and says in result.output and "watching" not in result.output, result.output


def test_a_code_change_ends_the_watch_for_a_restart():
    outcome, ran, _ = _watch(["a"], code_changes_at=100)
    assert outcome.reason == "code changed" and ran == ["a"]


def test_one_watch_per_home(tmp_path):
    first = WatchLock(tmp_path)
    first.acquire()
    try:
        with pytest.raises(RuntimeError, match=rf"pid {os.getpid()}.*stop it first"):
            WatchLock(tmp_path).acquire()
    finally:
        first.release()
    second = WatchLock(tmp_path)
    second.acquire()  # free again once the first is released
    second.release()


class WatchProcess:
    """`creative-dag watch` in its own process, its output in a file."""

    def __init__(self, log: Path, *args: str, env: dict[str, str] | None = None, cwd: Path = ROOT) -> None:
        self.log = log
        self.process = subprocess.Popen([sys.executable, "-m", "creative_dag.cli", "watch", *args],
                                        stdout=log.open("w"), stderr=subprocess.STDOUT, cwd=cwd,
                                        env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})})

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, line: str, count: int = 1, timeout_s: float = 600) -> None:
        deadline = time.monotonic() + timeout_s
        while self.text().count(line) < count:
            assert self.process.poll() is None, f"watch exited {self.process.returncode}:\n{self.text()[-6000:]}"
            assert time.monotonic() < deadline, f"no {count} x {line!r} in {timeout_s:.0f}s:\n{self.text()[-6000:]}"
            time.sleep(0.5)

    def terminate(self, timeout_s: float = 60) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout_s)
        finally:
            if self.process.poll() is None:
                self.process.kill()


@pytest.mark.slow
def test_watch_runs_each_new_export_once_and_a_warm_run_writes_what_a_fresh_process_writes(tmp_path):
    from test_daily_path import _split_export

    from creative_dag.synth import generate_scenario

    source, landing, home, fresh = tmp_path / "source", tmp_path / "landing", tmp_path / "home", tmp_path / "fresh"
    generate_scenario(source, n_creatives=20, n_days=24, seed=5, image_size=96)
    dates = sorted(set(pd.read_csv(source / "creatives.csv", dtype=str)["launch_date"]))
    later_creatives, later_metrics = _split_export(source, landing, cutoff=dates[-2])
    assert len(later_creatives) and len(later_metrics)
    config = tmp_path / "assets.yaml"  # the attribution and forecast cheap (both tested elsewhere)
    config.write_text("marts/element_attribution: {sample_size: 6, edits: [brighter], n_models: 5, min_train: 10}\n"
                      "prelaunch_forecast: {learner: blend, evaluate: false}\n")
    args = ["--home", str(home), "--landing", str(landing), "--interval", "1", "--settle", "1",
            "--config", str(config), "--log-level", "WARNING"]
    watch = WatchProcess(tmp_path / "watch.log", *args)
    try:
        watch.wait_for("watch: run done")
        time.sleep(4)  # several looks: a run must not change what the watch looks at (no second run)
        assert watch.text().count("watch: run done") == 1, watch.text()[-4000:]
        # idle between runs, it holds no warehouse connection: anyone may open it, even to write
        DuckDBWarehouse(home / "creative.duckdb").execute("CHECKPOINT")
        shutil.copytree(home, fresh, symlinks=True)  # the state before the new day, for a fresh process

        with open(landing / "creatives.csv", "a", newline="") as fh:
            later_creatives.to_csv(fh, header=False, index=False)
        with open(landing / "daily_metrics.csv", "a", newline="") as fh:
            later_metrics.to_csv(fh, header=False, index=False)
        watch.wait_for("watch: run done", count=2)
        assert "FAILED" not in watch.text(), watch.text()[-4000:]
        warm = table_snapshot(DuckDBWarehouse(home / "creative.duckdb", read_only=True))

        # a stop during a run (a service manager's SIGTERM) ends the run and the watch at once, exit 0
        (landing / "daily_metrics.csv").touch()
        watch.wait_for("materialising", count=3)
        assert watch.terminate() == 0
    finally:
        if watch.process.poll() is None:
            watch.process.kill()
    output = watch.text()
    assert "watch: the landing folder (or the code, settings or day) changed" in output
    # the run stopped by the watch (canceled), by Dagster (failed), or the signal came before its runs began
    assert ("stopped by SIGTERM: run(s)" in output or "watch: stopped during a run" in output), output[-3000:]
    assert "watch: run done" not in output.split("materialising")[-1], "the third run went on to the end"

    done = subprocess.run([sys.executable, "-m", "creative_dag.cli", "materialize", "--home", str(fresh),
                           "--landing", str(landing), "--config", str(config), "--log-level", "WARNING"],
                          cwd=ROOT, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"},
                          check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    cold = table_snapshot(DuckDBWarehouse(fresh / "creative.duckdb", read_only=True))
    new_ids = set(later_creatives["creative_id"])
    assert new_ids <= set(warm["cbr.case_base"]["creative_id"]), "the new creatives reached the case base"
    assert_same_tables(warm, cold)


@pytest.mark.slow
def test_watch_restarts_itself_when_its_source_changes_and_stops_on_sigterm(tmp_path):
    package = tmp_path / "code"
    shutil.copytree(ROOT / "creative_dag", package / "creative_dag", ignore=shutil.ignore_patterns("__pycache__"))
    landing, home = tmp_path / "landing", tmp_path / "home"
    landing.mkdir()
    # a settle time no test waits out: no run starts, only the restart is exercised
    watch = WatchProcess(tmp_path / "watch.log", "--home", str(home), "--landing", str(landing), "--interval", "1",
                         "--settle", "3600", env={"PYTHONPATH": str(package)}, cwd=package)
    try:
        watch.wait_for("watch: imported")
        assert str(package) in subprocess.run(  # the copy is what runs
            [sys.executable, "-c", "import creative_dag; print(creative_dag.__file__)"], cwd=package,
            env={**os.environ, "PYTHONPATH": str(package)}, capture_output=True, text=True, check=True).stdout
        second = subprocess.run([sys.executable, "-m", "creative_dag.cli", "watch", "--home", str(home),
                                 "--landing", str(landing)], cwd=ROOT, capture_output=True, text=True, check=False)
        assert second.returncode == 1 and f"(pid {watch.process.pid})" in second.stderr

        with open(package / "creative_dag" / "wording.py", "a") as fh:
            fh.write("\n# an upgrade\n")
        watch.wait_for("restarting to run it")
        watch.wait_for("watch: imported", count=2)  # the same process, started again on the new source
        assert watch.terminate() == 0
    finally:
        if watch.process.poll() is None:
            watch.process.kill()
    assert "watch: stopped after 0 runs (0 failed)" in watch.text()

"""The Dagster UI on a real home, as a person opens it: `dagster-webserver` on loopback with the
environment `creative-dag dev` sets, its GraphQL API (the asset graph, the blocking checks, the
`launch_date` partitions, a mart's latest materialisation) and the asset page in headless Chromium.

The home is small and cheap: a generated export (30 creatives, 64 px images) with only ingest,
features and `marts/creative_ranking` materialised (no image encoder runs; about 20 s).
"""

from __future__ import annotations

import html
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest
from browser import find_or_install_chromium, render

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "creative_dag.cli"]
MART = ("marts", "creative_ranking")
STAGE_GROUPS = {"ingest", "features", "encoders", "cbr", "marts", "report", "candidates"}
STARTUP_TIMEOUT_S = 180


@dataclass(frozen=True)
class DemoHome:
    home: Path
    landing: Path

    @property
    def env(self) -> dict[str, str]:
        """What `creative-dag dev` exports before it starts Dagster (creative_dag/cli.py, instance.py)."""
        return {**os.environ, "CREATIVE_DAG_HOME": str(self.home), "CREATIVE_DAG_LANDING": str(self.landing),
                "DAGSTER_HOME": str(self.home / ".dagster")}

    def query(self, sql: str) -> list[tuple]:
        connection = duckdb.connect(str(self.home / "creative.duckdb"), read_only=True)
        try:
            return connection.execute(sql).fetchall()
        finally:
            connection.close()


def _run_cli(*args: str) -> None:
    done = subprocess.run([*CLI, *args], cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, f"creative-dag {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}"


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory) -> DemoHome:
    root = tmp_path_factory.mktemp("ui")
    demo = DemoHome(home=root / "home", landing=root / "landing")
    _run_cli("generate", "--out", str(demo.landing), "--creatives", "30", "--days", "30", "--seed", "3",
             "--image-size", "64")
    _run_cli("materialize", "--select", "group:ingest", "--select", "group:features", "--select", "/".join(MART),
             "--landing", str(demo.landing), "--home", str(demo.home))
    return demo


class Webserver:
    """`dagster-webserver` on 127.0.0.1 in its own process group (it starts a code server beside it)."""

    def __init__(self, demo: DemoHome, log: Path):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.process = subprocess.Popen(
            [str(Path(sys.executable).with_name("dagster-webserver")), "-h", "127.0.0.1", "-p", str(self.port),
             "-w", str(REPO / "workspace.yaml")],
            env=demo.env, cwd=REPO, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        request = urllib.request.Request(
            f"{self.url}/graphql", data=json.dumps({"query": query, "variables": variables or {}}).encode(),
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            body = json.load(response)
        assert "errors" not in body, f"GraphQL errors: {body['errors']}"
        return body["data"]

    def wait_until_loaded(self) -> None:
        """Until the server answers and the code location has loaded; fails early if it exits."""
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        status = "no answer"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"dagster-webserver exited ({self.process.returncode}):\n{self.log_tail()}")
            try:
                entries = self.graphql(LOCATIONS)["workspaceOrError"]["locationEntries"]
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.5)
                continue
            status = ", ".join(f"{e['name']}: {e['loadStatus']}" for e in entries)
            errors = [e["locationOrLoadError"] for e in entries
                      if (e["locationOrLoadError"] or {}).get("__typename") == "PythonError"]
            assert not errors, f"the code location failed to load: {errors}"
            if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                return
            time.sleep(0.5)
        pytest.fail(f"dagster-webserver not ready after {STARTUP_TIMEOUT_S} s ({status}):\n{self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL, to the webserver's process group (the webserver and its code server)."""
        for sig, wait_s in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.process.wait(wait_s)
                return
            except subprocess.TimeoutExpired:
                continue

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-6000:] if self.log.exists() else "(no log)"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def webserver(demo_home, tmp_path_factory) -> Iterator[Webserver]:
    server = Webserver(demo_home, tmp_path_factory.mktemp("webserver") / "webserver.log")
    try:
        server.wait_until_loaded()
        yield server
    finally:
        server.stop()


LOCATIONS = """{ workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus
  locationOrLoadError { __typename ... on PythonError { message } } } } } }"""

ASSET_GRAPH = """{ assetNodes { assetKey { path } groupName description isPartitioned
  partitionDefinition { dimensionTypes { type dynamicPartitionsDefinitionName } }
  assetChecksOrError { __typename ... on AssetChecks { checks { name blocking
    executionForLatestMaterialization { status } } } } } }"""

PARTITION_KEYS = """query ($key: AssetKeyInput!) { assetNodeOrError(assetKey: $key) { __typename
  ... on AssetNode { partitionKeys } } }"""

LATEST_MATERIALIZATION = """query ($key: AssetKeyInput!) { assetOrError(assetKey: $key) { __typename
  ... on Asset { assetMaterializations(limit: 1) { runId metadataEntries { __typename label
    ... on IntMetadataEntry { intValue } ... on MarkdownMetadataEntry { mdStr } } } } } }"""


def _asset_nodes(webserver: Webserver) -> dict[str, dict]:
    return {"/".join(node["assetKey"]["path"]): node for node in webserver.graphql(ASSET_GRAPH)["assetNodes"]}


def test_asset_graph_has_every_stage_group_and_descriptions(webserver):
    nodes = _asset_nodes(webserver)
    assert {node["groupName"] for node in nodes.values()} >= STAGE_GROUPS
    assert [key for key, node in nodes.items() if not (node["description"] or "").strip()] == []
    # Key prefix = DuckDB schema, group = stage (docs/conventions.md).
    assert nodes["marts/creative_ranking"]["groupName"] == "marts"
    assert nodes["features/prelaunch"]["groupName"] == "features"
    assert nodes["report/serving_copy"]["groupName"] == "report"


def test_blocking_checks_are_reported_and_passed_on_the_materialised_features(webserver):
    nodes = _asset_nodes(webserver)
    blocking = {key: {check["name"]: check for check in node["assetChecksOrError"]["checks"] if check["blocking"]}
                for key, node in nodes.items() if node["assetChecksOrError"]["__typename"] == "AssetChecks"}
    prelaunch = blocking["features/prelaunch"]
    assert "prelaunch_leakage_sniff" in prelaunch
    assert blocking["features/early"].keys() >= {"early_leakage_sniff"}
    assert "creative_id_unique_and_present" in blocking["raw/creatives"]
    # The features were materialised: their blocking checks ran with them and passed.
    assert {name: check["executionForLatestMaterialization"]["status"] for name, check in prelaunch.items()} == \
        dict.fromkeys(prelaunch, "SUCCEEDED")


def test_launch_date_partitions_are_the_export_launch_dates(webserver, demo_home):
    nodes = _asset_nodes(webserver)
    encoders = [key for key, node in nodes.items() if node["groupName"] == "encoders" and node["isPartitioned"]]
    assert encoders, "no partitioned encoder asset"
    for key in encoders:
        dimensions = nodes[key]["partitionDefinition"]["dimensionTypes"]
        assert [(d["type"], d["dynamicPartitionsDefinitionName"]) for d in dimensions] == [("DYNAMIC", "launch_date")]
    launch_dates = sorted(str(row[0]) for row in demo_home.query("SELECT DISTINCT launch_date FROM raw.creatives"))
    node = webserver.graphql(PARTITION_KEYS, {"key": {"path": ["embeddings", "cnn"]}})["assetNodeOrError"]
    assert sorted(node["partitionKeys"]) == launch_dates


def test_latest_materialisation_of_the_mart_carries_row_count_and_preview(webserver, demo_home):
    asset = webserver.graphql(LATEST_MATERIALIZATION, {"key": {"path": list(MART)}})["assetOrError"]
    assert asset["__typename"] == "Asset"
    (latest,) = asset["assetMaterializations"]
    entries = {entry["label"]: entry for entry in latest["metadataEntries"]}
    [(rows,)] = demo_home.query(f"SELECT count(*) FROM {'.'.join(MART)}")
    assert entries["dagster/row_count"]["intValue"] == rows > 0
    assert "creative_id" in entries["preview"]["mdStr"]


def _visible_text(dom: str) -> str:
    without_code = re.sub(r"(?is)<(script|style)\b.*?</\1>", " ", dom)
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", without_code))).strip()


def test_asset_page_renders_in_headless_chromium(webserver, demo_home, tmp_path):
    if find_or_install_chromium() is None:
        pytest.skip("headless Chromium unavailable (tests/browser.py says why in the log)")
    description = _asset_nodes(webserver)["/".join(MART)]["description"]
    page = render(f"{webserver.url}/assets/{'/'.join(MART)}", tmp_path / "asset_page.png", wait_ms=8000)
    text = _visible_text(page.dom)
    assert page.console_errors == []
    assert "marts / creative_ranking" in text  # the page title and breadcrumb: the asset key
    assert " ".join(description.split()[:8]) in text
    [(rows,)] = demo_home.query(f"SELECT count(*) FROM {'.'.join(MART)}")
    assert re.search(rf"Row count {rows}\b", text), "the row count of the latest materialisation is shown"
    columns = [row[0] for row in demo_home.query(
        "SELECT column_name FROM information_schema.columns "
        f"WHERE table_schema = '{MART[0]}' AND table_name = '{MART[1]}'")]
    assert [column for column in columns if column not in text] == []
    assert page.screenshot.stat().st_size > 10_000


STOP_TIMEOUT_S = 240


def test_creative_dag_dev_starts_the_ui_without_the_virtualenv_on_path(tmp_path):
    """`.venv/bin/creative-dag dev` (the README's command) called a bare `dagster` and failed unless the
    virtualenv's bin was on PATH."""
    home, landing = tmp_path / "home", tmp_path / "landing"
    landing.mkdir()
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "VIRTUAL_ENV")}
    env["PATH"] = "/usr/bin:/bin"  # no virtualenv
    log = tmp_path / "dev.log"
    process = subprocess.Popen([*CLI, "dev", "--port", str(port), "--home", str(home), "--landing", str(landing)],
                               env=env, cwd=tmp_path, stdout=log.open("w"), stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        deadline, answered = time.monotonic() + STARTUP_TIMEOUT_S, False
        while time.monotonic() < deadline and process.poll() is None and not answered:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=5) as response:
                    answered = response.status == 200
            except OSError:
                time.sleep(1)
        assert answered, f"the UI did not answer (exit {process.poll()}):\n{log.read_text()[-3000:]}"
        # a SIGTERM to `creative-dag dev` alone (kill PID, a service manager) stops everything it started
        process.send_signal(signal.SIGTERM)
        try:  # dagster dev stops its daemon and servers one by one: beside other tests in CI, over a minute
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"`creative-dag dev` did not exit within {STOP_TIMEOUT_S} s of its SIGTERM:\n"
                        f"{log.read_text()[-3000:]}")
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                os.killpg(process.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(1)
        else:
            pytest.fail(f"processes of `creative-dag dev` outlived its SIGTERM:\n{log.read_text()[-3000:]}")
    finally:  # whatever is left of the group (nothing when the test passed)
        for stop_signal in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(process.pid, stop_signal)
            except ProcessLookupError:
                break
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                continue

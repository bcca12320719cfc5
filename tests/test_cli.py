"""The `creative-dag` command line: help everywhere, clear errors, non-zero exits on failure."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from creative_dag.cli import main

COMMANDS = ["generate", "materialize", "demo", "tables", "assets", "dev", "similar", "assess", "import"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command):
    result = CliRunner().invoke(main, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_materialize_without_landing_folder_fails_with_guidance(tmp_path):
    result = CliRunner().invoke(main, ["materialize", "--home", str(tmp_path / "h"),
                                       "--landing", str(tmp_path / "missing")])
    assert result.exit_code != 0
    assert "landing folder" in result.output and "does not exist" in result.output
    assert "creative-dag generate" in result.output


def test_materialize_rejects_unknown_selection(tmp_path):
    (tmp_path / "in").mkdir()
    result = CliRunner().invoke(main, ["materialize", "--home", str(tmp_path / "h"), "--landing",
                                       str(tmp_path / "in"), "--select", "raw/nonexistent"])
    assert result.exit_code != 0


def test_generate_rejects_bad_arguments(tmp_path):
    result = CliRunner().invoke(main, ["generate", "--out", str(tmp_path / "x"), "--creatives", "0"])
    assert result.exit_code != 0 and "--creatives" in result.output


def test_tables_on_empty_home(tmp_path):
    result = CliRunner().invoke(main, ["tables", "--home", str(tmp_path)])
    assert result.exit_code == 0 and "no tables" in result.output


@pytest.mark.parametrize(("level", "event_lines_expected"), [("INFO", False), ("DEBUG", True)])
def test_console_log_level_hides_per_event_lines_by_default(tmp_path, capfd, level, event_lines_expected):
    from creative_dag.synth import generate_scenario

    landing = tmp_path / "in"
    generate_scenario(landing, n_creatives=12, n_days=14, seed=1, image_size=64)
    args = ["materialize", "--select", "group:ingest", "--home", str(tmp_path / "h"), "--landing", str(landing)]
    result = CliRunner().invoke(main, [*args, "--log-level", level], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    captured = capfd.readouterr()
    console = result.output + captured.out + captured.err
    assert "materialised" in console
    assert ("ASSET_MATERIALIZATION" in console) is event_lines_expected


def test_asset_config_file_is_applied_and_mistakes_are_named(tmp_path):
    from creative_dag.resources.warehouse import DuckDBWarehouse
    from creative_dag.synth import generate_scenario

    landing = tmp_path / "in"
    generate_scenario(landing, n_creatives=12, n_days=14, seed=1, image_size=64)
    base = ["materialize", "--home", str(tmp_path / "h"), "--landing", str(landing)]
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("marts/no_such_table: {sample_size: 3}\n")
    result = CliRunner().invoke(main, [*base, "--config", str(wrong)])
    assert result.exit_code != 0 and "marts/no_such_table" in result.output and "no such asset" in result.output
    wrong.write_text("- just a list\n")
    result = CliRunner().invoke(main, [*base, "--config", str(wrong)])
    assert result.exit_code != 0 and "expected `asset_key:" in result.output
    # A field the asset does not have is Dagster's config error, before anything runs.
    wrong.write_text("marts/element_attribution: {sample_sise: 3}\n")
    result = CliRunner().invoke(main, [*base, "--select", "marts/element_attribution", "--config", str(wrong)])
    assert result.exit_code == 1 and "--config" in result.output and "sample_sise" in result.output, result.output
    good = tmp_path / "good.yaml"
    good.write_text("marts/creative_ranking: {}\n")
    result = CliRunner().invoke(main, [*base, "--select", "group:ingest", "--config", str(good)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert DuckDBWarehouse(tmp_path / "h" / "creative.duckdb").exists("raw.creatives")


def test_unknown_log_level_is_refused(tmp_path):
    result = CliRunner().invoke(main, ["materialize", "--log-level", "LOUD", "--home", str(tmp_path)])
    assert result.exit_code != 0 and "--log-level" in result.output


def test_a_run_with_nothing_changed_is_skipped_until_the_landing_changes(tmp_path):
    import os

    from creative_dag.synth import generate_scenario

    landing = tmp_path / "in"
    generate_scenario(landing, n_creatives=12, n_days=14, seed=1, image_size=64)
    args = ["materialize", "--select", "group:ingest", "--home", str(tmp_path / "h"), "--landing", str(landing)]
    first = CliRunner().invoke(main, args, catch_exceptions=False)
    assert first.exit_code == 0 and "materialised 4 assets" in first.output, first.output
    again = CliRunner().invoke(main, args, catch_exceptions=False)
    assert again.exit_code == 0 and "nothing to do" in again.output and "materialised" not in again.output
    assert "materialised 4 assets" in CliRunner().invoke(main, [*args, "--force"]).output
    metrics = landing / "daily_metrics.csv"
    os.utime(metrics, ns=(metrics.stat().st_atime_ns, metrics.stat().st_mtime_ns + 10**9))  # a new export
    assert "materialised 4 assets" in CliRunner().invoke(main, args).output
    # a deleted table is rebuilt, whatever the memo says
    from creative_dag.resources.warehouse import DuckDBWarehouse

    DuckDBWarehouse(tmp_path / "h" / "creative.duckdb").execute("DROP TABLE raw.quarantine")
    assert "materialised 4 assets" in CliRunner().invoke(main, args).output


def test_demo_writes_the_scenario_and_a_candidate_batch_once(tmp_path, monkeypatch):
    """The demo's own steps around the materialisation (that is tested end to end elsewhere), on a
    first run and on a second one with the landing folder already there."""
    from creative_dag import cli
    from creative_dag.runner import RunSummary

    runs = []
    monkeypatch.setattr(cli, "_materialize", lambda *a, **k: runs.append(a) or RunSummary())
    monkeypatch.setattr(cli, "_print_tables", lambda locations: None)
    args = ["demo", "--creatives", "10", "--days", "14", "--image-size", "64",
            "--home", str(tmp_path / "home"), "--landing", str(tmp_path / "landing")]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    batch = tmp_path / "landing" / "candidates" / "sample"
    assert (batch / "candidates.csv").exists() and (batch / "ground_truth.json").exists()
    assert "sample batch of new candidates" in first.output
    second = CliRunner().invoke(main, args)
    assert second.exit_code == 0, second.output
    assert "up to date" in second.output and len(runs) == 2

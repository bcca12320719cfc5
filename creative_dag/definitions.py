"""The one Definitions object: every stage's assets (with their automation conditions), checks, sensors and resources.

`dagster dev` (workspace.yaml) loads `defs`; the CLI builds the same thing with explicit locations.
"""

from __future__ import annotations

import os

import dagster as dg

from creative_dag.settings import Locations, resolve_locations


def build_resources(locations: Locations) -> dict[str, object]:
    """Resources for one deployment; assets never know where the data lives."""
    from creative_dag.resources.embedding_store import EmbeddingStoreResource
    from creative_dag.resources.image_store import ImageStoreResource
    from creative_dag.resources.landing import LandingResource
    from creative_dag.resources.models import EncoderResource
    from creative_dag.resources.warehouse import WarehouseResource

    return {
        "warehouse": WarehouseResource(database=str(locations.database)),
        "landing": LandingResource(root=str(locations.landing)),
        "image_store": ImageStoreResource(root=str(locations.landing)),
        "encoders": EncoderResource.from_locations(locations),
        "embedding_store": EmbeddingStoreResource(uri=str(locations.embedding_store)),
    }


def stage_modules() -> list:
    """Asset and check modules in pipeline order (the asset graph reads like docs/operations.md)."""
    from creative_dag.assets import attribution as attribution_assets
    from creative_dag.assets import candidates as candidate_assets
    from creative_dag.assets import cbr as cbr_assets
    from creative_dag.assets import decisions as decision_assets
    from creative_dag.assets import encoders as encoder_assets
    from creative_dag.assets import features as feature_assets
    from creative_dag.assets import forecast as forecast_assets
    from creative_dag.assets import html_report as html_report_assets
    from creative_dag.assets import ingest as ingest_assets
    from creative_dag.assets import marts as marts_assets
    from creative_dag.checks import cbr as cbr_checks
    from creative_dag.checks import decisions as decision_checks
    from creative_dag.checks import encoders as encoder_checks
    from creative_dag.checks import features as feature_checks
    from creative_dag.checks import forecast as forecast_checks
    from creative_dag.checks import ingest as ingest_checks
    from creative_dag.checks import marts as marts_checks

    return [
        ingest_assets, ingest_checks,
        feature_assets, feature_checks,
        encoder_assets, encoder_checks,
        cbr_assets, cbr_checks,
        marts_assets, marts_checks,
        forecast_assets, forecast_checks,
        decision_assets, decision_checks,
        attribution_assets,
        candidate_assets,
        html_report_assets,
    ]


def build_definitions(home: str | os.PathLike | None = None,
                      landing: str | os.PathLike | None = None,
                      refresh_cron: str | None = None,
                      executor: dg.ExecutorDefinition | None = None) -> dg.Definitions:
    """refresh_cron: when the whole-history tables refresh (default $CREATIVE_DAG_REFRESH_CRON, else
    "0 5 * * *"); see creative_dag/automation.py for what runs when. executor: of every job (default
    Dagster's, with multiprocess steps forked from a preloaded server: creative_dag/step_processes.py)."""
    from creative_dag.assets.report import build_serving_copy_asset
    from creative_dag.automation import (
        CANDIDATES_GROUP,
        build_automation,
        keys_by_role,
        with_automation,
    )
    from creative_dag.step_processes import project_executor

    locations = resolve_locations(home, landing)
    modules = stage_modules()
    assets = list(dg.load_assets_from_modules(modules))
    checks = dg.load_asset_checks_from_modules(modules)
    # Candidate batches are assessed on demand, per partition: the serving copy publishes their tables
    # whenever it runs but does not wait for (or depend on) a batch. Report assets (the HTML report)
    # write no table, so the serving copy does not wait for them either.
    table_keys = [key for a in assets for spec in a.specs if spec.group_name not in (CANDIDATES_GROUP, "report")
                  for key in [spec.key]]
    assets.append(build_serving_copy_asset(table_keys))
    assets = with_automation(assets, refresh_cron=refresh_cron)
    jobs, sensors = build_automation(keys_by_role(assets))
    return dg.Definitions(
        assets=assets,
        asset_checks=checks,
        jobs=jobs,
        sensors=sensors,
        resources=build_resources(locations),
        executor=executor or project_executor(),
    )


defs = build_definitions()

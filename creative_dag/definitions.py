"""The one Definitions object: every stage's assets, checks, sensors and schedules, and resources.

`dagster dev` (workspace.yaml) loads `defs`; the CLI builds the same thing with explicit locations.
"""

from __future__ import annotations

import os

import dagster as dg

from creative_dag.settings import Locations, resolve_locations


def build_resources(locations: Locations) -> dict[str, object]:
    """Resources for one deployment; assets never know where the data lives."""
    from creative_dag.resources.image_store import ImageStoreResource
    from creative_dag.resources.landing import LandingResource
    from creative_dag.resources.warehouse import WarehouseResource

    return {
        "warehouse": WarehouseResource(database=str(locations.database)),
        "landing": LandingResource(root=str(locations.landing)),
        "image_store": ImageStoreResource(root=str(locations.landing)),
    }


def stage_modules() -> list:
    """Asset and check modules in pipeline order (the asset graph reads like design §5)."""
    from creative_dag.assets import ingest as ingest_assets
    from creative_dag.checks import ingest as ingest_checks

    return [ingest_assets, ingest_checks]


def build_definitions(home: str | os.PathLike | None = None,
                      landing: str | os.PathLike | None = None) -> dg.Definitions:
    locations = resolve_locations(home, landing)
    modules = stage_modules()
    assets = dg.load_assets_from_modules(modules)
    checks = dg.load_asset_checks_from_modules(modules)
    sensors = [s for m in modules for s in getattr(m, "SENSORS", [])]
    schedules = [s for m in modules for s in getattr(m, "SCHEDULES", [])]
    jobs = [j for m in modules for j in getattr(m, "JOBS", [])]
    return dg.Definitions(
        assets=assets,
        asset_checks=checks,
        sensors=sensors,
        schedules=schedules,
        jobs=jobs,
        resources=build_resources(locations),
    )


defs = build_definitions()

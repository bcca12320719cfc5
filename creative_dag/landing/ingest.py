"""Read a whole landing folder into the four raw tables (plain Python, no Dagster).

`ingest_landing_folder(folder, locator, today)` -> `LandingIngest` with `creatives`,
`daily_metrics`, `images`, `quarantine` (the raw.* tables) and `files_read`.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from creative_dag.contract import (
    CREATIVES_FILE,
    CREATIVES_REQUIRED,
    DAILY_METRICS_FILE,
    MAX_IMAGE_ASPECT,
    METRICS_REQUIRED,
    MIN_IMAGE_SIDE,
)
from creative_dag.landing.files import LandedTable, find_input, read_landed
from creative_dag.landing.images import (
    DEFAULT_MAX_IMAGE_PIXELS,
    OK,
    known_probes,
    probe_creative_images,
)
from creative_dag.landing.locator import ImageLocator
from creative_dag.landing.quarantine import concat_quarantine, counts_by_reason
from creative_dag.landing.validate_creatives import validate_creatives
from creative_dag.landing.validate_metrics import validate_metrics


@dataclass(frozen=True)
class LandingIngest:
    """The raw tables of one landing folder, plus what was read."""

    creatives: pd.DataFrame
    daily_metrics: pd.DataFrame
    images: pd.DataFrame
    quarantine: pd.DataFrame
    files_read: list[dict[str, object]] = field(default_factory=list)
    today: dt.date = field(default_factory=dt.date.today)
    images_reused: int = 0  # image rows whose probe came from the previous raw.images (not decoded again)

    def quarantined_by_reason(self, source: str | None = None) -> dict[str, int]:
        """{reason: rows} for one source ('creatives' | 'daily_metrics' | 'images') or all."""
        frame = self.quarantine if source is None else self.quarantine[self.quarantine["source"] == source]
        return counts_by_reason(frame)


def read_creatives(folder: str | os.PathLike) -> LandedTable:
    """creatives.csv|.parquet as landed; LandingFileError for a missing/duplicate file or column."""
    return read_landed(find_input(folder, CREATIVES_FILE), CREATIVES_REQUIRED)


def read_daily_metrics(folder: str | os.PathLike) -> LandedTable:
    """daily_metrics.csv|.parquet as landed; LandingFileError for a missing/duplicate file or column."""
    return read_landed(find_input(folder, DAILY_METRICS_FILE), METRICS_REQUIRED)


def ingest_landing_folder(folder: str | os.PathLike, locator: ImageLocator | None = None,
                          today: dt.date | None = None, max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
                          probe_workers: int = 1, min_image_side: int = MIN_IMAGE_SIDE,
                          max_image_aspect: float = MAX_IMAGE_ASPECT,
                          known_images: pd.DataFrame | None = None) -> LandingIngest:
    """Validate creatives, then metrics against the valid creatives, then probe their images.

    Raises LandingFileError only for whole-file problems; every bad row or image becomes a
    quarantine row (malformed CSV lines first, then rows, per file). `today` (default: the
    current date) bounds launch and metric dates. `locator` defaults to images under `folder`
    with only local files allowed (and its default file-size limit). known_images: the previous
    raw.images table; files whose bytes it probed ok are not decoded again (landing/images.py).
    """
    folder = Path(folder)
    today = today or dt.date.today()
    locator = locator or ImageLocator(folder)
    # Read both files before validating, so a run with two broken files reports the first at once.
    creatives_file = read_creatives(folder)
    metrics_file = read_daily_metrics(folder)

    creatives = validate_creatives(creatives_file.frame, creatives_file.name, today)
    metrics = validate_metrics(metrics_file.frame, metrics_file.name, creatives.valid, today,
                               {**_malformed_ids(creatives_file), **creatives.quarantined_ids})
    known = known_probes(known_images)
    images, image_rejects = probe_creative_images(creatives.valid, locator, max_image_pixels, probe_workers,
                                                  file_name=creatives_file.name, min_side=min_image_side,
                                                  max_aspect=max_image_aspect, known=known)
    return LandingIngest(
        creatives=creatives.valid,
        daily_metrics=metrics.valid,
        images=images,
        quarantine=concat_quarantine([creatives_file.quarantine, creatives.quarantine,
                                      metrics_file.quarantine, metrics.quarantine, image_rejects]),
        files_read=[creatives_file.describe(), metrics_file.describe()],
        today=today,
        images_reused=int(((images["decode_status"] == OK) & images["sha256"].isin(list(known))).sum()),
    )


def _malformed_ids(landed: LandedTable) -> dict[str, str]:
    """creative_id -> 'malformed_csv_row' for creatives lost to malformed CSV lines (their metrics
    are then `creative_quarantined`, not `unknown_creative`)."""
    keys = landed.quarantine["key"].dropna() if len(landed.quarantine) else []
    return {str(k): "malformed_csv_row" for k in keys if str(k)}

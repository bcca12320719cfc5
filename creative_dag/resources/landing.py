"""The landing folder resource: where the advertiser's export is read from (docs/input-contract.md).

`root` comes from `--landing` / CREATIVE_DAG_LANDING (see creative_dag.settings); the other
fields tune validation. Images are read through the `image_store` resource, which owns the
rules for image paths and URI schemes.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
from pydantic import Field

from creative_dag.landing.images import DEFAULT_MAX_IMAGE_PIXELS


class LandingResource(dg.ConfigurableResource):
    """The input landing folder (creatives.*, daily_metrics.*, images/)."""

    root: str = Field(description="Landing folder holding creatives.csv|.parquet and daily_metrics.csv|.parquet.")
    max_image_pixels: int = Field(
        default=DEFAULT_MAX_IMAGE_PIXELS,
        description="Images with more pixels (width x height, from the header) are quarantined as decompression_bomb.",
    )
    today: str | None = Field(
        default=None,
        description="ISO date after which launch and metric dates count as future_date; default: the run's date "
                    "(set it to replay a historical export).",
    )
    probe_workers: int = Field(default=1, description="Threads used to probe images (decoding releases the GIL).")
    import_from: str | None = Field(
        default=None,
        description="meta | google | tiktok: before each ingest, convert `import_exports` (the platform's ad-level "
                    "daily report, CSV or XLSX) into this folder's contract files (docs/imports.md).",
    )
    import_exports: list[str] = Field(default_factory=list,
                                      description="Report export files converted when import_from is set.")
    import_images: str | None = Field(default=None,
                                      description="Folder with the ads' images (default: <root>/images).")
    import_account: str | None = Field(default=None, description="Account id where the export has none.")
    import_currency: str | None = Field(default=None, description="Currency where the export names none.")

    def folder(self) -> Path:
        return Path(self.root).expanduser().resolve()

    def as_of(self) -> dt.date:
        """The date bounding launch and metric dates."""
        if not self.today:
            return dt.date.today()
        try:
            return dt.date.fromisoformat(self.today)
        except ValueError as err:
            raise ValueError(f"LandingResource.today {self.today!r} is not an ISO date YYYY-MM-DD") from err

    def run_import(self):
        """Convert the configured platform exports into the landing folder; None when import_from is unset.
        Raises creative_dag.imports.convert.ImportFileError for a whole-file problem."""
        if not self.import_from:
            return None
        from creative_dag.imports.convert import convert_exports, write_landing

        result = convert_exports(self.import_exports, self.import_from, self.import_images or self.folder() / "images",
                                 account=self.import_account, currency=self.import_currency)
        write_landing(result, self.folder())
        return result.summary

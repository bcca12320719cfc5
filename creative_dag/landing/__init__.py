"""Read and validate the landing folder (docs/input-contract.md): files, row validation, image probing, quarantine.

Plain Python on DataFrames; `creative_dag.assets.ingest` wraps it as the raw.* assets.
"""

from creative_dag.landing.files import LandingFileError, find_input, read_landed
from creative_dag.landing.images import (
    DEFAULT_MAX_IMAGE_PIXELS,
    probe_creative_images,
    probe_image_bytes,
)
from creative_dag.landing.ingest import (
    LandingIngest,
    ingest_landing_folder,
    read_creatives,
    read_daily_metrics,
)
from creative_dag.landing.quarantine import REASONS
from creative_dag.landing.validate_creatives import validate_creatives
from creative_dag.landing.validate_metrics import validate_metrics

__all__ = [
    "DEFAULT_MAX_IMAGE_PIXELS",
    "REASONS",
    "LandingFileError",
    "LandingIngest",
    "find_input",
    "ingest_landing_folder",
    "probe_creative_images",
    "probe_image_bytes",
    "read_creatives",
    "read_daily_metrics",
    "read_landed",
    "validate_creatives",
    "validate_metrics",
]

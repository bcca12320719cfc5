"""The landing-folder input contract (docs/input-contract.md): file names, required and optional columns."""

from __future__ import annotations

CREATIVES_FILE = "creatives"
DAILY_METRICS_FILE = "daily_metrics"
IMAGES_DIR = "images"
REGISTRY_FILE = "feature_registry.json"
INPUT_SUFFIXES = (".parquet", ".csv")

CREATIVES_REQUIRED = ("creative_id", "account_id", "campaign_id", "launch_date", "image_path")
CREATIVES_OPTIONAL = (
    "platform", "placement", "format", "objective", "audience", "country",
    "product_category", "headline", "primary_text", "cta",
)
# Lifetime columns real exports carry; accepted in raw, quarantined from decisions by the registry.
KNOWN_LEAKY_EXPORT_COLUMNS = ("last_7d_ctr", "lifetime_spend", "lifetime_roas")

METRICS_REQUIRED = ("creative_id", "date", "impressions", "clicks", "spend", "conversions", "revenue")
METRICS_OPTIONAL = ("reach", "frequency", "video_3s_views", "likes")
METRIC_COUNT_COLUMNS = ("impressions", "clicks", "conversions", "reach", "video_3s_views", "likes")
METRIC_MONEY_COLUMNS = ("spend", "revenue")

QUARANTINE_COLUMNS = ("source", "key", "reason", "detail", "raw_value")

# --- limits of the contract (docs/input-contract.md, "Limits") -------------------------------------
# Dates outside [MIN_DATE, MAX_DATE] are placeholders or typos (0001-01-01, 9999-12-31, 1700-01-01):
# the ad platforms exports come from (Google Ads, Meta, TikTok) all started after 2000, and a date
# past 2099 is a sentinel, not a plan.
MIN_DATE = "2000-01-01"
MAX_DATE = "2099-12-31"
# A metric above this is corrupt (an id or a timestamp pasted into a number column); it also keeps
# every accepted count exactly representable as float64 and int64.
MAX_METRIC_VALUE = 1e15
# Excel's own cell limit; no ad text comes close. Longer cells are broken exports (a stray quote).
MAX_CELL_CHARS = 32_767
# Image files: only these Pillow formats are ever opened (EPS/PS/PDF would run Ghostscript).
IMAGE_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
MAX_IMAGE_BYTES = 50_000_000
# Degenerate images (tracking pixels, 1-px lines): the shorter side must be at least MIN_IMAGE_SIDE
# (IAB's smallest unit, the 88x31 micro bar, passes) and long/short at most MAX_IMAGE_ASPECT
# (the widest IAB banner, 970x90, is 10.8:1).
MIN_IMAGE_SIDE = 16
MAX_IMAGE_ASPECT = 20.0

"""The landing-folder input contract (design §2): file names, required and optional columns."""

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

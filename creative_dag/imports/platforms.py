"""What each ad platform's ad-level daily report calls its columns (docs/imports.md).

One `PlatformSpec` per platform maps the column names its report UI writes (Meta Ads Manager,
Google Ads, TikTok Ads Manager) to the importer's fields. Names are matched ignoring case and
repeated spaces; the first name of a field that the export has wins, so the preferred column comes
first (Meta's "Link clicks" before "Clicks (all)"). A name may hold `{currency}`: the reports put
the account currency into the header ("Amount spent (EUR)"), and the importer keeps it.

Fields (not contract columns: `convert.py` turns them into the landing contract):
ad_id, ad_name, account_id, account_name, campaign_id, campaign_name, currency, date,
reporting_starts, reporting_ends, impressions, clicks, spend, conversions, revenue, reach,
frequency, video_3s_views, video_2s_views, likes, headline, primary_text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

CURRENCY_SLOT = "{currency}"

# Additive daily metrics: rows repeated for the same ad and day are summed.
SUMMED_FIELDS = ("impressions", "clicks", "spend", "conversions", "revenue",
                 "video_3s_views", "video_2s_views", "likes")
# Of those, the ones where a blank or "--" cell means none (Meta leaves Purchases blank on a day
# without any, Google Ads writes "--"). Video views stay blank: on an image ad they do not apply.
ZERO_WHEN_BLANK_FIELDS = ("impressions", "clicks", "spend", "conversions", "revenue")
# Per-person metrics: not additive over rows, so they are kept only for an ad-day read from one row.
PER_PERSON_FIELDS = ("reach", "frequency")
METRIC_FIELDS = SUMMED_FIELDS + PER_PERSON_FIELDS
# Fields every export must have; the others are used when present (revenue: see `convert`).
REQUIRED_FIELDS = ("ad_id", "impressions", "clicks", "spend", "conversions")
# Plain-text fields copied into creatives.csv under their contract names.
TEXT_FIELDS = ("headline", "primary_text")


@dataclass(frozen=True)
class PlatformSpec:
    """A platform's report columns: field -> the header names it may have, preferred first."""

    name: str                                   # meta | google | tiktok (the `platform` column)
    label: str                                  # the report UI, for messages
    columns: dict[str, tuple[str, ...]]
    how_to_export: str                          # one sentence: where the daily ad-level report is

    def names_for(self, field: str) -> tuple[str, ...]:
        return self.columns.get(field, ())

    def date_fields(self) -> tuple[str, ...]:
        """The fields that can give the day: a "Day"/"Date" column, or Meta's reporting range."""
        return tuple(f for f in ("date", "reporting_starts") if f in self.columns)


def header_key(name: object) -> str:
    """A header cell as compared: trimmed, lower case, runs of spaces as one ("Amount  Spent" == "amount spent")."""
    return re.sub(r"\s+", " ", str(name or "").replace("\ufeff", "")).strip().casefold()


def name_pattern(name: str) -> re.Pattern[str]:
    """A regex for one spec name; `{currency}` matches a three-letter code and captures it."""
    key = header_key(name)
    escaped = re.escape(key).replace(re.escape(CURRENCY_SLOT.casefold()), r"(?P<currency>[a-z]{3})")
    return re.compile(rf"^{escaped}$")


META = PlatformSpec(
    name="meta",
    label="Meta Ads Manager",
    columns={
        "ad_id": ("Ad ID",),
        "ad_name": ("Ad name",),
        "account_id": ("Account ID",),
        "account_name": ("Account name",),
        "campaign_id": ("Campaign ID",),
        "campaign_name": ("Campaign name",),
        "currency": ("Currency",),
        "date": ("Day",),
        "reporting_starts": ("Reporting starts",),
        "reporting_ends": ("Reporting ends",),
        "impressions": ("Impressions",),
        "clicks": ("Link clicks", "Clicks (all)"),
        "spend": ("Amount spent ({currency})", "Amount spent"),
        "conversions": ("Purchases", "Website purchases"),
        "revenue": ("Purchases conversion value", "Website purchases conversion value"),
        "reach": ("Reach",),
        "frequency": ("Frequency",),
        "video_3s_views": ("3-second video plays",),
        "headline": ("Headline", "Title"),
        "primary_text": ("Primary text", "Body"),
    },
    how_to_export=("Ads Manager > Ads tab > Reports > Export table data (CSV or XLSX), "
                   "with Breakdown > By time > Day"),
)

GOOGLE = PlatformSpec(
    name="google",
    label="Google Ads",
    columns={
        "ad_id": ("Ad ID",),
        "ad_name": ("Ad name",),
        "account_id": ("Customer ID", "Account ID"),
        "account_name": ("Account", "Account name"),
        "campaign_id": ("Campaign ID",),
        "campaign_name": ("Campaign",),
        "currency": ("Currency code", "Currency"),
        "date": ("Day", "Date"),
        "impressions": ("Impr.", "Impressions"),
        "clicks": ("Clicks",),
        "spend": ("Cost", "Cost ({currency})"),
        "conversions": ("Conversions",),
        "revenue": ("Conv. value", "Conversion value"),
        "headline": ("Headline 1", "Headline"),
        "primary_text": ("Description 1", "Description"),
    },
    how_to_export="Google Ads > Ads > Download (CSV or Excel), with the Day segment and the Ad ID column",
)

TIKTOK = PlatformSpec(
    name="tiktok",
    label="TikTok Ads Manager",
    columns={
        "ad_id": ("Ad ID",),
        "ad_name": ("Ad name",),
        "account_id": ("Advertiser ID", "Account ID"),
        "account_name": ("Advertiser name", "Account name"),
        "campaign_id": ("Campaign ID",),
        "campaign_name": ("Campaign name",),
        "currency": ("Currency",),
        "date": ("Date", "Day", "By Day"),
        "impressions": ("Impressions",),
        "clicks": ("Clicks (destination)", "Clicks"),
        "spend": ("Cost", "Total cost", "Cost ({currency})"),
        "conversions": ("Conversions",),
        "revenue": ("Total complete payment value", "Total purchase value", "Purchase value"),
        "reach": ("Reach",),
        "frequency": ("Frequency",),
        "video_2s_views": ("2-second video views",),
        "likes": ("Paid likes", "Likes"),
        "primary_text": ("Ad text",),
    },
    how_to_export="TikTok Ads Manager > Reporting > custom report at Ad level with the Day dimension (CSV or XLSX)",
)

PLATFORMS: Mapping[str, PlatformSpec] = MappingProxyType({spec.name: spec for spec in (META, GOOGLE, TIKTOK)})


def platform_spec(name: str) -> PlatformSpec:
    """The spec for `name` (meta | google | tiktok); ValueError naming the choices otherwise."""
    try:
        return PLATFORMS[name.strip().lower()]
    except KeyError:
        raise ValueError(f"unknown platform {name!r}: choose one of {', '.join(PLATFORMS)}") from None

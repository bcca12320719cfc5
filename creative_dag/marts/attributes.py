"""The interpretable attribute frame per creative: what recommendations and the landscape speak in.

Assembled from detected attributes, never from ground truth:
- `embeddings.visual`  named colour / composition columns (e.g. dominant_hue_family, brightness)
- `embeddings.layout`  text / face / CTA columns (e.g. text_area_ratio, face_count, cta_detected)
- `embeddings.cnn`     top-k image tags -> one boolean `tag_<name>` column per frequent tag
- `features.prelaunch` context columns that describe the creative itself (format, cta,
                       product_category); placement/platform/audience/objective are strata,
                       not attributes, and stay out.

Each block keeps its curated interpretable columns (`INTERPRETABLE`); a block table with
none of them (a changed schema) falls back to generic rules: booleans and numerics are kept; strings are kept when they have at most
`max_levels` distinct values (free text such as OCR output is dropped); list-valued columns
(tags) become boolean tag columns. Bookkeeping columns (ids, hashes, model ids, vectors,
dates, paths, status) are dropped. A name used by two sources is prefixed with the block.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import numpy as np
import pandas as pd

BOOKKEEPING = {"creative_id", "sha256", "launch_date", "model_id", "model_version", "vector", "image_path",
               "account_id", "campaign_id", "status", "reason", "device", "computed_at", "width", "height",
               "decode_status", "error"}
CONTEXT_ATTRIBUTES = ("format", "cta", "product_category")
# The interpretable columns of each block (docs/attributes.md). Raw coordinates, colour codes,
# boxes and free text stay out: they are not something a creative team can act on, and every
# extra column is another hypothesis for the multiple-testing correction to pay for.
INTERPRETABLE: dict[str, tuple[str, ...]] = {
    "visual": ("dominant_color_name", "dominant_hue_family", "background_color_name", "background_hue_family",
               "warm_share", "cool_share", "brightness", "contrast", "saturation", "colorfulness", "edge_density",
               "negative_space_ratio", "symmetry", "salient_area_ratio", "background_uniformity"),
    "layout": ("word_count", "text_present", "text_area_ratio", "text_position", "text_coverage_class",
               "cta_detected", "cta_text", "cta_position", "face_count", "face_present", "face_area_ratio",
               "face_position"),
    "cnn": ("top_tag", "tags"),
}
# Never attributes, even in the generic fallback for a block without a curated list.
_EXCLUDED_SUFFIXES = ("_id", "_box", "_boxes", "_hex", "_json", "_x", "_y", "_r", "_g", "_b", "_scores", "_text_raw")
TAG_PREFIX = "tag_"

# Declared attribute families: columns that measure the same thing in different ways (a detected
# face -> face_present, face_count, face_area_ratio). Recommendations group indicators of one
# family at a lower correlation than unrelated ones, so one cause is reported once. Names from
# the synthetic ground truth (has_face, hue_family, ...) are listed too: tests speak in them.
ATTRIBUTE_FAMILIES: dict[str, tuple[str, ...]] = {
    "faces": ("face_present", "has_face", "face_count", "face_area_ratio", "face_position"),
    "text": ("text_present", "text_coverage_class", "text_coverage", "text_area_ratio", "word_count", "text_position"),
    "cta": ("cta_detected", "has_cta", "cta_text", "cta", "cta_position", "cta_color"),
    "colour_temperature": ("dominant_hue_family", "hue_family", "background_hue_family", "warm_share", "cool_share"),
    "colour": ("dominant_color_name", "background_color_name", "background_hue"),
    "light": ("brightness", "contrast"),
    "colourfulness": ("colorfulness", "saturation"),
    "clutter": ("negative_space_ratio", "edge_density", "background_uniformity", "salient_area_ratio", "symmetry"),
    "product": ("product_kind", "product", "product_category"),
    "background": ("background_style",),
    "headline": ("headline_position", "headline_font"),
    "format": ("format", "orientation", "file_format"),
}
# What a strategist calls each attribute (a boolean's label names its `true` side).
ATTRIBUTE_LABELS: dict[str, str] = {
    "face_present": "Faces in the creative", "has_face": "Faces in the creative", "face_count": "Number of faces",
    "face_area_ratio": "Face size", "face_position": "Face position",
    "text_present": "Text on the image", "text_coverage_class": "Text coverage", "text_coverage": "Text coverage",
    "text_area_ratio": "Text area", "word_count": "Word count", "text_position": "Text position",
    "cta_detected": "A call-to-action button", "has_cta": "A call-to-action button", "cta_text": "CTA wording",
    "cta": "CTA (campaign setting)", "cta_position": "CTA position", "cta_color": "CTA colour",
    "dominant_hue_family": "Colour temperature", "hue_family": "Colour temperature",
    "background_hue_family": "Background colour temperature", "warm_share": "Warm colours",
    "cool_share": "Cool colours", "dominant_color_name": "Dominant colour", "background_color_name": "Background colour",
    "background_hue": "Background colour", "brightness": "Brightness", "contrast": "Contrast",
    "colorfulness": "Colourfulness", "saturation": "Saturation", "negative_space_ratio": "Empty space",
    "edge_density": "Visual detail", "background_uniformity": "Plain background",
    "salient_area_ratio": "Size of the main subject", "symmetry": "Symmetry", "product_kind": "Product depiction",
    "product": "Product shown", "product_category": "Product category", "background_style": "Background style",
    "headline_position": "Headline position", "headline_font": "Headline font", "format": "Format",
    "orientation": "Orientation", "file_format": "File format", "n_tokens": "Ad copy length",
    "top_tag": "Top image tag",
}
_FAMILY_OF = {attr: family for family, attrs in ATTRIBUTE_FAMILIES.items() for attr in attrs}
_NO_LEVELS = {"", "none", "nan", "false", "no", "other", "unknown"}


def attribute_family(attribute: str) -> str | None:
    """The declared family of an attribute column (a block prefix such as `layout_` is ignored), or None."""
    return _FAMILY_OF.get(attribute) or _FAMILY_OF.get(attribute.partition("_")[2])


def naming_priority(attribute: str, value: str) -> tuple:
    """Sort key for naming a group of indicators that measure one thing: a family's headline column
    first (face_present before face_area_ratio), a real level before `none`, object tags last."""
    family = attribute_family(attribute)
    order = ATTRIBUTE_FAMILIES[family].index(attribute) if family and attribute in ATTRIBUTE_FAMILIES[family] else 99
    return (attribute.startswith(TAG_PREFIX), str(value).lower() in _NO_LEVELS, family is None, order,
            attribute, str(value))


def describe_indicator(attribute: str, value: str) -> str:
    """Human name of one indicator `attribute = value` ("Faces in the creative", "Text coverage: heavy",
    "Brightness: high", "Image tagged 'web site'"). Unknown columns read as their spaced name."""
    value = str(value)
    if attribute.startswith(TAG_PREFIX):
        tag = attribute[len(TAG_PREFIX):].replace("_", " ")
        return f"Image tagged '{tag}'" if value == "true" else f"Image tag '{tag}': {value}"
    label = ATTRIBUTE_LABELS.get(attribute) or ATTRIBUTE_LABELS.get(attribute.partition("_")[2])
    label = label or attribute.replace("_", " ").capitalize()
    if value == "true":
        return label
    return f"{label}: {'none' if value == '' else value}"


class AttributeSources(dict):
    """Attribute column -> the block it came from (an attribute frame's `.attrs["sources"]`). Never changed
    after `attribute_frame` builds it, so a deep copy is the object itself: pandas deep-copies a frame's
    `attrs` into every frame and series derived from it, and the recommendations, the candidates' pair
    reasons and the forecast derive thousands (~47,000 copies in the demo's candidate assessment)."""

    def __deepcopy__(self, memo: dict) -> AttributeSources:
        return self


def attribute_frame(tables: Mapping[str, pd.DataFrame | None], prelaunch: pd.DataFrame | None = None,
                    max_levels: int = 12, min_tag_support: int = 5) -> pd.DataFrame:
    """creative_id + interpretable attribute columns, one row per creative seen in any source.

    tables: block name (visual, layout, cnn, ...) -> its embeddings table (or None when the
    block is unavailable). prelaunch: features.prelaunch (optional). The frame's
    `.attrs["sources"]` maps each attribute column to the block it came from.
    """
    pieces: list[tuple[str, pd.DataFrame]] = []
    for block, table in tables.items():
        if table is None or table.empty or "creative_id" not in table.columns:
            continue
        table = table.drop_duplicates("creative_id", keep="last")
        curated = [c for c in INTERPRETABLE.get(block, ()) if c in table.columns]
        if curated:
            table = table[["creative_id", *curated]]
        pieces.append((block, _block_attributes(table, max_levels, min_tag_support)))
    if prelaunch is not None and not prelaunch.empty:
        cols = [c for c in CONTEXT_ATTRIBUTES if c in prelaunch.columns]
        if cols:
            pieces.append(("context", prelaunch[["creative_id", *cols]].drop_duplicates("creative_id")
                           .set_index("creative_id")))
    if not pieces:
        out = pd.DataFrame({"creative_id": pd.Series(dtype="object")})
        out.attrs["sources"] = AttributeSources()
        return out
    seen: dict[str, int] = {}
    for _, frame in pieces:
        for c in frame.columns:
            seen[c] = seen.get(c, 0) + 1
    sources: dict[str, str] = {}
    renamed = []
    for block, frame in pieces:
        mapping = {c: (f"{block}_{c}" if seen[c] > 1 else c) for c in frame.columns}
        sources.update({new: block for new in mapping.values()})
        renamed.append(frame.rename(columns=mapping))
    out = pd.concat(renamed, axis=1, join="outer")
    out.index.name = "creative_id"
    out = out.reset_index()
    out.attrs["sources"] = AttributeSources(sources)
    return out


def _block_attributes(table: pd.DataFrame, max_levels: int, min_tag_support: int) -> pd.DataFrame:
    frame = table.set_index(table["creative_id"].astype(str))
    out: dict[str, pd.Series] = {}
    for col in frame.columns:
        if col in BOOKKEEPING or col.endswith(_EXCLUDED_SUFFIXES) or col in ("ocr_text", "palette", "text_boxes"):
            continue
        s = frame[col]
        if s.isna().all():
            continue
        first = s.dropna().iloc[0]
        if isinstance(first, (list, tuple, np.ndarray)) or (col == "tags" and isinstance(first, str)):
            if col == "tags" or all(isinstance(v, str) for v in list(first)):
                out.update(_tag_columns(s, min_tag_support))
        elif s.dtype == bool or pd.api.types.is_numeric_dtype(s):
            out[col] = s
        elif s.dropna().astype(str).nunique() <= max_levels:
            out[col] = s.astype("object")
    return pd.DataFrame(out, index=frame.index)


def _tag_columns(s: pd.Series, min_support: int) -> dict[str, pd.Series]:
    """A column of tag lists (or JSON list strings, or [{label, score}] records) -> tag_<name> booleans."""
    parsed = s.map(_parse_tags)
    counts: dict[str, int] = {}
    for tags in parsed.dropna():
        for t in set(tags):
            counts[t] = counts.get(t, 0) + 1
    return {f"{TAG_PREFIX}{_slug(t)}": parsed.map(lambda tags, t=t: None if tags is None else t in tags)
            for t, n in sorted(counts.items()) if n >= min_support}


def _parse_tags(value: object) -> list[str] | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return [v.strip() for v in value.strip("[]").split(",") if v.strip()]
    tags = []
    for item in list(value):
        if isinstance(item, dict):
            item = item.get("label") or item.get("tag") or item.get("name")
        if item is not None:
            tags.append(str(item))
    return tags


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in text.lower()).strip("_")

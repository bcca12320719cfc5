"""The columns each block derives itself, next to its vector (plain names, no heavy imports).

The block's encoder produces them (clip.py / cnn.py tags, text.py token counts, visual.py and
layout.py extractors) and the decision-time check of `embeddings.<block>` allows exactly these
(creative_dag/blocks.py, BlockSpec.derived_columns). Kept here, free of OpenCV and torch, so
loading the Dagster definitions does not import them.
"""

from __future__ import annotations

# clip (zero-shot concepts) and cnn (ImageNet classes)
TAG_COLUMNS: tuple[str, ...] = ("top_tag", "tags", "tag_scores")
# text: the composed ad text, its hash (the cache key) and the tokenizer's length
TEXT_COLUMNS: tuple[str, ...] = ("text", "text_sha256", "n_tokens")

# VisualFeatureExtractor.transform, in order
VISUAL_COLUMNS: tuple[str, ...] = (
    "image_width", "image_height", "aspect_ratio", "log_aspect_ratio",
    "dominant_color_name", "dominant_hue_family", "dominant_color_hex",
    "dominant_color_r", "dominant_color_g", "dominant_color_b", "dominant_color_share",
    "dominant_color_lab_l", "dominant_color_lab_a", "dominant_color_lab_b", "palette",
    "warm_share", "cool_share", "neutral_share", "top_color_names",
    "brightness", "contrast", "saturation", "colorfulness",
    "edge_density", "texture_entropy", "sharpness", "symmetry", "negative_space_ratio",
    "visual_mass_x", "visual_mass_y", "thirds_distance",
    "salient_area_ratio", "saliency_x", "saliency_y",
    "background_color_name", "background_hue_family", "background_color_hex",
    "background_uniformity", "background_warm_share", "background_cool_share",
    "background_neutral_share", "background_color_lab_l", "background_color_lab_a", "background_color_lab_b",
)

# LayoutExtractor.transform, in order
LAYOUT_COLUMNS: tuple[str, ...] = (
    "ocr_text", "text_boxes", "word_count", "log_word_count", "text_present", "text_line_count",
    "text_area_ratio",
    "text_position", "largest_text_height_ratio", "text_center_x", "text_center_y",
    "text_coverage_class", "cta_detected", "cta_text", "cta_position", "cta_box",
    "cta_center_x", "cta_center_y", "face_count", "face_present", "face_area_ratio",
    "face_position", "face_center_x", "face_center_y", "face_box",
)

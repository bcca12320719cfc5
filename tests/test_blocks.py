"""The block registry (creative_dag/blocks.py, BLOCK_SPECS): one entry per embedding block, read by
the loader, the encoder assets and their checks."""

from __future__ import annotations

import subprocess
import sys

import pytest

from creative_dag.blocks import (
    BLOCK_SPECS,
    CLIP,
    CNN,
    EMBEDDING_BLOCKS,
    IMAGE_INPUT,
    LAYOUT,
    TEXT,
    TEXT_INPUT,
    VISUAL,
    block_spec,
)
from creative_dag.encoders.base import ModelUnavailable
from creative_dag.resources.models import EncoderSettings, block_model_id, load_block


def test_the_registry_covers_exactly_the_embedding_blocks():
    assert tuple(BLOCK_SPECS) == EMBEDDING_BLOCKS
    for name, spec in BLOCK_SPECS.items():
        assert spec.name == name
        assert spec.description and "duckdb" in spec.kinds
        assert spec.reads in (IMAGE_INPUT, TEXT_INPUT)
        assert set(spec.reads_blocks) <= set(EMBEDDING_BLOCKS) - {name}
    assert BLOCK_SPECS[TEXT].reads == TEXT_INPUT and BLOCK_SPECS[TEXT].reads_blocks == (LAYOUT,)
    assert BLOCK_SPECS[TEXT].key_column == "text_sha256" and BLOCK_SPECS[CLIP].key_column == "sha256"


def test_model_ids_for_default_and_configured_settings():
    defaults = EncoderSettings()
    for block, spec in BLOCK_SPECS.items():
        model_id = spec.model_id(defaults)
        assert isinstance(model_id, str) and model_id
        assert block_model_id(block, defaults) == model_id
    assert block_model_id(CNN, EncoderSettings(resnet50_weights="r50.pth")) == "torchvision/resnet50"
    assert block_model_id(CNN, defaults) == "timm/tf_efficientnet_lite0"
    assert block_model_id(LAYOUT, EncoderSettings(florence2_model="/models/Florence-2-base")) == "florence2:Florence-2-base"
    assert block_model_id(LAYOUT, EncoderSettings(ocr_backend="rapidocr")) == "rapidocr-ppocrv4"
    assert block_model_id(TEXT, EncoderSettings(text_model="org/model")) == "org/model"
    assert block_model_id("context", defaults) == "context"  # not an encoder block: its own name


def test_derived_columns_are_what_the_checks_allow():
    from creative_dag.checks.encoders import _attribute_columns
    from creative_dag.encoders.layout import LayoutExtractor
    from creative_dag.encoders.visual import VisualFeatureExtractor

    expected = {
        CLIP: ("top_tag", "tags", "tag_scores"),
        CNN: ("top_tag", "tags", "tag_scores"),
        TEXT: ("text", "text_sha256", "n_tokens"),
        VISUAL: tuple(VisualFeatureExtractor.output_columns()),
        LAYOUT: tuple(LayoutExtractor.output_columns()),
    }
    for block, spec in BLOCK_SPECS.items():
        assert spec.derived_columns == expected[block]
        assert _attribute_columns(block) == expected[block]
    assert _attribute_columns("context") == ()


def test_an_unknown_block_is_a_clear_error():
    with pytest.raises(ModelUnavailable, match=r"unknown block 'nope'; blocks with encoders: clip, cnn, visual, "
                                               r"layout, text"):
        load_block("nope", EncoderSettings())
    with pytest.raises(KeyError, match="unknown block 'nope'"):
        block_spec("nope")
    assert block_spec(VISUAL) is BLOCK_SPECS[VISUAL]


def test_the_registry_imports_no_model_libraries():
    code = ("import sys; from creative_dag.blocks import BLOCK_SPECS; "
            "[s.derived_columns for s in BLOCK_SPECS.values()]; "
            "print(sorted(m for m in ('torch', 'transformers', 'cv2', 'easyocr', 'dagster') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_the_encoder_assets_and_checks_follow_the_registry():
    from creative_dag.assets.encoders import BLOCK_ASSETS
    from creative_dag.catalog import embedding_table
    from creative_dag.checks.encoders import ENCODER_CHECKS

    assert list(BLOCK_ASSETS) == list(BLOCK_SPECS)
    for block, asset in BLOCK_ASSETS.items():
        spec, key = BLOCK_SPECS[block], embedding_table(block).key
        assert asset.key == key
        assert asset.specs_by_key[key].description == spec.description
        assert set(asset.specs_by_key[key].kinds) == set(spec.kinds)
        assert {k for k in asset.keys_by_input_name.values()} >= {embedding_table(b).key for b in spec.reads_blocks}
    checked = {(k.asset_key, k.name) for c in ENCODER_CHECKS for k in c.check_keys}
    assert checked == {(embedding_table(b).key, n) for b in BLOCK_SPECS
                       for n in ("vectors_valid", "decision_time_columns", "embedded_every_creative")}

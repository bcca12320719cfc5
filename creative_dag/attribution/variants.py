"""Edited copies of sampled creatives, encoded by the same block encoders as the originals.

Each original is decoded at full size and edited (`edits.apply_edit`); the edited pixels go to the
encoders as arrays, and their sha256 is the key, so the shared embedding cache serves an edit that was
encoded before (a rerun of the attribution costs only the model fits). The edits are made on what the
layout block detected on the original (OCR boxes, CTA, face), read from `embeddings.layout`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np
import pandas as pd

from creative_dag.attribution import edits as edits_module
from creative_dag.attribution.edits import EDIT_NAMES, Detected, apply_edit
from creative_dag.attribution.effects import VARIANT_COLUMNS, variant_id
from creative_dag.encoders.colors import ColorNamer
from creative_dag.encoders.decode import ImageDecodeError, decode_image
from creative_dag.kept_entries import KeptStrings


@dataclass
class Variants:
    """The edited images of a sample. frame: variant_id, creative_id, edit, sha256 (of the edited pixels),
    launch_date; skipped: creative_id -> why it was not edited (unreadable image); pending: the creatives
    with edits still to make (`encode_variants` makes, encodes and adds them to frame); made: edits made by
    `encode_variants` in this run. An edit found in the index whose vectors are all cached is in frame from
    the start and is never made again."""

    frame: pd.DataFrame
    skipped: dict[str, str] = field(default_factory=dict)
    pending: list[_Plan] = field(default_factory=list)
    index: VariantIndex | None = None
    made: int = 0

    @property
    def to_make(self) -> int:
        """Edits still to be made (some may turn out not to apply to their image)."""
        return sum(len(plan.to_make) for plan in self.pending)


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
class VariantIndex(KeptStrings):
    """Which PNG an edit of an image made before: (original sha256, edit, what the layout block detected,
    edit code) -> the edited image's sha256 ("" = the edit does not apply). With the embedding cache it
    lets a daily run skip decoding, editing and PNG-encoding the ~270 edits whose vectors are cached (39 s of
    the attribution's 52 s on the demo). JSON beside the embedding cache; a save keeps the entries used."""

    salt: str = field(default_factory=edit_code_digest)
    what: ClassVar[str] = "variant index"

    def key(self, image_sha256: str, edit: str, detected: Detected) -> str:
        return hashlib.blake2b(f"{self.salt}|{image_sha256}|{edit}|{detected!r}".encode(), digest_size=16).hexdigest()


@dataclass
class _Plan:
    """One creative to edit: its row, image bytes, what the layout block detected on it and the index key of
    each edit; `skipped` says why it cannot be edited (then data is None)."""

    item: Any
    data: bytes | None = None
    detected: Detected | None = None
    keys: dict[str, str] = field(default_factory=dict)
    skipped: str | None = None
    to_make: list[str] = field(default_factory=list)


def plan_variants(items: pd.DataFrame, read_bytes: Callable[[str], bytes], layout: pd.DataFrame | None,
                  edits: Sequence[str] = EDIT_NAMES, index: VariantIndex | None = None,
                  cached: Callable[[Sequence[str]], set[str]] | None = None) -> Variants:
    """Which edits of the creatives in `items` (creative_id, image_path, launch_date) are to be made.

    index + cached (edited sha256s -> those every block has in the embedding cache): an edit made before
    whose vectors are all cached is taken from the index (a row of frame) and never decoded or edited again;
    the rest are `pending` for `encode_variants`."""
    index = index or VariantIndex(None, salt="")
    plans = _plans(items, read_bytes, layout, edits, index)
    known = {index.get(k) for plan in plans for k in plan.keys.values()} - {None, NOT_APPLICABLE}
    reusable = cached(sorted(known)) if cached is not None and known else set()
    rows, skipped, pending = [], {}, []
    for plan in plans:
        item, cid = plan.item, str(plan.item.creative_id)
        if plan.skipped is not None:
            skipped[cid] = plan.skipped
            continue
        for edit in edits:
            before = index.get(plan.keys[edit])
            if before == NOT_APPLICABLE or (before is not None and before in reusable):
                index.put(plan.keys[edit], before)
                if before:
                    rows.append(_row(cid, edit, before, item.launch_date))
            else:
                plan.to_make.append(edit)
        if plan.to_make:
            pending.append(plan)
    return Variants(pd.DataFrame(rows, columns=list(VARIANT_COLUMNS)), skipped, pending, index)


def _row(creative_id: str, edit: str, sha: str, launch_date: Any) -> dict[str, Any]:
    return {"variant_id": variant_id(creative_id, edit), "creative_id": creative_id, "edit": edit, "sha256": sha,
            "launch_date": launch_date}


def pixels_sha256(image: np.ndarray) -> str:
    """Content key of an edited image: its shape and RGB pixels (what every block reads)."""
    digest = hashlib.sha256(f"rgb8:{image.shape[0]}x{image.shape[1]}|".encode())
    digest.update(np.ascontiguousarray(image, dtype=np.uint8).data)
    return digest.hexdigest()


def _edit(plan: _Plan, image: np.ndarray, index: VariantIndex,
          namer: ColorNamer) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """Make a plan's pending edits of its decoded image: their rows and edited images (variant_id -> RGB)."""
    cid, rows, images = str(plan.item.creative_id), [], {}
    for edit in plan.to_make:
        edited = apply_edit(edit, image, plan.detected, namer)
        if edited is None:
            index.put(plan.keys[edit], NOT_APPLICABLE)
            continue
        sha = pixels_sha256(edited)
        index.put(plan.keys[edit], sha)
        row = _row(cid, edit, sha, plan.item.launch_date)
        rows.append(row)
        images[row["variant_id"]] = edited
    return rows, images


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
                    log: Callable[[str], Any] | None = None, chunk_creatives: int = 2) -> dict[str, pd.DataFrame]:
    """block -> embeddings-like frame of the edited images (creative_id = variant_id), per loaded encoder.

    The pending edits are made a few creatives at a time (`chunk_creatives`) and handed to the encoders as
    arrays: no edited image is written to a file format and decoded again (a lossless PNG of a 1080 x 1920
    edit took ~90 ms to write and ~30 ms to read per block: most of the attribution's image work), and only
    one chunk's images are held at once (~6 MB each at 1080 x 1920). Their rows join `variants.frame`; a
    creative whose image cannot be decoded joins `variants.skipped` instead."""
    from creative_dag.encoders.pipeline import encode_images

    parts: dict[str, list[pd.DataFrame]] = {block: [] for block in encoders}
    failed = dict.fromkeys(encoders, 0)
    reused = variants.frame
    if len(reused):  # cached in every block (plan_variants checked): no image is read
        items = _encode_items(reused)
        for block, encoder in encoders.items():
            run = encode_images(encoder, items, _not_read, cache, batch_size=batch_size)
            parts[block].append(run.frame)
            failed[block] += run.failed
    index = variants.index or VariantIndex(None, salt="")
    namer = ColorNamer()
    expected = variants.to_make
    made: list[pd.DataFrame] = []
    # A block that reads on worker processes (the layout block's OCR) reads one chunk while this thread
    # edits the next one and runs the other blocks on it; at most one chunk waits for it, which bounds memory.
    behind = {b for b, e in encoders.items() if getattr(e, "parallel", None) is not None}
    waiting: list[tuple[str, Future]] = []

    def collect() -> None:
        for block, future in waiting:
            run = future.result()
            parts[block].append(run.frame)
            failed[block] += run.failed
        waiting.clear()

    step = max(1, chunk_creatives)
    with ExitStack() as stack:
        for encoder in encoders.values():  # e.g. the layout block's OCR worker processes, started once
            parallel = getattr(encoder, "parallel", None)
            if parallel is not None and expected:
                stack.enter_context(parallel(expected, log))
        reader = stack.enter_context(ThreadPoolExecutor(max_workers=1)) if behind and expected else None
        for start in range(0, len(variants.pending), step):
            rows, images = [], {}
            for plan in variants.pending[start:start + step]:
                try:
                    image = decode_image(plan.data, name=f"creative {plan.item.creative_id} image {plan.item.image_path}")
                except (ImageDecodeError, ValueError) as exc:
                    cid = str(plan.item.creative_id)
                    variants.skipped[cid] = f"image {plan.item.image_path} unreadable: {exc}"
                    reused = reused[reused["creative_id"].astype(str) != cid]
                    continue
                plan_rows, plan_images = _edit(plan, image, index, namer)
                rows += plan_rows
                images.update(plan_images)
            if not rows:
                continue
            chunk = pd.DataFrame(rows, columns=list(VARIANT_COLUMNS))
            items = _encode_items(chunk)
            for block, encoder in encoders.items():
                if reader is not None and block in behind:
                    continue
                run = encode_images(encoder, items, _not_read, cache, batch_size=batch_size, decoded=images)
                parts[block].append(run.frame)
                failed[block] += run.failed
            collect()
            for block in behind if reader is not None else ():
                waiting.append((block, reader.submit(encode_images, encoders[block], items, _not_read, cache,
                                                     batch_size=batch_size, decoded=images)))
            made.append(chunk)
            if log:
                log(f"element attribution: {sum(map(len, made))} edited images made "
                    f"({min(start + step, len(variants.pending))}/{len(variants.pending)} creatives)")
        collect()
    variants.made = sum(map(len, made))
    variants.frame = pd.DataFrame([*reused.to_dict("records"), *(r for m in made for r in m.to_dict("records"))],
                                  columns=list(VARIANT_COLUMNS))
    keep = set(variants.frame["variant_id"])
    out = {}
    for block in encoders:
        frames = [f for f in parts[block] if len(f)]
        frame = pd.concat(frames, ignore_index=True) if frames else (parts[block][0] if parts[block] else None)
        if frame is None:
            continue
        out[block] = frame[frame["creative_id"].isin(keep)].reset_index(drop=True)
        if failed[block] and log:
            log(f"element attribution: {failed[block]} edited image(s) failed in block {block}")
    return out


def _encode_items(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"creative_id": frame["variant_id"], "sha256": frame["sha256"],
                         "launch_date": frame["launch_date"], "image_path": frame["variant_id"]})


def _not_read(path: str) -> bytes:
    """An edited image is never read from bytes: it is in the embedding cache or handed over decoded."""
    raise OSError(f"edited image {path} is neither cached nor in memory")


def image_items(prelaunch: pd.DataFrame, ids: Sequence[str]) -> pd.DataFrame:
    """creative_id, image_path, launch_date of `ids` from features.prelaunch / raw.creatives."""
    frame = prelaunch.drop_duplicates("creative_id", keep="last")
    frame = frame[frame["creative_id"].astype(str).isin(set(ids))]
    return frame[["creative_id", "image_path", "launch_date"]].reset_index(drop=True)

"""Counterfactual image edits for element attribution (OpenCV only).

Each edit takes a decoded RGB image and what the layout block detected on it (`Detected`: OCR
boxes, the CTA button, the largest face, in image pixels) and returns the edited image, or None
when the edit does not apply to this creative (no face to remove, already in that hue family,
nothing salient to crop to). The edits change one visible element and leave the rest alone, so
the forecast's change on the edited image is the model's view of that element (Dutt et al.'s
ANVIL idea, with classic image operations instead of a generative editor).

`EDITS` names and describes them; `apply_edit(name, image, detected)` runs one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import pandas as pd

from creative_dag.encoders.colors import (
    COLOR_FAMILIES,
    COLOR_NAMES,
    HUE_FAMILIES,
    ColorNamer,
)
from creative_dag.encoders.saliency import spectral_residual_saliency
from creative_dag.encoders.visual import BORDER_FRACTION, border_pixels

Box = tuple[float, float, float, float]  # x, y, w, h in image pixels

# Canonical hue (degrees) an area is moved to for each chromatic family.
FAMILY_HUE = {"warm": 22.0, "cool": 215.0}
NEUTRAL_SATURATION = 0.06
MIN_CHROMA_SATURATION = 0.55  # a neutral area coloured into a family gets at least this saturation


@dataclass(frozen=True)
class Detected:
    """What the layout block found on one image (empty when the block did not run)."""

    text_boxes: list[Box] = field(default_factory=list)
    cta_box: Box | None = None
    face_box: Box | None = None

    @classmethod
    def from_layout_row(cls, row: Mapping[str, Any] | None) -> Detected:
        """From an `embeddings.layout` row (text_boxes JSON records, cta_box / face_box JSON [x, y, w, h])."""
        if row is None:
            return cls()
        records = _json(row.get("text_boxes"))
        records = records if isinstance(records, list) else []
        return cls(text_boxes=[(float(b["x"]), float(b["y"]), float(b["w"]), float(b["h"]))
                               for b in records if isinstance(b, dict) and {"x", "y", "w", "h"} <= set(b)],
                   cta_box=_box(row.get("cta_box")), face_box=_box(row.get("face_box")))


def _json(value: Any) -> Any:
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value


def _box(value: Any) -> Box | None:
    parsed = _json(value)
    if not isinstance(parsed, (list, tuple)) or len(parsed) != 4:
        return None
    x, y, w, h = (float(v) for v in parsed)
    return (x, y, w, h) if w > 0 and h > 0 else None


# -- colour -----------------------------------------------------------------------------------
def dominant_area(image: np.ndarray, namer: ColorNamer) -> tuple[np.ndarray, str]:
    """(mask, hue family) of the background colour (the modal colour of the border band, as the visual
    block reads it): all pixels of its family when it is chromatic (a blue background with teal shading is
    one cool area), only that colour when it is neutral (white text on a grey background are not one area)."""
    names = namer.name_indices(image)
    border = border_pixels(image, BORDER_FRACTION)
    border_names = namer.name_indices(border.reshape(-1, 1, 3)).ravel()
    top = int(np.argmax(np.bincount(border_names, minlength=len(COLOR_NAMES))))
    family = COLOR_FAMILIES[COLOR_NAMES[top]]
    if family == "neutral":
        return names == top, family
    return namer.family_indices(names) == HUE_FAMILIES.index(family), family


def shift_hue_family(image: np.ndarray, family: str, namer: ColorNamer) -> np.ndarray | None:
    """The background colour's area moved into `family` (warm -> orange, cool -> blue, neutral ->
    desaturated), shading kept; None when the background is already in that family."""
    mask, current = dominant_area(image, namer)
    if current == family:
        return None
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV_FULL).astype(np.float32)  # H, S, V in 0..255
    h, s = hsv[..., 0], hsv[..., 1]
    if family == "neutral":
        s[mask] = np.minimum(s[mask], NEUTRAL_SATURATION * 255)
    else:
        target = FAMILY_HUE[family] / 360.0 * 255.0
        if current == "neutral":
            h[mask] = target
            s[mask] = np.maximum(s[mask], MIN_CHROMA_SATURATION * 255)
        else:  # keep the area's hue variation around its mean, centred on the target
            mean = _circular_mean(h[mask])
            h[mask] = np.mod(h[mask] - mean + target, 256.0)
        hsv[..., 2][mask] = np.clip(hsv[..., 2][mask], 0.3 * 255, 255)  # near-black cannot carry a hue
    return cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2RGB_FULL)


def _circular_mean(h: np.ndarray) -> float:
    angle = h / 256.0 * 2 * np.pi
    return float(np.mod(np.arctan2(np.sin(angle).mean(), np.cos(angle).mean()), 2 * np.pi) / (2 * np.pi) * 256.0)


# -- removals ---------------------------------------------------------------------------------
def _mask(shape: tuple[int, ...], boxes: list[Box], pad: float) -> np.ndarray:
    mask = np.zeros(shape[:2], np.uint8)
    for x, y, w, h in boxes:
        p = pad * min(w, h)
        x0, y0 = max(int(x - p), 0), max(int(y - p), 0)
        x1, y1 = min(int(np.ceil(x + w + p)), shape[1]), min(int(np.ceil(y + h + p)), shape[0])
        mask[y0:y1, x0:x1] = 255
    return mask


def _inside(box: Box, outer: Box) -> bool:
    cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
    return outer[0] <= cx <= outer[0] + outer[2] and outer[1] <= cy <= outer[1] + outer[3]


def remove_text(image: np.ndarray, detected: Detected) -> np.ndarray | None:
    """The OCR'd text (not the CTA's label) inpainted away; None without text."""
    boxes = [b for b in detected.text_boxes if detected.cta_box is None or not _inside(b, detected.cta_box)]
    if not boxes:
        return None
    return cv2.inpaint(image, _mask(image.shape, boxes, pad=0.15), 5, cv2.INPAINT_TELEA)


def remove_cta(image: np.ndarray, detected: Detected) -> np.ndarray | None:
    """The CTA button (and its label) inpainted away; None without a detected CTA."""
    if detected.cta_box is None:
        return None
    return cv2.inpaint(image, _mask(image.shape, [detected.cta_box], pad=0.1), 7, cv2.INPAINT_TELEA)


def remove_face(image: np.ndarray, detected: Detected) -> np.ndarray | None:
    """The face (box grown to cover the head) pixelated and blurred past recognition; None without a face."""
    if detected.face_box is None:
        return None
    x, y, w, h = detected.face_box
    grow = 0.35
    x0, y0 = max(int(x - grow * w), 0), max(int(y - grow * h), 0)
    x1, y1 = min(int(x + (1 + grow) * w), image.shape[1]), min(int(y + (1 + grow) * h), image.shape[0])
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    out = image.copy()
    region = out[y0:y1, x0:x1]
    small = cv2.resize(region, (max(2, (x1 - x0) // 12), max(2, (y1 - y0) // 12)), interpolation=cv2.INTER_AREA)
    coarse = cv2.resize(small, (x1 - x0, y1 - y0), interpolation=cv2.INTER_NEAREST)
    out[y0:y1, x0:x1] = cv2.GaussianBlur(coarse, (0, 0), max(2.0, (x1 - x0) / 10))
    return out


# -- light ------------------------------------------------------------------------------------
def scale_brightness(image: np.ndarray, factor: float) -> np.ndarray:
    """Lightness (L of Lab) times `factor`, colours kept."""
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float32)
    lab[..., 0] = np.clip(lab[..., 0] * factor, 0, 255)
    return cv2.cvtColor(lab.astype(np.uint8), cv2.COLOR_LAB2RGB)


def scale_contrast(image: np.ndarray, factor: float) -> np.ndarray:
    """Lightness spread around its mean times `factor`."""
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float32)
    mean = float(lab[..., 0].mean())
    lab[..., 0] = np.clip((lab[..., 0] - mean) * factor + mean, 0, 255)
    return cv2.cvtColor(lab.astype(np.uint8), cv2.COLOR_LAB2RGB)


# -- framing ----------------------------------------------------------------------------------
def crop_to_subject(image: np.ndarray, max_area: float = 0.8) -> np.ndarray | None:
    """Cropped to the salient region (spectral residual saliency, 10 % margin); None when that region
    covers more than `max_area` of the frame (nothing to crop to)."""
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    sal = spectral_residual_saliency(gray)
    if not sal.any():
        return None
    ys, xs = np.nonzero(sal > 3.0 * sal.mean())
    if not len(xs):
        return None
    sy, sx = image.shape[0] / sal.shape[0], image.shape[1] / sal.shape[1]
    x0, x1, y0, y1 = xs.min() * sx, (xs.max() + 1) * sx, ys.min() * sy, (ys.max() + 1) * sy
    mx, my = 0.1 * (x1 - x0), 0.1 * (y1 - y0)
    x0, y0 = max(int(x0 - mx), 0), max(int(y0 - my), 0)
    x1, y1 = min(int(x1 + mx), image.shape[1]), min(int(y1 + my), image.shape[0])
    if (x1 - x0) * (y1 - y0) > max_area * image.shape[0] * image.shape[1] or min(x1 - x0, y1 - y0) < 32:
        return None
    return np.ascontiguousarray(image[y0:y1, x0:x1])


@dataclass(frozen=True)
class Edit:
    """name: column value in marts.element_attribution; label: what a marketer reads;
    element: the attribute family the edit acts on (marts.attributes.ATTRIBUTE_FAMILIES);
    run: (image, detected, colour namer) -> edited image or None."""

    name: str
    label: str
    element: str
    run: Callable[[np.ndarray, Detected, ColorNamer], np.ndarray | None]


EDITS: dict[str, Edit] = {e.name: e for e in (
    Edit("hue_warm", "Background colour made warm (orange)", "colour_temperature",
         lambda im, d, n: shift_hue_family(im, "warm", n)),
    Edit("hue_cool", "Background colour made cool (blue)", "colour_temperature",
         lambda im, d, n: shift_hue_family(im, "cool", n)),
    Edit("hue_neutral", "Background colour made neutral (desaturated)", "colour_temperature",
         lambda im, d, n: shift_hue_family(im, "neutral", n)),
    Edit("remove_text", "Removing the text on the image", "text", lambda im, d, n: remove_text(im, d)),
    Edit("remove_cta", "Removing the call-to-action button", "cta", lambda im, d, n: remove_cta(im, d)),
    Edit("remove_face", "Removing the face (blurred out)", "faces", lambda im, d, n: remove_face(im, d)),
    Edit("brighter", "Brightness +25 %", "light", lambda im, d, n: scale_brightness(im, 1.25)),
    Edit("darker", "Brightness -25 %", "light", lambda im, d, n: scale_brightness(im, 0.75)),
    Edit("more_contrast", "Contrast +40 %", "light", lambda im, d, n: scale_contrast(im, 1.4)),
    Edit("less_contrast", "Contrast -40 %", "light", lambda im, d, n: scale_contrast(im, 0.6)),
    Edit("crop_to_subject", "Cropped to the main subject", "clutter", lambda im, d, n: crop_to_subject(im)),
)}
EDIT_NAMES: tuple[str, ...] = tuple(EDITS)


def apply_edit(name: str, image: np.ndarray, detected: Detected | None = None,
               namer: ColorNamer | None = None) -> np.ndarray | None:
    """Run edit `name` on an RGB uint8 image; None when it does not apply. Unknown names raise ValueError.
    Pass one `ColorNamer` when editing many images (building its lookup table takes ~50 ms)."""
    if name not in EDITS:
        raise ValueError(f"unknown edit {name!r}; edits are {', '.join(EDIT_NAMES)}")
    out = EDITS[name].run(image, detected or Detected(), namer or ColorNamer())
    if out is None or (out.shape == image.shape and np.array_equal(out, image)):
        return None
    return out

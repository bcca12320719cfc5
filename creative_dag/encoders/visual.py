"""The `visual` block: interpretable colour, composition and texture features (OpenCV + numpy).

Every feature is a named column that recommendations and reports can speak in
("warm backgrounds", "high negative space"); docs/attributes.md documents each one
(meaning, unit, range, computation). The block vector is those numeric columns
standardised with FIXED scales (`VISUAL_SCALES`, not per-batch statistics, so
vectors from different daily partitions are comparable) and L2-normalised.

All features are computed on a copy downscaled to `working_size` px on the long
side, which makes them 4-10x cheaper than at full size and independent of the
upload resolution.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import ClassVar

import cv2
import numpy as np
import pandas as pd

from creative_dag.encoders.colors import (
    COLOR_NAMES,
    HUE_FAMILIES,
    ColorNamer,
    family_of,
    name_rgb,
    rgb_to_hex,
)
from creative_dag.encoders.columns import VISUAL_COLUMNS
from creative_dag.encoders.saliency import saliency_summary, spectral_residual_saliency

# (center, scale) per vector column: z = clip((x - center) / scale, -4, 4). Centers/scales are
# typical values / spreads on rendered ad creatives and photos (measured once, then frozen);
# changing them changes every vector, so bump VisualFeatureExtractor.model_version with them.
VISUAL_SCALES: dict[str, tuple[float, float]] = {
    "brightness": (0.5, 0.2),
    "contrast": (0.22, 0.1),
    "saturation": (0.35, 0.2),
    "colorfulness": (50.0, 30.0),
    "edge_density": (0.05, 0.04),
    "texture_entropy": (3.5, 1.5),
    "sharpness": (2.5, 0.8),
    "symmetry": (0.88, 0.06),
    "negative_space_ratio": (0.5, 0.25),
    "visual_mass_x": (0.5, 0.08),
    "visual_mass_y": (0.5, 0.08),
    "thirds_distance": (0.5, 0.25),
    "salient_area_ratio": (0.1, 0.08),
    "saliency_x": (0.5, 0.1),
    "saliency_y": (0.5, 0.1),
    "warm_share": (0.33, 0.3),
    "cool_share": (0.33, 0.3),
    "neutral_share": (0.33, 0.3),
    "dominant_color_share": (0.4, 0.2),
    "dominant_color_lab_l": (55.0, 25.0),
    "dominant_color_lab_a": (0.0, 30.0),
    "dominant_color_lab_b": (0.0, 30.0),
    "background_color_lab_l": (55.0, 25.0),
    "background_color_lab_a": (0.0, 30.0),
    "background_color_lab_b": (0.0, 30.0),
    "background_uniformity": (0.6, 0.3),
    "log_aspect_ratio": (0.0, 0.4),
}

BORDER_FRACTION = 0.06  # width of the border band that estimates the background, per side
PALETTE_SIZE = 5  # k of the Lab k-means for dominant colours
KMEANS_PIXELS = 128  # long side (px) of the copy clustered for dominant colours
KMEANS_ITERATIONS = 15
CANNY_LOW, CANNY_HIGH = 100, 200
NEGATIVE_SPACE_CELL = 16  # px cells at working size
NEGATIVE_SPACE_MAX_STD = 6.0  # gray levels (0-255): a cell flatter than this, with no edge, is empty
SYMMETRY_WIDTH = 64
GLCM_LEVELS = 16
THIRDS_POINTS = np.array([[x, y] for x in (1 / 3, 2 / 3) for y in (1 / 3, 2 / 3)])
THIRDS_MAX_DISTANCE = float(np.hypot(1 / 3, 1 / 3))  # corner to nearest intersection


class VisualFeatureExtractor:
    """Interpretable visual features of decoded images (one row per image).

    Parameters
    ----------
    working_size: long side (px) of the downscaled copy every feature is computed on.

    `transform(images)` -> DataFrame with the columns listed in docs/attributes.md;
    `vectorize(frame)` -> (n, len(vector_columns)) float32, rows L2-normalised.
    """

    model_id = "opencv-visual"
    model_version = "1.0.0"
    vector_columns: ClassVar[list[str]] = list(VISUAL_SCALES)

    def __init__(self, working_size: int = 512) -> None:
        if working_size < 32:
            raise ValueError(f"working_size must be >= 32 px, got {working_size}")
        self.working_size = int(working_size)
        self._namer = ColorNamer()

    # ------------------------------------------------------------------ public
    def transform(self, images: Sequence[np.ndarray], ids: Sequence[str] | None = None) -> pd.DataFrame:
        """Features of each image.

        images: RGB uint8 arrays (H, W, 3), already decoded and EXIF-transposed
        (grayscale (H, W) and RGBA (H, W, 4) are converted). ids: optional names
        used in error messages (e.g. creative ids). Returns one row per image, in order.
        """
        return self.transform_working_copies(self.working_copies(images, ids))

    def settings(self) -> dict:
        """The constructor's arguments: another process builds the same extractor from them."""
        return {"working_size": self.working_size}

    def working_copies(self, images: Sequence[np.ndarray],
                       ids: Sequence[str] | None = None) -> list[tuple[np.ndarray, int, int]]:
        """(the copy the features are computed on, original width, original height) of each image.

        Everything `transform` computes comes from this copy and the original size, so worker
        processes (creative_dag/encoders/extractor_pool.py) are sent the copy, not the full image."""
        return working_copies(images, self.working_size, ids)

    def transform_working_copies(self, copies: Sequence[tuple[np.ndarray, int, int]]) -> pd.DataFrame:
        """`transform` of images already reduced by `working_copies`: one row per copy, in order."""
        rows = [self._features(small, width, height) for small, width, height in copies]
        if not rows:
            return pd.DataFrame(columns=self.output_columns())
        return pd.DataFrame(rows, columns=self.output_columns())

    def vectorize(self, frame: pd.DataFrame) -> np.ndarray:
        """Block vectors from a `transform` frame: (n, d) float32, each row L2-normalised.

        Each column is standardised with the fixed (center, scale) of VISUAL_SCALES and
        clipped to [-4, 4]; a row that standardises to all zeros stays all zeros.
        """
        return standardize_and_normalize(frame, VISUAL_SCALES, "visual")

    @staticmethod
    def output_columns() -> list[str]:
        """All columns `transform` returns, in order."""
        return list(VISUAL_COLUMNS)

    # ----------------------------------------------------------------- private
    def _features(self, small: np.ndarray, width: int, height: int) -> dict:
        gray = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
        row: dict = {
            "image_width": int(width),
            "image_height": int(height),
            "aspect_ratio": float(width / height),
            "log_aspect_ratio": float(np.log(width / height)),
        }
        row.update(self._colour_features(small))
        row.update(_tone_features(small, gray))
        edges = cv2.Canny(cv2.GaussianBlur(gray, (3, 3), 0), CANNY_LOW, CANNY_HIGH)
        row["edge_density"] = float((edges > 0).mean())
        row["texture_entropy"] = _cooccurrence_entropy(gray)
        row["sharpness"] = float(np.log10(1.0 + cv2.Laplacian(gray, cv2.CV_64F).var()))
        row["symmetry"] = _symmetry(gray)
        row["negative_space_ratio"] = _negative_space(gray, edges)
        mass_x, mass_y = _visual_mass(gray)
        row["visual_mass_x"], row["visual_mass_y"] = mass_x, mass_y
        distance = np.hypot(*(THIRDS_POINTS - np.array([mass_x, mass_y])).T).min()
        row["thirds_distance"] = float(min(1.0, distance / THIRDS_MAX_DISTANCE))
        area, sal_x, sal_y = saliency_summary(spectral_residual_saliency(gray))
        row["salient_area_ratio"], row["saliency_x"], row["saliency_y"] = area, sal_x, sal_y
        row.update(self._background_features(small))
        return row

    def _colour_features(self, small: np.ndarray) -> dict:
        name_shares, family_shares = self._namer.shares(small)
        palette = dominant_colors(small, PALETTE_SIZE)
        top_rgb, top_share = palette[0]
        top_name = name_rgb(top_rgb)
        lab = _rgb_to_lab(top_rgb)
        order = np.argsort(-name_shares)[:3]
        return {
            "dominant_color_name": top_name,
            "dominant_hue_family": family_of(top_name),
            "dominant_color_hex": rgb_to_hex(top_rgb),
            "dominant_color_r": int(top_rgb[0]),
            "dominant_color_g": int(top_rgb[1]),
            "dominant_color_b": int(top_rgb[2]),
            "dominant_color_share": float(top_share),
            "dominant_color_lab_l": lab[0],
            "dominant_color_lab_a": lab[1],
            "dominant_color_lab_b": lab[2],
            "palette": json.dumps(
                [{"hex": rgb_to_hex(c), "name": name_rgb(c), "share": round(float(s), 4)} for c, s in palette]
            ),
            "warm_share": float(family_shares[HUE_FAMILIES.index("warm")]),
            "cool_share": float(family_shares[HUE_FAMILIES.index("cool")]),
            "neutral_share": float(family_shares[HUE_FAMILIES.index("neutral")]),
            "top_color_names": ",".join(COLOR_NAMES[i] for i in order if name_shares[i] > 0),
        }

    def _background_features(self, small: np.ndarray) -> dict:
        border = border_pixels(small, BORDER_FRACTION)
        name_shares, family_shares = self._namer.shares(border)
        mode = int(np.argmax(name_shares))
        names = self._namer.name_indices(border.reshape(-1, 1, 3)).ravel()
        # Median colour of the border pixels that carry the modal name: the background fill itself.
        fill = np.median(border[names == mode], axis=0)
        lab = _rgb_to_lab(fill)
        return {
            "background_color_name": COLOR_NAMES[mode],
            "background_hue_family": HUE_FAMILIES[int(np.argmax(family_shares))],
            "background_color_hex": rgb_to_hex(fill),
            "background_uniformity": float(name_shares[mode]),
            "background_warm_share": float(family_shares[HUE_FAMILIES.index("warm")]),
            "background_cool_share": float(family_shares[HUE_FAMILIES.index("cool")]),
            "background_neutral_share": float(family_shares[HUE_FAMILIES.index("neutral")]),
            "background_color_lab_l": lab[0],
            "background_color_lab_a": lab[1],
            "background_color_lab_b": lab[2],
        }


# ---------------------------------------------------------------------- helpers
def standardize_and_normalize(frame: pd.DataFrame, scales: dict[str, tuple[float, float]], block: str) -> np.ndarray:
    """(n, len(scales)) float32 rows: fixed-scale z-scores clipped to [-4, 4], then L2-normalised.

    Missing values count as the column's center (z = 0). Raises ValueError naming
    the missing columns when the frame lacks some of `scales`.
    """
    missing = [c for c in scales if c not in frame.columns]
    if missing:
        raise ValueError(f"{block} vectorize: frame lacks columns {missing}; pass the output of transform()")
    if len(frame) == 0:
        return np.zeros((0, len(scales)), dtype=np.float32)
    centers = np.array([scales[c][0] for c in scales], dtype=np.float64)
    widths = np.array([scales[c][1] for c in scales], dtype=np.float64)
    # Booleans count as 0/1; None / NA / non-numbers as missing.
    values = np.column_stack([
        pd.to_numeric(frame[c].astype(object).where(frame[c].notna(), np.nan), errors="coerce").astype(np.float64)
        for c in scales
    ])
    values = np.where(np.isnan(values), centers, values)
    z = np.clip((values - centers) / widths, -4.0, 4.0)
    norms = np.linalg.norm(z, axis=1, keepdims=True)
    return (z / np.where(norms > 0, norms, 1.0)).astype(np.float32)


def dominant_colors(rgb: np.ndarray, k: int = PALETTE_SIZE) -> list[tuple[np.ndarray, float]]:
    """Dominant colours by k-means in CIE Lab: [(mean RGB (3,) float, pixel share)], largest share first.

    Deterministic: clusters a strided ~`KMEANS_PIXELS` px subsample, seeded by k-means++ with a fixed
    generator, so the same image always gives the same palette. Clusters that end
    empty are dropped, so fewer than k colours may come back (e.g. a flat image gives one).
    """
    # Strided subsample (not area-averaged) so the clustered pixels are real image colours.
    step = max(1, int(np.ceil(max(rgb.shape[:2]) / KMEANS_PIXELS)))
    pixels_rgb = rgb[::step, ::step].reshape(-1, 3).astype(np.float32)
    lab = cv2.cvtColor((pixels_rgb / 255.0).reshape(-1, 1, 3), cv2.COLOR_RGB2Lab).reshape(-1, 3).astype(np.float64)
    rng = np.random.default_rng(0)
    n = lab.shape[0]
    squared_norms = (lab * lab).sum(axis=1)

    def squared_distances(centers: np.ndarray) -> np.ndarray:
        # |x - c|^2 = |x|^2 - 2 x.c + |c|^2: one matrix product instead of an (n, k, 3) broadcast.
        return np.maximum(squared_norms[:, None] - 2.0 * lab @ centers.T + (centers * centers).sum(axis=1)[None, :], 0)

    centers = [lab[int(rng.integers(n))]]
    nearest = squared_distances(np.array(centers))[:, 0]
    for _ in range(1, k):
        total = nearest.sum()
        if total <= 1e-9:  # every pixel already sits on a center: fewer distinct colours than k
            break
        pick = int(rng.choice(n, p=nearest / total))
        centers.append(lab[pick])
        nearest = np.minimum(nearest, squared_distances(lab[pick][None, :])[:, 0])
    center_array = np.array(centers)
    labels = np.full(n, -1, dtype=np.int64)
    for _ in range(KMEANS_ITERATIONS):
        new_labels = squared_distances(center_array).argmin(axis=1)
        if np.array_equal(new_labels, labels):
            break
        labels = new_labels
        counts = np.bincount(labels, minlength=len(center_array))
        for channel in range(3):
            sums = np.bincount(labels, weights=lab[:, channel], minlength=len(center_array))
            center_array[:, channel] = np.where(counts > 0, sums / np.maximum(counts, 1), center_array[:, channel])
    counts = np.bincount(labels, minlength=len(center_array))
    palette = [
        (pixels_rgb[labels == j].mean(axis=0), counts[j] / n) for j in range(len(center_array)) if counts[j] > 0
    ]
    palette.sort(key=lambda item: -item[1])
    return palette


def border_pixels(rgb: np.ndarray, fraction: float = BORDER_FRACTION) -> np.ndarray:
    """(N, 3) uint8 pixels of the outer band (`fraction` of each side, at least 1 px) of an image."""
    height, width = rgb.shape[:2]
    band_y = max(1, round(height * fraction))
    band_x = max(1, round(width * fraction))
    mask = np.zeros((height, width), dtype=bool)
    mask[:band_y, :] = mask[-band_y:, :] = True
    mask[:, :band_x] = mask[:, -band_x:] = True
    return rgb[mask]


def as_rgb_image(image: np.ndarray, label: str) -> np.ndarray:
    """The image as a contiguous (H, W, 3) uint8 RGB array; gray and RGBA are converted, anything else is a ValueError naming `label`."""
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise ValueError(f"{label}: expected a uint8 RGB array, got dtype {array.dtype}; decode images to uint8 first")
    if array.ndim == 2:
        array = cv2.cvtColor(array, cv2.COLOR_GRAY2RGB)
    elif array.ndim == 3 and array.shape[2] == 4:
        array = cv2.cvtColor(array, cv2.COLOR_RGBA2RGB)
    if array.ndim != 3 or array.shape[2] != 3 or min(array.shape[:2]) < 2:
        raise ValueError(f"{label}: expected an (H, W, 3) RGB image of at least 2x2 px, got shape {array.shape}")
    return np.ascontiguousarray(array)


def working_copies(images: Sequence[np.ndarray], long_side: int,
                   ids: Sequence[str] | None = None) -> list[tuple[np.ndarray, int, int]]:
    """(RGB copy downscaled to `long_side`, original width, original height) of each image; `ids` name
    the images in errors. What an extractor computes its features from (visual and layout blocks)."""
    copies = []
    for index, image in enumerate(images):
        rgb = as_rgb_image(image, ids[index] if ids is not None else f"image #{index}")
        height, width = rgb.shape[:2]
        copies.append((downscale(rgb, long_side), width, height))
    return copies


def downscale(rgb: np.ndarray, long_side: int) -> np.ndarray:
    """Copy with the long side at most `long_side` px (area interpolation; never upscales)."""
    height, width = rgb.shape[:2]
    scale = long_side / max(height, width)
    if scale >= 1.0:
        return rgb
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def _rgb_to_lab(rgb: np.ndarray) -> tuple[float, float, float]:
    """CIE Lab (L 0-100, a/b about -128..127) of one RGB colour (0-255)."""
    pixel = (np.asarray(rgb, dtype=np.float32).reshape(1, 1, 3) / 255.0).clip(0, 1)
    l_star, a_star, b_star = cv2.cvtColor(pixel, cv2.COLOR_RGB2Lab).reshape(3)
    return float(l_star), float(a_star), float(b_star)


def _tone_features(rgb: np.ndarray, gray: np.ndarray) -> dict:
    """brightness/contrast (gray, 0-1), saturation (HSV S, 0-1), colourfulness (Hasler-Süsstrunk, 0-255 scale)."""
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    channels = rgb.astype(np.float64)
    rg = channels[..., 0] - channels[..., 1]
    yb = 0.5 * (channels[..., 0] + channels[..., 1]) - channels[..., 2]
    colourfulness = np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean())
    gray_unit = gray.astype(np.float64) / 255.0
    return {
        "brightness": float(gray_unit.mean()),
        "contrast": float(gray_unit.std()),
        "saturation": float(hsv[..., 1].mean() / 255.0),
        "colorfulness": float(colourfulness),
    }


def _cooccurrence_entropy(gray: np.ndarray) -> float:
    """GLCM-lite texture: Shannon entropy (bits, 0-8) of horizontal+vertical neighbour pairs at 16 gray levels."""
    levels = (gray.astype(np.uint16) * GLCM_LEVELS) >> 8
    pairs = np.concatenate([
        (levels[:, :-1] * GLCM_LEVELS + levels[:, 1:]).ravel(),
        (levels[:-1, :] * GLCM_LEVELS + levels[1:, :]).ravel(),
    ])
    if pairs.size == 0:
        return 0.0
    probabilities = np.bincount(pairs, minlength=GLCM_LEVELS * GLCM_LEVELS) / pairs.size
    probabilities = probabilities[probabilities > 0]
    return float(max(0.0, -(probabilities * np.log2(probabilities)).sum()))


def _symmetry(gray: np.ndarray) -> float:
    """Left-right mirror symmetry in [0, 1]: 1 - mean |I - flip(I)| / 255 on a blurred 64 px copy."""
    small = cv2.GaussianBlur(downscale(gray, SYMMETRY_WIDTH).astype(np.float32), (3, 3), 0)
    return float(1.0 - np.abs(small - small[:, ::-1]).mean() / 255.0)


def _negative_space(gray: np.ndarray, edges: np.ndarray) -> float:
    """Share of 16 px cells that are flat (gray std < 6) and hold no Canny edge: empty, low-detail area."""
    height, width = gray.shape
    cell = NEGATIVE_SPACE_CELL if min(height, width) >= 2 * NEGATIVE_SPACE_CELL else max(1, min(height, width) // 2)
    rows, cols = height // cell, width // cell
    if rows == 0 or cols == 0:
        return 0.0
    blocks = gray[: rows * cell, : cols * cell].astype(np.float32).reshape(rows, cell, cols, cell)
    stds = blocks.std(axis=(1, 3))
    edge_blocks = edges[: rows * cell, : cols * cell].reshape(rows, cell, cols, cell).max(axis=(1, 3))
    return float(((stds < NEGATIVE_SPACE_MAX_STD) & (edge_blocks == 0)).mean())


def _visual_mass(gray: np.ndarray) -> tuple[float, float]:
    """Centroid (x, y in [0, 1], top-left origin) of gradient energy: where the detail sits. Flat -> (0.5, 0.5)."""
    blurred = cv2.GaussianBlur(gray, (5, 5), 0).astype(np.float32)
    dx, dy = cv2.Sobel(blurred, cv2.CV_32F, 1, 0), cv2.Sobel(blurred, cv2.CV_32F, 0, 1)
    # numpy, not cv2.magnitude: OpenCV's square root takes another code path in a one-thread worker process
    # (extractor_pool.py), and the rows must not depend on where they were computed
    magnitude = np.sqrt(dx * dx + dy * dy)
    total = float(magnitude.sum())
    if total <= 1e-6:
        return 0.5, 0.5
    height, width = gray.shape
    xs = (np.arange(width) + 0.5) / width
    ys = (np.arange(height) + 0.5) / height
    return float((magnitude.sum(axis=0) * xs).sum() / total), float((magnitude.sum(axis=1) * ys).sum() / total)

"""Named colours and hue families: one rule set shared by every colour attribute.

A colour is named from its HSV coordinates (hue in degrees, saturation and value
in [0, 1]) by the rules in `name_rgb`; each name belongs to one hue family
(`warm`, `cool` or `neutral`, see `COLOR_FAMILIES`). Per-pixel naming uses a
lookup table over quantised OpenCV HSV, so naming a 512² image costs a few
milliseconds and the dominant colour, the pixel shares and the background all
speak the same vocabulary.

Rules (documented in docs/attributes.md):
- `black`  value < 0.20
- `beige`  hue 20-70°, saturation 0.08-0.35, value >= 0.70 (pale sand / cream / pale yellow)
- `white`  saturation < 0.15 and value >= 0.85
- `grey`   saturation < 0.15 otherwise
- `brown`  hue 8-45°, value < 0.60 (dark orange / tan)
- chromatic otherwise, by hue: red [345, 10), orange [10, 40), yellow [40, 70),
  green [70, 160), teal [160, 195), blue [195, 255), purple [255, 290),
  magenta [290, 320), pink [320, 345)
"""

from __future__ import annotations

import cv2
import numpy as np

# Name -> hue family. Warm = red..yellow side of the wheel (incl. pink/magenta
# and brown); cool = green..purple; neutral = achromatic or near-achromatic.
COLOR_FAMILIES: dict[str, str] = {
    "red": "warm",
    "orange": "warm",
    "yellow": "warm",
    "brown": "warm",
    "pink": "warm",
    "magenta": "warm",
    "green": "cool",
    "teal": "cool",
    "blue": "cool",
    "purple": "cool",
    "black": "neutral",
    "white": "neutral",
    "grey": "neutral",
    "beige": "neutral",
}
COLOR_NAMES: tuple[str, ...] = tuple(COLOR_FAMILIES)
HUE_FAMILIES: tuple[str, ...] = ("warm", "cool", "neutral")

# Hue bins (degrees, lower bound inclusive) for chromatic colours; red wraps around 0°.
_HUE_BINS: tuple[tuple[float, str], ...] = (
    (10.0, "orange"),
    (40.0, "yellow"),
    (70.0, "green"),
    (160.0, "teal"),
    (195.0, "blue"),
    (255.0, "purple"),
    (290.0, "magenta"),
    (320.0, "pink"),
    (345.0, "red"),
)

BLACK_MAX_VALUE = 0.20
GREY_MAX_SATURATION = 0.15
WHITE_MIN_VALUE = 0.85
BROWN_MAX_VALUE = 0.60
BEIGE_MIN_SATURATION, BEIGE_MAX_SATURATION, BEIGE_MIN_VALUE = 0.08, 0.35, 0.70
BEIGE_MAX_HUE = 70.0  # pale, desaturated yellows read as cream / beige, not yellow

# LUT resolution over OpenCV's 8-bit HSV (H in 0..179 = degrees / 2, S and V in 0..255).
_S_BINS = 64
_V_BINS = 64


def name_hsv(hue_deg: float, saturation: float, value: float) -> str:
    """Colour name of one HSV colour (hue in degrees [0, 360), saturation/value in [0, 1])."""
    hue = hue_deg % 360.0
    if value < BLACK_MAX_VALUE:
        return "black"
    if 20.0 <= hue < BEIGE_MAX_HUE and BEIGE_MIN_SATURATION <= saturation < BEIGE_MAX_SATURATION and value >= BEIGE_MIN_VALUE:
        return "beige"
    if saturation < GREY_MAX_SATURATION:
        return "white" if value >= WHITE_MIN_VALUE else "grey"
    if 8.0 <= hue < 45.0 and value < BROWN_MAX_VALUE:
        return "brown"
    name = "red"
    for lower, bin_name in _HUE_BINS:
        if hue >= lower:
            name = bin_name
    return name


def name_rgb(rgb: tuple[int, int, int] | np.ndarray) -> str:
    """Colour name of one RGB colour (0-255 per channel)."""
    hue, sat, val = rgb_to_hsv_unit(rgb)
    return name_hsv(hue, sat, val)


def family_of(name: str) -> str:
    """Hue family (`warm`/`cool`/`neutral`) of a colour name from `COLOR_NAMES`."""
    try:
        return COLOR_FAMILIES[name]
    except KeyError as exc:
        raise ValueError(f"unknown colour name {name!r}; known: {', '.join(COLOR_NAMES)}") from exc


def rgb_to_hsv_unit(rgb: tuple[int, int, int] | np.ndarray) -> tuple[float, float, float]:
    """(hue degrees, saturation 0-1, value 0-1) of one RGB colour, computed in float (no 8-bit hue rounding)."""
    r, g, b = (float(c) / 255.0 for c in np.asarray(rgb, dtype=np.float64).reshape(3))
    high, low = max(r, g, b), min(r, g, b)
    delta = high - low
    if delta <= 1e-12:
        hue = 0.0
    elif high == r:
        hue = (60.0 * (g - b) / delta) % 360.0
    elif high == g:
        hue = 60.0 * (b - r) / delta + 120.0
    else:
        hue = 60.0 * (r - g) / delta + 240.0
    saturation = 0.0 if high <= 1e-12 else delta / high
    return hue, saturation, high


def rgb_to_hex(rgb: tuple[int, int, int] | np.ndarray) -> str:
    """`#rrggbb` of an RGB colour (values clipped to 0-255 and rounded)."""
    r, g, b = (round(float(np.clip(c, 0, 255))) for c in np.asarray(rgb).reshape(3))
    return f"#{r:02x}{g:02x}{b:02x}"


def _name_index_grid(hue: np.ndarray, sat: np.ndarray, val: np.ndarray) -> np.ndarray:
    """Vectorised `name_hsv`: indices into COLOR_NAMES for arrays of hue (deg), saturation, value."""
    hue = np.mod(hue, 360.0)
    chromatic = np.full(hue.shape, COLOR_NAMES.index("red"), dtype=np.int64)
    for lower, bin_name in _HUE_BINS:
        chromatic[hue >= lower] = COLOR_NAMES.index(bin_name)
    conditions = [
        val < BLACK_MAX_VALUE,
        (hue >= 20.0) & (hue < BEIGE_MAX_HUE) & (sat >= BEIGE_MIN_SATURATION) & (sat < BEIGE_MAX_SATURATION)
        & (val >= BEIGE_MIN_VALUE),
        (sat < GREY_MAX_SATURATION) & (val >= WHITE_MIN_VALUE),
        sat < GREY_MAX_SATURATION,
        (hue >= 8.0) & (hue < 45.0) & (val < BROWN_MAX_VALUE),
    ]
    choices = [COLOR_NAMES.index(n) for n in ("black", "beige", "white", "grey", "brown")]
    return np.select(conditions, choices, default=chromatic).astype(np.uint8)


class ColorNamer:
    """Vectorised per-pixel colour naming through a lookup table (built once per instance).

    `name_indices(rgb)` maps an (H, W, 3) uint8 RGB image to (H, W) int indices into
    `COLOR_NAMES`; `family_indices` maps name indices to indices into `HUE_FAMILIES`.
    """

    def __init__(self) -> None:
        hue = np.arange(180, dtype=np.float64)[:, None, None] * 2.0 + 1.0
        sat = (np.arange(_S_BINS, dtype=np.float64)[None, :, None] + 0.5) / _S_BINS
        val = (np.arange(_V_BINS, dtype=np.float64)[None, None, :] + 0.5) / _V_BINS
        self._lut = _name_index_grid(*np.broadcast_arrays(hue, sat, val))
        self._name_to_family = np.array(
            [HUE_FAMILIES.index(COLOR_FAMILIES[n]) for n in COLOR_NAMES], dtype=np.uint8
        )

    def name_indices(self, rgb: np.ndarray) -> np.ndarray:
        """(H, W) uint8 indices into COLOR_NAMES for an (H, W, 3) uint8 RGB image."""
        hsv = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2HSV)
        h = np.minimum(hsv[..., 0], 179)
        s = (hsv[..., 1].astype(np.uint16) * _S_BINS) >> 8
        v = (hsv[..., 2].astype(np.uint16) * _V_BINS) >> 8
        return self._lut[h, s, v]

    def family_indices(self, name_indices: np.ndarray) -> np.ndarray:
        """Indices into HUE_FAMILIES for an array of name indices."""
        return self._name_to_family[name_indices]

    def shares(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(name shares (len(COLOR_NAMES),), family shares (3,)) of the pixels of an image or pixel list.

        `rgb` may be (H, W, 3) or (N, 3) uint8; shares sum to 1 (all zeros for no pixels).
        """
        pixels = np.asarray(rgb, dtype=np.uint8).reshape(-1, 1, 3)
        if pixels.shape[0] == 0:
            return np.zeros(len(COLOR_NAMES)), np.zeros(len(HUE_FAMILIES))
        idx = self.name_indices(pixels).ravel()
        name_counts = np.bincount(idx, minlength=len(COLOR_NAMES)).astype(np.float64)
        name_shares = name_counts / name_counts.sum()
        family_shares = np.bincount(
            self._name_to_family, weights=name_shares, minlength=len(HUE_FAMILIES)
        )
        return name_shares, family_shares

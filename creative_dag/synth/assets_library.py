"""Real photos, fonts and drawn product shapes used to compose creatives.

Photos come from packages already installed (scikit-image's sample data and
scikit-learn's sample images), so generation works offline. Everything is cached
per process: workers load each photo once.
"""

from __future__ import annotations

from functools import cache, lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# Product element -> (source photo, crop box x0, y0, x1, y1 in source pixels).
PRODUCT_CROPS: dict[str, tuple[str, tuple[int, int, int, int]]] = {
    "coffee": ("coffee", (60, 0, 500, 400)),
    "rocket": ("rocket", (200, 40, 440, 427)),
    "cat": ("chelsea", (50, 0, 400, 300)),
    "china": ("china", (40, 10, 400, 420)),
    "flower": ("flower", (150, 20, 460, 380)),
}
# Head-and-shoulders crop of scikit-image's astronaut (Eileen Collins) and the face box
# inside that crop (x, y, w, h): where OpenCV's frontal-face Haar cascade finds her face
# in the source (177, 66, 95, 95), shifted by the crop origin.
PERSON_SOURCE = "astronaut"
PERSON_CROP = (80, 10, 340, 330)
PERSON_FACE_BOX = (97, 56, 95, 95)


@cache
def photo(name: str) -> np.ndarray:
    """A real RGB photo (uint8, H x W x 3) by name: coffee, rocket, chelsea, astronaut, china, flower."""
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image
        return np.ascontiguousarray(load_sample_image(f"{name}.jpg"))
    import skimage.data
    if name not in ("coffee", "rocket", "chelsea", "astronaut"):
        raise KeyError(f"unknown photo {name!r}")
    return np.ascontiguousarray(getattr(skimage.data, name)()[..., :3])


# The dahlia's radial petals trigger OpenCV's frontal-face Haar cascade at many scales;
# turned by 90 degrees it almost never does, so planted has_face stays the only face.
_ROTATED_SOURCES = ("flower",)


@cache
def product_photo(product: str) -> Image.Image:
    """The cropped photo of a photo-product element."""
    source, (x0, y0, x1, y1) = PRODUCT_CROPS[product]
    crop = photo(source)[y0:y1, x0:x1]
    return Image.fromarray(np.ascontiguousarray(np.rot90(crop)) if source in _ROTATED_SOURCES else crop)


@cache
def background_photo(name: str) -> np.ndarray:
    """A full photo used as a background layer (see _ROTATED_SOURCES)."""
    img = photo(name)
    return np.ascontiguousarray(np.rot90(img)) if name in _ROTATED_SOURCES else img


@cache
def person_photo() -> Image.Image:
    """The person element: a head-and-shoulders crop with a frontal face (see PERSON_FACE_BOX)."""
    x0, y0, x1, y1 = PERSON_CROP
    return Image.fromarray(photo(PERSON_SOURCE)[y0:y1, x0:x1])


def _font_paths(filename: str) -> list[str]:
    paths: list[str] = []
    try:
        import matplotlib
        paths.append(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / filename))
    except ImportError:
        pass
    paths += [f"/usr/share/fonts/truetype/dejavu/{filename}", filename]
    return paths


@lru_cache(maxsize=256)
def font(filename: str, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """A TrueType font at `size` px: matplotlib's bundled copy first (identical on every
    machine), then system fonts, then PIL's scalable default font."""
    for path in _font_paths(filename):
        try:
            return ImageFont.truetype(path, size)
        except OSError:
            continue
    return ImageFont.load_default(size=size)


def _shade(rgb: tuple[int, int, int], factor: float) -> tuple[int, int, int]:
    """Lighten (factor > 0) toward white or darken (factor < 0) toward black."""
    c = np.asarray(rgb, dtype=float)
    c = c + (255 - c) * factor if factor >= 0 else c * (1 + factor)
    return tuple(int(v) for v in np.clip(np.round(c), 0, 255))


def draw_shape_product(kind: str, width: int, height: int, color: tuple[int, int, int]) -> Image.Image:
    """A drawn product (RGBA, transparent around it): a cosmetics bottle or a gift box."""
    img = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    w, h = width, height
    dark, light = _shade(color, -0.35), _shade(color, 0.45)
    if kind == "bottle":
        bw = int(w * 0.5)
        x0 = (w - bw) // 2
        d.rounded_rectangle([x0, int(h * 0.28), x0 + bw, int(h * 0.98)], radius=max(2, bw // 6),
                            fill=color, outline=dark, width=max(1, w // 60))
        neck = int(bw * 0.36)
        d.rectangle([(w - neck) // 2, int(h * 0.16), (w + neck) // 2, int(h * 0.3)], fill=light)
        cap = int(bw * 0.5)
        d.rounded_rectangle([(w - cap) // 2, int(h * 0.02), (w + cap) // 2, int(h * 0.17)],
                            radius=max(2, cap // 8), fill=dark)
        d.rectangle([x0 + bw // 8, int(h * 0.5), x0 + bw - bw // 8, int(h * 0.72)], fill=(250, 250, 250, 255))
        d.rectangle([x0 + bw // 5, int(h * 0.57), x0 + bw - bw // 5, int(h * 0.6)], fill=dark)
        d.rectangle([x0 + bw // 4, int(h * 0.63), x0 + bw - bw // 4, int(h * 0.655)], fill=dark)
    elif kind == "giftbox":
        top, lid = int(h * 0.38), int(h * 0.2)
        d.rectangle([int(w * 0.1), top, int(w * 0.9), int(h * 0.98)], fill=color, outline=dark, width=max(1, w // 60))
        d.rectangle([int(w * 0.05), top - lid // 2, int(w * 0.95), top + lid // 2], fill=dark)
        ribbon = max(2, int(w * 0.1))
        d.rectangle([(w - ribbon) // 2, top - lid // 2, (w + ribbon) // 2, int(h * 0.98)], fill=light)
        d.ellipse([int(w * 0.22), int(h * 0.08), int(w * 0.5), top - lid // 2 + 2], outline=light, width=ribbon // 2 + 1)
        d.ellipse([int(w * 0.5), int(h * 0.08), int(w * 0.78), top - lid // 2 + 2], outline=light, width=ribbon // 2 + 1)
    else:
        raise KeyError(f"unknown shape product {kind!r}")
    return img

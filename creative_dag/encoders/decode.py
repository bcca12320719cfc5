"""Fast, robust image decoding for the encoders: bytes -> (H, W, 3) uint8 RGB.

- Speed: a JPEG is decoded at a reduced scale by libjpeg (PIL `draft`, 1/2, 1/4 or 1/8) when the
  block needs far fewer pixels than the file has (a 1080² JPEG for a 224² CNN: ~4 ms instead of
  ~10 ms for a full decode plus resize), then resized with a bicubic filter.
- Robustness: EXIF orientation is applied, CMYK / palette / greyscale / 16-bit / float images
  become 8-bit RGB, transparency is composited over white (how ad platforms show it), the first
  frame of an animation is used, and a pixel limit guards against decompression bombs.
- Safety: only the formats in `contract.IMAGE_FORMATS` are opened (an EPS/PS file would make
  Pillow run Ghostscript; nothing falls back to another decoder), and when a block asks for a
  `shorter_side` the long side is centre-cropped to `max_aspect` times the short one. Blocks scale
  the shorter side up to their input size, so a 1 x 20 000 strip would otherwise become a
  256 x 5 120 000 array (~4 GB); their centre crop sees the same pixels either way.
- Failure is a typed `ImageDecodeError` with a quarantine reason code; callers quarantine the
  image and carry on with the batch.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from creative_dag.contract import IMAGE_FORMATS, MAX_IMAGE_ASPECT

# 64 megapixels: larger than any ad creative (8K is 33 MP) yet far below what exhausts memory.
DEFAULT_MAX_PIXELS = 64_000_000
DEFAULT_MAX_ASPECT = MAX_IMAGE_ASPECT


class ImageDecodeError(ValueError):
    """An image that cannot be decoded; `reason` is the quarantine reason code.

    Reasons: 'empty_image', 'unidentified_image', 'truncated_image', 'image_too_large',
    'corrupt_image'.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def decode_image(data: bytes, *, shorter_side: int | None = None, longer_side: int | None = None,
                 max_pixels: int = DEFAULT_MAX_PIXELS, name: str = "image",
                 max_aspect: float = DEFAULT_MAX_ASPECT) -> np.ndarray:
    """Decode image bytes to an upright RGB array, downscaled to the size a block needs.

    shorter_side: scale so the shorter side is this many pixels (CNN / CLIP crops); the long side
                  is also centre-cropped to at most `max_aspect` x the short side.
    longer_side:  scale so the longer side is at most this many pixels (OCR, visual features).
    Images are never upscaled. With neither size the full resolution is returned.
    Returns (H, W, 3) uint8, C-contiguous. Raises ImageDecodeError naming `name`.
    """
    if not data:
        raise ImageDecodeError("empty_image", f"{name}: file is empty (0 bytes); re-export the image")
    with warnings.catch_warnings():
        # PIL warns (then errors) on huge images; our own max_pixels check decides instead.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=IMAGE_FORMATS)
        except Image.DecompressionBombError as exc:
            raise ImageDecodeError("image_too_large", f"{name}: {exc}") from None
        except UnidentifiedImageError:
            raise ImageDecodeError(
                "unidentified_image",
                f"{name}: not a readable image in an allowed format ({', '.join(IMAGE_FORMATS)}; "
                f"{len(data)} bytes); land a JPEG, PNG or WebP file",
            ) from None
        except Exception as exc:  # noqa: BLE001 - broken headers raise SyntaxError, struct.error, ...
            reason = "truncated_image" if "truncat" in str(exc).lower() else "corrupt_image"
            raise ImageDecodeError(reason, f"{name}: cannot open ({type(exc).__name__}: {exc}); "
                                           "re-export the image") from None
        width, height = image.size
        if width <= 0 or height <= 0:
            raise ImageDecodeError("corrupt_image", f"{name}: image has size {width}x{height}")
        if width * height > max_pixels:
            raise ImageDecodeError(
                "image_too_large",
                f"{name}: {width}x{height} = {width * height} pixels exceeds the limit of {max_pixels}; "
                "downscale the image before landing it",
            )
        target = _target_size(width, height, shorter_side, longer_side)
        try:
            if target is not None and image.format in ("JPEG", "MPO"):
                # libjpeg DCT scaling; the result is >= target in both sides.
                image.draft("RGB", target)
            image.load()
            image = ImageOps.exif_transpose(image)
            if shorter_side:
                image = _crop_to_aspect(image, max_aspect)
            rgb = _to_rgb(image)
        except OSError as exc:
            reason = "truncated_image" if "truncat" in str(exc).lower() else "corrupt_image"
            raise ImageDecodeError(reason, f"{name}: cannot decode ({exc}); re-export the image") from None
        except (ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as exc:
            raise ImageDecodeError("corrupt_image", f"{name}: cannot decode ({type(exc).__name__}: {exc})") from None
    return _resize(rgb, shorter_side, longer_side)


def fit_decoded(rgb: np.ndarray, *, shorter_side: int | None = None, longer_side: int | None = None,
                max_aspect: float = DEFAULT_MAX_ASPECT) -> np.ndarray:
    """An already decoded (H, W, 3) uint8 RGB image as `decode_image` gives it to a block: the same crop
    and resize, so an image held in memory (an edited copy) and the same pixels read from a lossless
    file become the same array, bit for bit."""
    image = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8))
    if shorter_side:
        image = _crop_to_aspect(image, max_aspect)
    return _resize(image, shorter_side, longer_side)


def _crop_to_aspect(image: Image.Image, max_aspect: float) -> Image.Image:
    """Centre crop of the long side to at most `max_aspect` x the short side (no-op when within)."""
    width, height = image.size
    short = min(width, height)
    longest = max(1, int(short * max_aspect))
    if max(width, height) <= longest:
        return image
    if width > height:
        left = (width - longest) // 2
        return image.crop((left, 0, left + longest, height))
    top = (height - longest) // 2
    return image.crop((0, top, width, top + longest))


def _target_size(width: int, height: int, shorter_side: int | None,
                 longer_side: int | None) -> tuple[int, int] | None:
    """The (w, h) the final image will have, used to pick the JPEG draft scale; None = full size."""
    scale = 1.0
    if shorter_side:
        scale = min(scale, shorter_side / min(width, height))
    if longer_side:
        scale = min(scale, longer_side / max(width, height))
    if scale >= 1.0:
        return None
    return max(1, int(np.ceil(width * scale))), max(1, int(np.ceil(height * scale)))


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode -> 8-bit RGB (alpha composited over white, 16-bit scaled, CMYK converted)."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        mode = image.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode.startswith("I") or mode == "F":
        return Image.fromarray(_high_depth_to_uint8(np.asarray(image)), mode="L").convert("RGB")
    # CMYK, L, 1, YCbCr, LAB, HSV, RGBX ...
    return image.convert("RGB")


def _high_depth_to_uint8(array: np.ndarray) -> np.ndarray:
    """16/32-bit integer or float greyscale -> uint8 by the range the type implies."""
    values = array.astype(np.float64)
    if np.issubdtype(array.dtype, np.floating):
        finite = values[np.isfinite(values)]
        peak = float(finite.max()) if finite.size else 1.0
        scale = 255.0 if peak <= 1.0 else 1.0
        values = np.nan_to_num(values) * scale
    else:
        peak = float(values.max()) if values.size else 0.0
        # 16-bit data (PNG 'I;16' or 'I' holding 0..65535): 65535 / 257 = 255.
        values = values / 257.0 if peak > 255 else values
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def _resize(image: Image.Image, shorter_side: int | None, longer_side: int | None) -> np.ndarray:
    width, height = image.size
    target = _target_size(width, height, shorter_side, longer_side)
    if target is not None and target != (width, height):
        # Exact target from the *current* size (a draft-decoded image is already close).
        scale = 1.0
        if shorter_side:
            scale = min(scale, shorter_side / min(width, height))
        if longer_side:
            scale = min(scale, longer_side / max(width, height))
        new_size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = image.resize(new_size, Image.Resampling.BICUBIC, reducing_gap=3.0)
    return np.ascontiguousarray(np.asarray(image, dtype=np.uint8))

"""Probe the images referenced by valid creatives: facts for raw.images, problems for quarantine.

Probing is cheap on purpose: the file is checked from `os.stat()` (a regular file, at most
`max_image_bytes`) before it is opened; the header gives format, mode, size and EXIF
orientation; only the formats in `contract.IMAGE_FORMATS` are ever opened (EPS/PS/PDF would
make Pillow run Ghostscript); the pixel limit (decompression bombs) and the degenerate-size rule
(a side under MIN_IMAGE_SIDE, or an aspect ratio beyond MAX_IMAGE_ASPECT) are checked from the
header before any decoding; a full decode runs only to detect truncated files, and for JPEG it
decodes a 1/8-scale draft (the decoder still reads every byte, so truncation is caught, at ~60 %
of the cost of a full decode).

A daily run lands the same images again: `known` probes (the previous raw.images rows that were ok,
keyed by sha256) are reused for files whose bytes hash to them, so only new or changed files are
decoded. Whether a file decodes depends on its bytes alone; the size rules (pixel limit, degenerate
sizes) are checked again on the known size, so a changed limit still applies to every image.

CMYK, palette, alpha, 16-bit and EXIF-rotated images are valid: they are recorded with their
mode and orientation; encoders normalise them later.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
from PIL import Image, UnidentifiedImageError

from creative_dag.contract import IMAGE_FORMATS, MAX_IMAGE_ASPECT, MIN_IMAGE_SIDE
from creative_dag.landing.locator import ImageLocator, ImagePathError
from creative_dag.landing.quarantine import (
    REASONS,
    SOURCE_IMAGES,
    quarantine_frame,
    raw_json,
    short_repr,
)

DEFAULT_MAX_IMAGE_PIXELS = 50_000_000
EXIF_ORIENTATION_TAG = 0x0112
OK = "ok"
IMAGE_COLUMNS = ("creative_id", "image_path", "sha256", "width", "height", "format", "mode", "byte_size",
                 "exif_orientation", "decode_status")


@dataclass(frozen=True)
class ImageProbe:
    """Facts about one image file. width/height are after EXIF orientation (as displayed).

    decode_status is 'ok' or a quarantine reason; detail says what went wrong (empty when ok).
    """

    sha256: str | None
    width: int | None
    height: int | None
    format: str | None
    mode: str | None
    byte_size: int | None
    exif_orientation: int | None
    decode_status: str
    detail: str = ""


def probe_image_bytes(data: bytes, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
                      min_side: int = MIN_IMAGE_SIDE, max_aspect: float = MAX_IMAGE_ASPECT,
                      known: Mapping[str, ImageProbe] | None = None) -> ImageProbe:
    """Probe encoded image bytes (no I/O). Never raises for bad images: the status says why.

    Truncation is detected by decoding; it relies on Pillow's default
    `ImageFile.LOAD_TRUNCATED_IMAGES = False` (a process that turns it on hides truncation).
    known: sha256 -> an earlier ok probe of the same bytes, reused without decoding (module doc).
    """
    size = len(data)
    if size == 0:
        return _bad(None, size, "empty_image_file", "the file has zero bytes")
    digest = hashlib.sha256(data).hexdigest()
    earlier = (known or {}).get(digest)
    if earlier is not None and earlier.decode_status == OK and earlier.byte_size == size \
            and earlier.width and earlier.height and earlier.width * earlier.height <= max_pixels \
            and not degenerate_size(earlier.width, earlier.height, min_side, max_aspect):
        return earlier
    try:
        with warnings.catch_warnings():
            # Our own pixel limit below decides; Pillow's global warning would only be noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=IMAGE_FORMATS)
    except Image.DecompressionBombError as err:
        return _bad(digest, size, "decompression_bomb", str(err))
    except UnidentifiedImageError:
        other = detected_format(data)
        if other:
            return _bad(digest, size, "image_format_not_allowed",
                        f"the file is {other}, which is not read (allowed: {', '.join(IMAGE_FORMATS)})")
        return _bad(digest, size, "unreadable_image", "not a recognised image format")
    except Exception as err:  # noqa: BLE001 - broken headers raise SyntaxError, ValueError, struct.error...
        return _bad(digest, size, "unreadable_image", f"header cannot be read ({type(err).__name__}: {err})")

    width, height = image.size
    fmt, mode = image.format, image.mode
    orientation = _orientation(image)
    if width * height > max_pixels:
        return ImageProbe(digest, width, height, fmt, mode, size, orientation, "decompression_bomb",
                          f"{width}x{height} = {width * height / 1e6:.1f} megapixels exceeds the limit of "
                          f"{max_pixels / 1e6:.1f} megapixels")
    degenerate = degenerate_size(width, height, min_side, max_aspect)
    if degenerate:
        image.close()
        shown = (height, width) if orientation in (5, 6, 7, 8) else (width, height)
        return ImageProbe(digest, *shown, fmt, mode, size, orientation, "degenerate_image_size", degenerate)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            if fmt == "JPEG":
                image.draft(mode, (max(1, width // 8), max(1, height // 8)))
            image.load()
    except Image.DecompressionBombError as err:
        return _bad(digest, size, "decompression_bomb", str(err))
    except (OSError, EOFError, SyntaxError, ValueError) as err:
        message = str(err)
        truncated = isinstance(err, EOFError) or "truncated" in message or "broken data stream" in message
        reason = "truncated_image" if truncated else "unreadable_image"
        return ImageProbe(digest, None, None, fmt, mode, size, orientation, reason,
                          f"decoding failed ({type(err).__name__}: {message})")
    finally:
        image.close()
    if orientation in (5, 6, 7, 8):  # rotated by 90 or 270 degrees: displayed size is transposed
        width, height = height, width
    return ImageProbe(digest, width, height, fmt, mode, size, orientation, OK)


def degenerate_size(width: int, height: int, min_side: int = MIN_IMAGE_SIDE,
                    max_aspect: float = MAX_IMAGE_ASPECT) -> str:
    """Why a width x height image cannot be an ad creative ('' when it can)."""
    if min(width, height) < min_side:
        return f"{width}x{height}: a side is under {min_side} px (a tracking pixel or a line, not a creative)"
    if max(width, height) / min(width, height) > max_aspect:
        return (f"{width}x{height}: aspect ratio {max(width, height) / min(width, height):.1f}:1 is beyond "
                f"{max_aspect:g}:1")
    return ""


def detected_format(data: bytes) -> str:
    """The name of a known but disallowed format (EPS, PDF, PSD, HEIC, SVG...), '' when unknown.

    Uses only the plugins' prefix checks (`_accept`), which never decode and never call Ghostscript.
    """
    head = data[:64]
    if head[4:8] == b"ftyp":
        brand = head[8:12].decode("ascii", errors="replace").strip()
        return {"avif": "AVIF", "avis": "AVIF"}.get(brand, "HEIC/HEIF" if brand.startswith(("hei", "hev", "mif"))
                                                    else f"an ISO media file ({brand})")
    if head.lstrip().startswith((b"<svg", b"<?xml")):
        return "SVG (vector)"
    if head.startswith(b"%PDF"):
        return "PDF"
    Image.init()
    for fmt in Image.ID:
        factory_accept = Image.OPEN.get(fmt)
        accept = factory_accept[1] if factory_accept else None
        if fmt in IMAGE_FORMATS or accept is None:
            continue
        try:
            if accept(head):
                return fmt
        except Exception:  # noqa: BLE001, S112 - a plugin's prefix check must not break probing
            continue
    return ""


def probe_creative_images(creatives: pd.DataFrame, locator: ImageLocator,
                          max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS, workers: int = 1,
                          file_name: str = "creatives", min_side: int = MIN_IMAGE_SIDE,
                          max_aspect: float = MAX_IMAGE_ASPECT,
                          known: Mapping[str, ImageProbe] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One raw.images row per creative (creative_id, image_path) and quarantine rows for bad images.

    creatives: valid creatives with `creative_id` and `image_path`. The same file referenced by
    several creatives is read once. `workers` > 1 probes in threads (Pillow releases the GIL
    while decoding). known: sha256 -> earlier ok probes (`known_probes`), reused for the same bytes.
    Returns (images with IMAGE_COLUMNS, quarantine rows with source 'images').
    """
    paths = [str(p) for p in creatives["image_path"]]
    unique_paths = list(dict.fromkeys(paths))
    probe = lambda p: _probe_path(p, locator, max_pixels, min_side, max_aspect, known)
    if workers > 1 and len(unique_paths) > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = dict(zip(unique_paths, pool.map(probe, unique_paths)))
    else:
        results = {p: probe(p) for p in unique_paths}

    rows, rejects = [], []
    for creative_id, image_path in zip(creatives["creative_id"], paths):
        facts = results[image_path]
        record = {k: v for k, v in asdict(facts).items() if k != "detail"}
        rows.append({"creative_id": creative_id, "image_path": image_path, **record})
        if facts.decode_status != OK:
            rejects.append({
                "source": SOURCE_IMAGES,
                "key": creative_id,
                "reason": facts.decode_status,
                "detail": (f"{file_name} creative {short_repr(creative_id)}: image {short_repr(image_path, 200)}: "
                           f"{facts.detail}. "
                           f"The creative and its metrics are kept; it has no image features until fixed. "
                           f"To fix: {REASONS.get(facts.decode_status, 're-export the image')}."),
                "raw_value": raw_json({"creative_id": creative_id, "image_path": image_path}),
            })
    images = pd.DataFrame.from_records(rows, columns=list(IMAGE_COLUMNS))
    images = images.astype({"creative_id": "str", "image_path": "str", "sha256": "str", "format": "str",
                            "mode": "str", "decode_status": "str", "width": "Int64", "height": "Int64",
                            "byte_size": "Int64", "exif_orientation": "Int64"})
    return images, quarantine_frame(rejects)


def known_probes(images: pd.DataFrame | None) -> dict[str, ImageProbe]:
    """sha256 -> probe of the ok rows of an earlier raw.images table (as read back from the warehouse,
    nullable integers included); {} for None or an empty table."""
    if images is None or images.empty or not set(IMAGE_COLUMNS) <= set(images.columns):
        return {}
    ok = images[(images["decode_status"] == OK) & images["sha256"].notna()].drop_duplicates("sha256")
    ok = ok.dropna(subset=["width", "height", "byte_size"])
    return {str(r.sha256): ImageProbe(str(r.sha256), int(r.width), int(r.height), str(r.format), str(r.mode),
                                      int(r.byte_size), None if pd.isna(r.exif_orientation) else int(r.exif_orientation),
                                      OK)
            for r in ok.itertuples(index=False)}


def _probe_path(image_path: str, locator: ImageLocator, max_pixels: int, min_side: int = MIN_IMAGE_SIDE,
                max_aspect: float = MAX_IMAGE_ASPECT, known: Mapping[str, ImageProbe] | None = None) -> ImageProbe:
    try:
        data = locator.read_bytes(image_path)
    except ImagePathError as err:
        return _bad(None, None, err.reason, err.detail)
    except FileNotFoundError:
        where = _where(locator, image_path)
        return _bad(None, None, "missing_image_file", f"no file at {where}{_case_hint(where)}")
    except IsADirectoryError:
        return _bad(None, None, "image_not_a_file", f"{_where(locator, image_path)} is a folder, not a file")
    except OSError as err:
        return _bad(None, None, "unreadable_image", f"cannot read {_where(locator, image_path)} ({err})")
    except Exception as err:  # noqa: BLE001 - remote filesystems (allow-listed schemes) raise their own types
        return _bad(None, None, "image_fetch_failed", f"fetching {image_path} failed ({type(err).__name__}: {err})")
    return probe_image_bytes(data, max_pixels, min_side, max_aspect, known)


def _case_hint(where: str) -> str:
    """'; did you mean ...' when a file of that name exists in another letter case."""
    if "://" in where:
        return ""
    path = Path(where)
    try:
        names = os.listdir(path.parent) if path.parent.is_dir() else []
    except OSError:
        return ""
    same = [n for n in names if n.casefold() == path.name.casefold() and n != path.name]
    return f" (there is {same[0]!r}: paths are case-sensitive)" if same else ""


def _where(locator: ImageLocator, image_path: str) -> str:
    try:
        return locator.resolve(image_path)
    except ImagePathError:
        return image_path


def _orientation(image: Image.Image) -> int:
    """EXIF orientation 1-8; 1 (as stored) when absent or unreadable."""
    try:
        value = image.getexif().get(EXIF_ORIENTATION_TAG, 1)
        value = int(value)
    except Exception:  # noqa: BLE001 - corrupt EXIF must not reject an otherwise good image
        return 1
    return value if 1 <= value <= 8 else 1


def _bad(digest: str | None, size: int | None, reason: str, detail: str) -> ImageProbe:
    return ImageProbe(digest, None, None, None, None, size, None, reason, detail)


"""Draw one creative from its attributes: background, product, person, text, CTA, and
the near-duplicate edit of a family variant.

Rendering is a pure function of the spec (attributes + layout seed + edit) and the
size, so images are deterministic and can be drawn in any order or process. Family
members share the layout seed, so a variant is its base plus exactly one edit.
"""

from __future__ import annotations

import colorsys
import io
from collections.abc import Mapping
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from creative_dag.synth import vocab
from creative_dag.synth.assets_library import (
    PERSON_CROP,
    PERSON_FACE_BOX,
    background_photo,
    draw_shape_product,
    font,
    person_photo,
    product_photo,
)

Box = tuple[int, int, int, int]  # x, y, w, h in pixels of the final image

# Headline size (share of the short side) by text coverage: big enough for OCR.
_HEADLINE_SIZE = {"light": 0.12, "medium": 0.105, "heavy": 0.095}
_BUSY_STYLES = ("texture", "stripes", "dots", "photo", "blurred_photo")
# Person height (share of the short side) below which the face gets too small for
# OpenCV's Haar cascade at 256 px; the face's bottom edge as a share of the person crop.
_MIN_PERSON_HEIGHT = 0.44
_FACE_BOTTOM = (PERSON_FACE_BOX[1] + PERSON_FACE_BOX[3]) / (PERSON_CROP[3] - PERSON_CROP[1])


def canvas_size(orientation: str, short_side: int, portrait_aspect: float) -> tuple[int, int]:
    """(width, height): square, or portrait 9:16-like with the short side as width."""
    if orientation == "portrait":
        return short_side, round(short_side * portrait_aspect)
    return short_side, short_side


def _cover(img: np.ndarray, w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    """Resize to cover (w, h) and crop at a random offset, like a full-bleed photo."""
    ih, iw = img.shape[:2]
    scale = max(w / iw, h / ih) * rng.uniform(1.0, 1.25)
    nw, nh = max(w, int(np.ceil(iw * scale))), max(h, int(np.ceil(ih * scale)))
    big = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    x0, y0 = int(rng.integers(0, nw - w + 1)), int(rng.integers(0, nh - h + 1))
    return big[y0:y0 + h, x0:x0 + w]


def _blur(src: np.ndarray, sigma: float) -> np.ndarray:
    """Strong Gaussian blur computed on a 1/8 copy (a large-sigma blur at full size
    costs ~1 s per image; the result is visually the same)."""
    h, w = src.shape[:2]
    small = cv2.resize(src, (max(2, w // 8), max(2, h // 8)), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigmaX=max(0.5, sigma / 8))
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def _palette(*colors: np.ndarray) -> np.ndarray:
    """A 256-entry uint8 colour table (unused entries black) for _paint."""
    table = np.zeros((256, 3), dtype=np.uint8)
    table[: len(colors)] = np.clip(np.round(np.stack(colors)), 0, 255)
    return table


def _paint(level: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Colour a uint8 index image through a palette with OpenCV's LUT (several times
    faster than numpy fancy indexing at 1080 x 1920)."""
    level = np.ascontiguousarray(level, dtype=np.uint8)
    return cv2.LUT(cv2.merge([level, level, level]), table.reshape(256, 1, 3))


def make_background(style: str, rgb: tuple[int, int, int], photo_name: str | None, w: int, h: int,
                    rng: np.random.Generator) -> np.ndarray:
    """The background layer (uint8 h x w x 3) in one of the styles of vocab.BACKGROUND_STYLES.

    Patterns index small colour palettes (uint8 look-ups) instead of float arithmetic
    over the full canvas: several times faster at 1080 x 1920.
    """
    base = np.asarray(rgb, dtype=np.float32)
    light = base + (255 - base) * 0.3
    dark = base * 0.72
    if style == "solid":
        out = np.empty((h, w, 3), dtype=np.uint8)
        out[:] = np.asarray(rgb, dtype=np.uint8)
        return out
    if style == "gradient":
        angle = rng.uniform(0, np.pi)
        c, s_ = np.cos(angle), np.sin(angle)
        lo = min(0.0, (w - 1) * c) + min(0.0, (h - 1) * s_)
        hi = max(0.0, (w - 1) * c) + max(0.0, (h - 1) * s_)
        scale = 255.0 / max(hi - lo, 1.0)
        gx = ((np.arange(w) * c - lo) * scale).astype(np.float32)[None, :]
        gy = (np.arange(h) * s_ * scale).astype(np.float32)[:, None]
        level = cv2.add(np.broadcast_to(gx, (h, w)), np.broadcast_to(gy, (h, w))).astype(np.uint8)
        t = np.linspace(0, 1, 256, dtype=np.float32)[:, None]
        return _paint(level, _palette(*(dark * (1 - t) + light * t)))
    if style == "texture":
        coarse = rng.standard_normal((max(2, h // 24), max(2, w // 24)), dtype=np.float32)
        smooth = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
        grain = rng.standard_normal((h, w), dtype=np.float32)
        # Noise level -> colour through a 256-entry palette around the base colour.
        noise = cv2.addWeighted(smooth, 18.0, grain, 9.0, 128.0)
        level = np.clip(noise, 0, 255).astype(np.uint8)
        offsets = np.arange(256, dtype=np.float32)[:, None] - 128
        return _paint(level, _palette(*(base + offsets)))
    if style == "stripes":
        period = max(4, int(w * rng.uniform(0.06, 0.12)))
        iy, ix = np.arange(h)[:, None], np.arange(w)[None, :]
        band = ((ix + iy) // period) % 2 if rng.random() < 0.5 else np.broadcast_to((ix // period) % 2, (h, w))
        return _paint(band, _palette(base, light))
    if style == "dots":
        step = max(6, int(w * rng.uniform(0.07, 0.11)))
        dy = (np.arange(h)[:, None] % step) - step / 2
        dx = (np.arange(w)[None, :] % step) - step / 2
        inside = ((dx * dx + dy * dy) < (step * 0.28) ** 2).astype(np.uint8)
        return _paint(inside, _palette(base, light))
    if style in ("photo", "blurred_photo"):
        src = _cover(background_photo(photo_name or "china"), w, h, rng)
        if style == "blurred_photo":
            src = _blur(src, w * 0.025)
        # Tint toward the named hue so the planted hue family holds on photos too.
        return cv2.add(cv2.convertScaleAbs(src, alpha=0.55), tuple(0.45 * float(v) for v in rgb) + (0.0,))
    raise KeyError(f"unknown background style {style!r}")


def _wrap(text: str, filename: str, size: int, max_w: int, min_size: int) -> tuple[list[str], Any]:
    """Split into at most two lines and shrink the font until every line fits max_w."""
    words = text.split()
    while True:
        f = font(filename, size)
        candidates = [[text]]
        if len(words) > 1:
            cut = min(range(1, len(words)), key=lambda i: abs(len(" ".join(words[:i])) - len(" ".join(words[i:]))))
            candidates.append([" ".join(words[:cut]), " ".join(words[cut:])])
        for lines in candidates:
            if max(f.getlength(line) for line in lines) <= max_w:
                return lines, f
        if size <= min_size:
            return candidates[-1], f
        size = max(min_size, int(size * 0.92))


def _text_lines(spec: Mapping[str, Any], w: int, headline_size: float, scale: float) -> list[tuple[str, Any, str]]:
    """(text, font, role) lines of the creative's text block at a size scale."""
    coverage = spec["text_coverage"]
    if coverage == "none":
        return []
    size = round(headline_size)
    hl, hf = _wrap(spec["headline"], vocab.FONTS[spec["headline_font"]], size, int(0.88 * w), max(8, size // 2))
    lines = [(t, hf, "headline") for t in hl]
    if coverage in ("medium", "heavy"):
        sl, sf = _wrap(spec["subline"], vocab.SUBLINE_FONTS[spec["headline_font"]],
                       round(0.05 * w * scale), int(0.88 * w), 6)
        lines += [(t, sf, "subline") for t in sl]
    if coverage == "heavy":
        xf = font(vocab.FONTS["sans_bold"], max(6, round(0.048 * w * scale)))
        lines += [(t, xf, "extra") for t in spec["extra_lines"]]
    return lines


def _line_height(f: Any) -> int:
    ascent, descent = f.getmetrics()
    return ascent + descent


def _paste_framed(img: Image.Image, item: Image.Image, x: int, y: int, border: int) -> None:
    """Paste a photo element with a white frame and a soft shadow."""
    w, h = item.size
    shadow = Image.new("L", (w + 2 * border + 8 * border, h + 2 * border + 8 * border), 0)
    ImageDraw.Draw(shadow).rectangle([4 * border, 4 * border, 4 * border + w + 2 * border,
                                      4 * border + h + 2 * border], fill=110)
    shadow = shadow.filter(ImageFilter.GaussianBlur(max(1, 2 * border)))
    img.paste((0, 0, 0), (x - 4 * border + border, y - 4 * border + border), shadow)
    img.paste((255, 255, 255), (x - border, y - border, x + w + border, y + h + border))
    img.paste(item, (x, y))


def _intersects(a: Box, b: Box) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def _union(boxes: list[Box]) -> Box:
    x0 = min(b[0] for b in boxes)
    y0 = min(b[1] for b in boxes)
    x1 = max(b[0] + b[2] for b in boxes)
    y1 = max(b[1] + b[3] for b in boxes)
    return x0, y0, x1 - x0, y1 - y0


def render_creative(spec: Mapping[str, Any], short_side: int, portrait_aspect: float) -> tuple[Image.Image, dict[str, Any]]:
    """Render the base layout of `spec` and apply its family edit.

    Returns the RGB image and render facts for the ground truth: pixel boxes (x, y, w, h)
    of face, headline, product and CTA, text area ratio, text colour and the mean
    background colour.
    """
    w, h = canvas_size(spec["orientation"], short_side, portrait_aspect)
    rng = np.random.default_rng([int(spec["layout_seed"]), 11])
    ref = np.asarray(vocab.HUES[spec["background_hue"]][1], dtype=float)
    hue_rgb = tuple(int(v) for v in np.clip(ref + rng.normal(0, 7, 3), 0, 255))
    bg = make_background(spec["background_style"], hue_rgb, spec.get("background_photo"), w, h, rng)
    background_rgb = [float(v) for v in cv2.mean(bg)[:3]]
    img = Image.fromarray(bg)
    draw = ImageDraw.Draw(img)
    m = round(0.06 * w)
    gap = round(0.025 * w)

    # CTA button along the bottom edge.
    cta_box: Box | None = None
    content_bottom = h - m
    if spec["has_cta"]:
        cf = font(vocab.FONTS["sans_bold"], max(8, round(0.05 * w)))
        tw = int(cf.getlength(spec["cta_text"]))
        bw, bh = tw + int(0.1 * w), _line_height(cf) + int(0.05 * w)
        x = {"bottom_left": m, "bottom_center": (w - bw) // 2, "bottom_right": w - m - bw}[spec["cta_position"]]
        cta_box = (x, h - m - bh, bw, bh)
        content_bottom = cta_box[1] - gap

    # Text block: headline (1-2 lines), sub-line, extra lines by text coverage. With a
    # person, the text shrinks until the face fits clear of it (OCR and face detectors
    # both need their element unobstructed).
    coverage, pos = spec["text_coverage"], spec["headline_position"]
    headline_size = w * _HEADLINE_SIZE.get(coverage, 0.1) * rng.uniform(0.92, 1.08)
    line_gap = round(0.012 * w)
    face_room = int(_MIN_PERSON_HEIGHT * w * _FACE_BOTTOM) + gap
    scale = 1.0
    while True:
        lines = _text_lines(spec, w, headline_size * scale, scale)
        block_h = sum(_line_height(f) for _, f, _ in lines) + line_gap * max(0, len(lines) - 1)
        if not lines:
            text_top = text_bottom = m
            zone = (m, content_bottom)
        else:
            text_top = {"top": m, "middle": (m + content_bottom - block_h) // 2,
                        "bottom": content_bottom - block_h}[pos]
            text_bottom = text_top + block_h
            above, below = (m, text_top - gap), (text_bottom + gap, content_bottom)
            zone = {"top": below, "bottom": above}.get(pos) or (
                above if above[1] - above[0] >= below[1] - below[0] else below)
        if not spec["has_face"] or zone[1] - zone[0] >= face_room or scale < 0.5:
            break
        scale *= 0.88
    zone_top, zone_bottom = zone
    if zone_bottom - zone_top < 0.3 * w and not spec["has_face"]:  # visuals run under the text panel
        zone_bottom = min(h - m, zone_top + int(0.3 * w))
        zone_top = max(m, zone_bottom - int(0.3 * w))
    zone_h = zone_bottom - zone_top

    # Person (real face) on one side, top-anchored so the face (upper half of the crop)
    # stays inside the zone while the shoulders may run under text or off the canvas.
    face_box: Box | None = None
    region_x0, region_x1 = m, w - m
    if spec["has_face"]:
        person = person_photo()
        aspect = person.width / person.height
        ph = int(max(_MIN_PERSON_HEIGHT * w, min((zone_h - gap) / _FACE_BOTTOM, 0.5 * w / aspect)))
        pw = int(ph * aspect)
        left = rng.random() < 0.5
        px = m if left else w - m - pw
        py = zone_top + max(0, (zone_h - ph) // 2)
        scaled = person.resize((pw, ph), Image.BICUBIC)
        _paste_framed(img, scaled, px, py, max(1, w // 180))
        sx, sy = pw / person.width, ph / person.height
        fx, fy, fw, fh = PERSON_FACE_BOX
        face_box = (int(px + fx * sx), int(py + fy * sy), round(fw * sx), round(fh * sy))
        region_x0, region_x1 = (px + pw + gap, w - m) if left else (m, px - gap)
        zone_h = min(zone_h, max(ph, 1))
    region_w = region_x1 - region_x0
    size = int(min(region_w, zone_h) * rng.uniform(0.78, 0.95))
    kind = vocab.PRODUCTS[spec["product"]][0]
    if kind == "photo":
        item = product_photo(spec["product"])
        scale = size / max(item.width, item.height)
        item = item.resize((max(1, int(item.width * scale)), max(1, int(item.height * scale))), Image.BICUBIC)
    else:
        palette = list(vocab.CTA_COLORS.values())
        item = draw_shape_product(spec["product"], max(2, int(size * 0.75)), max(2, size),
                                  palette[int(rng.integers(len(palette)))])
    slack = max(0, region_w - item.width)
    ix = region_x0 + (slack // 2 if spec["has_face"] else int(rng.uniform(0.15, 0.85) * slack))
    iy = zone_top + max(0, (zone_h - item.height) // 2)
    if kind == "photo":
        _paste_framed(img, item, ix, iy, max(1, w // 150))
    else:
        img.paste(item, (ix, iy), item)
    product_box: Box = (ix, iy, item.width, item.height)

    # Text in high contrast; a panel behind it where the background is busy.
    text_color, panel = None, False
    text_boxes: list[tuple[Box, str]] = []
    if lines:
        widths = [int(f.getlength(t)) for t, f, _ in lines]
        block_w = max(widths)
        align_center = bool(spec["headline_position"] == "middle" or rng.random() < 0.6)
        bx0 = (w - block_w) // 2 if align_center else m
        region = np.asarray(img)[max(0, text_top):text_bottom, max(0, bx0):bx0 + block_w].astype(float)
        lum = region @ np.array([0.299, 0.587, 0.114])
        dark_text = lum.mean() > 150
        text_color = "black" if dark_text else "white"
        fill = (18, 18, 18) if dark_text else (252, 252, 252)
        busy = lum.std() > 28 or spec["background_style"] in _BUSY_STYLES or abs(lum.mean() - 128) < 70
        if busy or (face_box is not None and _intersects(face_box, (bx0, text_top, block_w, block_h))):
            panel = True
            pad = int(0.025 * w)
            # Composite only the panel's rectangle: full-canvas RGBA round trips are slow.
            px0, py0 = max(0, bx0 - pad), max(0, text_top - pad)
            px1, py1 = min(w, bx0 + block_w + pad), min(h, text_bottom + pad)
            patch = img.crop((px0, py0, px1, py1)).convert("RGBA")
            overlay = Image.new("RGBA", patch.size, (0, 0, 0, 0))
            panel_rgba = (255, 255, 255, 215) if dark_text else (10, 10, 10, 190)
            ImageDraw.Draw(overlay).rounded_rectangle(
                [bx0 - pad - px0, text_top - pad - py0, bx0 + block_w + pad - px0, text_bottom + pad - py0],
                radius=pad, fill=panel_rgba)
            img.paste(Image.alpha_composite(patch, overlay).convert("RGB"), (px0, py0))
        y = text_top
        for (text, f, role), tw in zip(lines, widths):
            x = (w - tw) // 2 if align_center else m
            draw.text((x, y), text, font=f, fill=fill)
            x0, y0, x1, y1 = draw.textbbox((x, y), text, font=f)
            text_boxes.append(((x0, y0, x1 - x0, y1 - y0), role))
            y += _line_height(f) + line_gap

    if cta_box is not None:
        x, y, bw, bh = cta_box
        crgb = vocab.CTA_COLORS[spec["cta_color"]]
        draw.rounded_rectangle([x, y, x + bw, y + bh], radius=bh // 3, fill=crgb,
                               outline=(255, 255, 255) if sum(crgb) < 300 else (30, 30, 30), width=max(1, w // 270))
        label = (18, 18, 18) if sum(crgb) > 500 else (255, 255, 255)
        cf = font(vocab.FONTS["sans_bold"], max(8, round(0.05 * w)))
        draw.text((x + bw // 2, y + bh // 2), spec["cta_text"], font=cf, fill=label, anchor="mm")

    headline = [b for b, role in text_boxes if role == "headline"]
    meta: dict[str, Any] = {
        "width": w, "height": h,
        "face_box": face_box,
        "headline_box": _union(headline) if headline else None,
        "text_boxes": [b for b, _ in text_boxes],
        "product_box": product_box,
        "cta_box": cta_box,
        "text_area_ratio": sum(b[2] * b[3] for b, _ in text_boxes) / float(w * h),
        "text_color": text_color,
        "text_panel": panel,
        "dominant_background_rgb": background_rgb,
    }
    return apply_edit(img, meta, spec.get("variant_edit"), spec.get("edit_params") or {})


def _shift_box(box: Box | None, x0: float, y0: float, sx: float, sy: float, w: int, h: int) -> Box | None:
    if box is None:
        return None
    bx0 = min(max(0.0, (box[0] - x0) * sx), w)
    by0 = min(max(0.0, (box[1] - y0) * sy), h)
    bx1 = min(max(0.0, (box[0] + box[2] - x0) * sx), w)
    by1 = min(max(0.0, (box[1] + box[3] - y0) * sy), h)
    return round(bx0), round(by0), round(bx1 - bx0), round(by1 - by0)


def apply_edit(img: Image.Image, meta: dict[str, Any], edit: str | None,
               params: Mapping[str, Any]) -> tuple[Image.Image, dict[str, Any]]:
    """A family variant's pixel edit: crop-and-resize, reframe (zoom out and pan, the canvas
    edge extended) or hue rotation. Headline, CTA-label and aspect-ratio variants are
    rendered from their spec; re-encodes happen at save time."""
    w, h = img.size
    if edit == "reframe":
        scale, fx, fy = params["reframe"]
        ox, oy = fx * (1 - scale) * w, fy * (1 - scale) * h
        warp = np.float32([[scale, 0, ox], [0, scale, oy]])
        img = Image.fromarray(cv2.warpAffine(np.asarray(img), warp, (w, h), flags=cv2.INTER_AREA,
                                             borderMode=cv2.BORDER_REPLICATE))
        # new = old * scale + offset, i.e. _shift_box with origin -offset / scale.
        for key in ("face_box", "headline_box", "product_box", "cta_box"):
            meta[key] = _shift_box(meta[key], -ox / scale, -oy / scale, scale, scale, w, h)
        meta["text_boxes"] = [_shift_box(b, -ox / scale, -oy / scale, scale, scale, w, h) for b in meta["text_boxes"]]
    elif edit == "crop":
        left, top, right, bottom = params["crop"]
        x0, y0, x1, y1 = left * w, top * h, w - right * w, h - bottom * h
        img = img.crop((round(x0), round(y0), round(x1), round(y1))).resize((w, h), Image.BICUBIC)
        x0, y0 = round(x0), round(y0)
        sx, sy = w / (round(x1) - x0), h / (round(y1) - y0)
        for key in ("face_box", "headline_box", "product_box", "cta_box"):
            meta[key] = _shift_box(meta[key], x0, y0, sx, sy, w, h)
        meta["text_boxes"] = [_shift_box(b, x0, y0, sx, sy, w, h) for b in meta["text_boxes"]]
    elif edit == "hue_shift":
        shift = round(params["hue_shift_degrees"] / 360.0 * 256)
        hsv = np.asarray(img.convert("HSV")).copy()
        hsv[..., 0] = (hsv[..., 0].astype(np.int16) + shift) % 256
        img = Image.fromarray(hsv, "HSV").convert("RGB")
        r, g, b = (v / 255.0 for v in meta["dominant_background_rgb"])
        hh, ss, vv = colorsys.rgb_to_hsv(r, g, b)
        meta["dominant_background_rgb"] = [255.0 * v for v in colorsys.hsv_to_rgb((hh + params["hue_shift_degrees"] / 360) % 1, ss, vv)]
    return img, meta


def encode(img: Image.Image, file_format: str, jpeg_quality: int, reencode_quality: int | None = None) -> bytes:
    """Encode as JPEG (at `jpeg_quality`) or PNG; a re-encoded variant goes through a
    JPEG round trip at `reencode_quality` first (its only difference from the base)."""
    if reencode_quality is not None:
        if file_format == "jpeg":
            jpeg_quality = reencode_quality
        else:
            buf = io.BytesIO()
            img.save(buf, "JPEG", quality=reencode_quality)
            img = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    buf = io.BytesIO()
    if file_format == "png":
        img.save(buf, "PNG", compress_level=3)  # level 6 is ~2x slower for ~5% smaller files
    else:
        img.save(buf, "JPEG", quality=jpeg_quality)
    return buf.getvalue()

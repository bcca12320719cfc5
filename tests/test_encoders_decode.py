"""Image decoding for the encoders: every common mode becomes upright 8-bit RGB; bad files are typed errors."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from creative_dag.encoders.decode import ImageDecodeError, decode_image


def _encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def _left_red_right_blue(width: int = 120, height: int = 80) -> np.ndarray:
    """A landscape image: red left half, blue right half (orientation is easy to check)."""
    array = np.zeros((height, width, 3), dtype=np.uint8)
    array[:, : width // 2] = (220, 20, 20)
    array[:, width // 2:] = (20, 20, 220)
    return array


def test_rgb_jpeg_round_trip_keeps_size_and_colours():
    data = _encode(Image.fromarray(_left_red_right_blue()), "JPEG", quality=95)
    out = decode_image(data)
    assert out.shape == (80, 120, 3) and out.dtype == np.uint8
    assert out[40, 10, 0] > 180 and out[40, 110, 2] > 180


def test_cmyk_jpeg_becomes_rgb():
    cmyk = Image.fromarray(_left_red_right_blue()).convert("CMYK")
    out = decode_image(_encode(cmyk, "JPEG", quality=95))
    assert out.shape == (80, 120, 3)
    assert out[40, 10, 0] > 150 and out[40, 10, 2] < 100  # still red on the left


def test_palette_png_with_transparency_is_composited_over_white():
    array = np.zeros((40, 40, 4), dtype=np.uint8)
    array[:, :20] = (0, 128, 0, 255)  # opaque green
    array[:, 20:] = (0, 0, 0, 0)  # fully transparent
    palette = Image.fromarray(array, "RGBA").convert("P")  # keeps a transparent index
    data = _encode(palette, "PNG")
    assert Image.open(io.BytesIO(data)).mode == "P"
    out = decode_image(data)
    assert out.shape == (40, 40, 3)
    assert tuple(out[20, 30]) == (255, 255, 255)
    assert out[20, 5, 1] > 100 and out[20, 5, 0] < 50


def test_rgba_png_alpha_composited_over_white():
    array = np.zeros((10, 10, 4), dtype=np.uint8)
    array[..., 0] = 255
    array[..., 3] = 0  # transparent red -> white
    array[:5, :, 3] = 255  # top half opaque red
    out = decode_image(_encode(Image.fromarray(array, "RGBA"), "PNG"))
    assert tuple(out[2, 2]) == (255, 0, 0)
    assert tuple(out[8, 2]) == (255, 255, 255)


def test_16_bit_greyscale_png_is_scaled_not_clipped():
    ramp = np.tile(np.linspace(0, 65535, 64, dtype=np.uint16), (8, 1))
    image = Image.fromarray(ramp)  # mode I;16
    out = decode_image(_encode(image, "PNG"))
    assert out.shape == (8, 64, 3) and out.dtype == np.uint8
    assert out[0, 0, 0] == 0 and out[0, -1, 0] == 255
    assert 100 < out[0, 32, 0] < 160  # mid-grey, not saturated


def test_exif_rotated_jpeg_is_returned_upright():
    # Stored as portrait with orientation 6 (rotate 90° CW to display): displays as landscape.
    upright = _left_red_right_blue(120, 80)
    stored = np.ascontiguousarray(np.rot90(upright, k=1))  # 120 high x 80 wide
    exif = Image.Exif()
    exif[0x0112] = 6
    data = _encode(Image.fromarray(stored), "JPEG", quality=95, exif=exif)
    out = decode_image(data)
    assert out.shape == (80, 120, 3)
    assert out[40, 10, 0] > 180 and out[40, 110, 2] > 180  # red left, blue right as displayed


def test_reduced_decode_hits_requested_sizes_and_never_upscales():
    big = np.random.default_rng(0).integers(0, 255, (1080, 1620, 3), dtype=np.uint8)
    data = _encode(Image.fromarray(big), "JPEG", quality=85)
    assert decode_image(data, shorter_side=256).shape[:2] == (256, 384)
    assert decode_image(data, longer_side=540).shape[:2] == (360, 540)
    assert decode_image(data, shorter_side=4000).shape[:2] == (1080, 1620)


def test_truncated_file_is_a_typed_error():
    data = _encode(Image.fromarray(_left_red_right_blue(400, 300)), "JPEG", quality=95)
    with pytest.raises(ImageDecodeError) as err:
        decode_image(data[: len(data) // 2], name="cr_9 images/cr_9.jpg")
    assert err.value.reason == "truncated_image"
    assert "cr_9" in str(err.value)


@pytest.mark.parametrize("data, reason", [
    (b"", "empty_image"),
    (b"this is not an image at all", "unidentified_image"),
])
def test_empty_and_garbage_bytes_are_typed_errors(data, reason):
    with pytest.raises(ImageDecodeError) as err:
        decode_image(data)
    assert err.value.reason == reason


def test_pixel_limit_rejects_huge_images_before_decoding():
    data = _encode(Image.new("RGB", (2000, 2000), (1, 2, 3)), "PNG")
    with pytest.raises(ImageDecodeError) as err:
        decode_image(data, max_pixels=1_000_000)
    assert err.value.reason == "image_too_large"


@pytest.mark.parametrize("size", [(1, 20_000), (20_000, 1), (400, 30_000)])
def test_extreme_aspect_is_cropped_so_a_block_upscale_stays_small(size):
    """A block scales the shorter side to 256: a 1 x 20 000 strip must not become 256 x 5 120 000 (4 GB)."""
    from creative_dag.encoders.base import resize_center_crop

    out = decode_image(_encode(Image.new("L", size, 128), "PNG"), shorter_side=256)
    assert max(out.shape[:2]) <= 20 * min(out.shape[:2])
    crop = resize_center_crop(out, 256, 224, "bicubic")
    assert crop.shape == (224, 224, 3)


def test_aspect_crop_keeps_the_centre_a_block_sees():
    array = np.zeros((40, 4000, 3), dtype=np.uint8)
    array[:, 1980:2020] = (250, 0, 0)  # a red square in the middle of a 100:1 strip
    out = decode_image(_encode(Image.fromarray(array), "PNG"), shorter_side=40)
    assert out.shape == (40, 800, 3)
    assert tuple(out[20, 400]) == (250, 0, 0)


def test_full_resolution_decodes_are_not_cropped():
    out = decode_image(_encode(Image.new("RGB", (2100, 30)), "PNG"))
    assert out.shape == (30, 2100, 3)


@pytest.mark.parametrize("data", [
    b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 64\nshowpage\n",
    b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n",
])
def test_formats_outside_the_allow_list_never_reach_their_decoder(data, monkeypatch):
    from PIL import EpsImagePlugin

    def forbidden(*args, **kwargs):
        raise AssertionError("Ghostscript was called")
    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", forbidden)
    with pytest.raises(ImageDecodeError) as err:
        decode_image(data, shorter_side=224, name="cr_9 images/cr_9.eps")
    assert err.value.reason == "unidentified_image" and "cr_9" in str(err.value)
    assert err.value.__cause__ is None

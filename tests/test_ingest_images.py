"""Image probing: bad images are quarantined (the creative and its metrics stay), odd-but-valid images pass."""

from __future__ import annotations

import datetime as dt
import io
import time

import numpy as np
import pytest
from landing_fixtures import small_landing_tables, write_landing
from PIL import Image
from png_bytes import png_header_only

from creative_dag.landing import ingest_landing_folder, probe_image_bytes
from creative_dag.landing.locator import ImageLocator

TODAY = dt.date(2026, 4, 1)


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def landing_with_image(tmp_path, image_path: str, content: bytes | None = None, **ingest_kwargs):
    """Valid 3-creative landing folder whose cr_002 points at `image_path` (written with `content`)."""
    creatives, metrics = small_landing_tables()
    creatives.loc[1, "image_path"] = image_path
    folder = tmp_path / "landing"
    if content is not None:
        (folder / image_path).parent.mkdir(parents=True, exist_ok=True)
        (folder / image_path).write_bytes(content)
    write_landing(folder, creatives, metrics)
    return ingest_landing_folder(folder, today=TODAY, **ingest_kwargs)


def assert_image_quarantined(result, reason: str):
    """cr_002's image is quarantined with `reason`; the creative and its metrics still land."""
    assert result.quarantine[["source", "key", "reason"]].values.tolist() == [["images", "cr_002", reason]]
    status = result.images.set_index("creative_id")["decode_status"]
    assert status.to_dict() == {"cr_001": "ok", "cr_002": reason, "cr_003": "ok"}
    assert "cr_002" in set(result.creatives["creative_id"])
    assert (result.daily_metrics["creative_id"] == "cr_002").sum() == 3
    assert "creatives.csv creative 'cr_002'" in result.quarantine["detail"].iloc[0]


def test_missing_image_file(tmp_path):
    creatives, metrics = small_landing_tables()
    folder = write_landing(tmp_path, creatives, metrics)
    (folder / "images" / "cr_002.jpg").unlink()
    result = ingest_landing_folder(folder, today=TODAY)
    assert_image_quarantined(result, "missing_image_file")
    assert "cr_002.jpg" in result.quarantine["detail"].iloc[0]


def test_remote_fetch_failure_is_quarantined_not_raised(tmp_path):
    class FailingLocator(ImageLocator):
        def read_bytes(self, image_path):
            if image_path.startswith("memory://"):
                raise RuntimeError("HTTP 403 from the bucket")
            return super().read_bytes(image_path)

    creatives, metrics = small_landing_tables()
    creatives.loc[1, "image_path"] = "memory://bucket/cr_002.jpg"
    folder = write_landing(tmp_path, creatives, metrics)
    result = ingest_landing_folder(folder, FailingLocator(folder, ("file", "memory")), today=TODAY)
    assert_image_quarantined(result, "image_fetch_failed")
    assert "HTTP 403" in result.quarantine["detail"].iloc[0]


def test_truncated_jpeg(tmp_path):
    data = encode(Image.effect_noise((128, 128), 60).convert("RGB"), "JPEG")
    result = landing_with_image(tmp_path, "images/cut.jpg", data[: len(data) // 2])
    assert_image_quarantined(result, "truncated_image")
    assert result.images.set_index("creative_id").loc["cr_002", "sha256"]  # the bytes were read and hashed


def test_truncated_png(tmp_path):
    data = encode(Image.effect_noise((128, 128), 60), "PNG")
    result = landing_with_image(tmp_path, "images/cut.png", data[: len(data) // 2])
    assert_image_quarantined(result, "truncated_image")


def test_not_an_image(tmp_path):
    result = landing_with_image(tmp_path, "images/notes.jpg", b"this is not an image at all")
    assert_image_quarantined(result, "unreadable_image")


def test_zero_byte_file(tmp_path):
    result = landing_with_image(tmp_path, "images/empty.jpg", b"")
    assert_image_quarantined(result, "empty_image_file")
    assert result.images.set_index("creative_id").loc["cr_002", "byte_size"] == 0


def test_decompression_bomb_is_caught_from_the_header(tmp_path):
    # 3000 x 2000 = 6 MP against a 5 MP limit; a flat PNG this size is only a few KB
    data = encode(Image.new("L", (3000, 2000)), "PNG")
    result = landing_with_image(tmp_path, "images/huge.png", data, max_image_pixels=5_000_000)
    assert_image_quarantined(result, "decompression_bomb")
    assert "6.0 megapixels exceeds the limit of 5.0" in result.quarantine["detail"].iloc[0]


@pytest.mark.parametrize("side", [8_000, 40_000])  # 64 MP (our limit), 1.6 GP (also Pillow's own limit)
def test_decompression_bomb_is_rejected_without_decoding(side):
    start = time.perf_counter()
    probe = probe_image_bytes(png_header_only(side, side), max_pixels=50_000_000)
    assert probe.decode_status == "decompression_bomb"
    assert time.perf_counter() - start < 0.5  # decoding 64 MP would take far longer and allocate 8 MB+


@pytest.mark.parametrize("image_path", ["../outside.jpg", "images/../../outside.jpg", "/etc/passwd"])
def test_image_path_escaping_landing(tmp_path, image_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "outside.jpg")  # exists, but must not be read
    result = landing_with_image(tmp_path, image_path)
    assert_image_quarantined(result, "image_path_escapes_landing")


def test_symlink_out_of_landing_is_an_escape(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "secret.jpg")
    (tmp_path / "landing" / "images").mkdir(parents=True)
    (tmp_path / "landing" / "images" / "link.jpg").symlink_to(tmp_path / "secret.jpg")
    result = landing_with_image(tmp_path, "images/link.jpg")
    assert_image_quarantined(result, "image_path_escapes_landing")


def test_http_scheme_not_allowed_by_default(tmp_path):
    result = landing_with_image(tmp_path, "https://example.com/ad.jpg")
    assert_image_quarantined(result, "image_scheme_not_allowed")


def test_file_uri_inside_landing_is_allowed(tmp_path):
    creatives, metrics = small_landing_tables()
    folder = write_landing(tmp_path / "landing", creatives, metrics)
    creatives.loc[1, "image_path"] = f"file://{folder / 'images' / 'cr_002.jpg'}"
    write_landing(folder, creatives, metrics)
    result = ingest_landing_folder(folder, ImageLocator(folder), today=TODAY)
    assert result.quarantine.empty and (result.images["decode_status"] == "ok").all()


def _exif_rotated_jpeg() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    return encode(Image.new("RGB", (40, 20), (200, 10, 10)), "JPEG", exif=exif.tobytes())


VALID_ODD_IMAGES = {
    "cmyk.jpg": (lambda: encode(Image.new("CMYK", (30, 20), (0, 128, 255, 10)), "JPEG"), "CMYK", "JPEG", (30, 20)),
    "palette.png": (lambda: encode(Image.new("RGB", (30, 20), (10, 200, 30)).convert("P"), "PNG"), "P", "PNG", (30, 20)),
    "alpha.png": (lambda: encode(Image.new("RGBA", (30, 20), (10, 200, 30, 100)), "PNG"), "RGBA", "PNG", (30, 20)),
    "deep.png": (lambda: encode(Image.fromarray(np.full((20, 30), 40000, dtype=np.uint16)), "PNG"), "I;16", "PNG", (30, 20)),
    "rotated.jpg": (_exif_rotated_jpeg, "RGB", "JPEG", (20, 40)),
    "photo.webp": (lambda: encode(Image.new("RGB", (30, 20), (1, 2, 3)), "WEBP"), "RGB", "WEBP", (30, 20)),
}


@pytest.mark.parametrize("name", sorted(VALID_ODD_IMAGES))
def test_odd_but_valid_images_are_accepted_with_their_mode(tmp_path, name):
    make, mode, fmt, (width, height) = VALID_ODD_IMAGES[name]
    result = landing_with_image(tmp_path, f"images/{name}", make())
    assert result.quarantine.empty
    row = result.images.set_index("creative_id").loc["cr_002"]
    assert (row["decode_status"], row["mode"], row["format"]) == ("ok", mode, fmt)
    assert (row["width"], row["height"]) == (width, height)  # displayed size, after EXIF orientation
    assert row["exif_orientation"] == (6 if name == "rotated.jpg" else 1)


def test_shared_image_is_one_row_per_creative_with_same_sha(tmp_path):
    creatives, metrics = small_landing_tables()
    creatives["image_path"] = "images/shared.jpg"
    result = ingest_landing_folder(write_landing(tmp_path, creatives, metrics), today=TODAY)
    assert len(result.images) == 3 and result.images["sha256"].nunique() == 1
    assert result.images["byte_size"].iloc[0] == (tmp_path / "images" / "shared.jpg").stat().st_size


def test_probing_500_jpegs_takes_seconds(tmp_path):
    """Budget check: 500 photo-like 1080x1080 JPEGs probe (read, hash, draft-decode) in a few seconds."""
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 255, 1080)
    base = np.stack([np.add.outer(ramp, ramp) / 2, np.tile(ramp, (1080, 1)), np.tile(ramp[::-1], (1080, 1))], -1)
    variants = [encode(Image.fromarray((base + rng.normal(0, 12, base.shape)).clip(0, 255).astype(np.uint8)),
                       "JPEG", quality=85) for _ in range(4)]
    creatives, metrics = small_landing_tables(n_creatives=500, n_days=1)
    folder = tmp_path / "landing"
    (folder / "images").mkdir(parents=True)
    for i, path in enumerate(creatives["image_path"]):
        # distinct bytes per file (a trailing comment segment) so nothing is cached by content
        (folder / path).write_bytes(variants[i % 4][:-2] + b"\xff\xfe\x00\x06" + i.to_bytes(4, "big") + b"\xff\xd9")
    write_landing(folder, creatives, metrics, render_images=False)
    start = time.perf_counter()
    result = ingest_landing_folder(folder, today=dt.date(2028, 1, 1))  # 500 daily launches from 2026-03-01
    elapsed = time.perf_counter() - start
    assert (result.images["decode_status"] == "ok").all() and result.images["sha256"].nunique() == 500
    assert elapsed < 15, f"ingest of 500 1080² JPEGs took {elapsed:.1f}s"


def test_a_daily_rerun_reuses_the_probes_of_unchanged_bytes_and_checks_changed_ones(tmp_path, monkeypatch):
    """The previous raw.images (read back from DuckDB, nullable integers and all) spares decoding the
    files whose bytes it probed ok; a file replaced by broken bytes under the same path is decoded
    and quarantined, and a lowered pixel limit still applies to a known image."""
    import pandas as pd

    from creative_dag.resources.warehouse import DuckDBWarehouse

    creatives, metrics = small_landing_tables()
    creatives.loc[1, "image_path"] = "images/noise.jpg"
    noise = encode(Image.effect_noise((128, 128), 60).convert("RGB"), "JPEG")
    (tmp_path / "landing" / "images").mkdir(parents=True)
    (tmp_path / "landing" / "images" / "noise.jpg").write_bytes(noise)
    write_landing(tmp_path / "landing", creatives, metrics)
    first = ingest_landing_folder(tmp_path / "landing", today=TODAY)
    assert set(first.images["decode_status"]) == {"ok"}
    warehouse = DuckDBWarehouse(str(tmp_path / "w.duckdb"))
    warehouse.write_table("raw.images", first.images)
    known = warehouse.read_table("raw.images")

    from PIL import ImageFile

    loads = []
    real_load = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: loads.append(1) or real_load(self))
    again = ingest_landing_folder(tmp_path / "landing", today=TODAY, known_images=known)
    assert loads == [] and again.images_reused == 3 and first.images_reused == 0  # nothing decoded
    pd.testing.assert_frame_equal(again.images, first.images, check_exact=True)

    (tmp_path / "landing" / "images" / "noise.jpg").write_bytes(noise[: len(noise) // 2])  # same path, cut
    changed = ingest_landing_folder(tmp_path / "landing", today=TODAY, known_images=known)
    assert len(loads) == 1  # only the changed file was decoded
    assert_image_quarantined(changed, "truncated_image")

    shown = first.images.set_index("creative_id")
    pixels = int(shown.loc["cr_001", "width"]) * int(shown.loc["cr_001", "height"])
    tighter = ingest_landing_folder(tmp_path / "landing", today=TODAY, known_images=known, max_image_pixels=pixels - 1)
    status = tighter.images.set_index("creative_id")["decode_status"]
    assert status["cr_001"] == status["cr_003"] == "decompression_bomb"  # known, yet over the new limit

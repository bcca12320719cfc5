"""Where creative images are read from: the landing folder, or an fsspec URI when allowed.

`image_path` values come from users' exports, so they are treated as untrusted: a
path must stay inside the landing folder, and a URI scheme must be allow-listed
(remote fetches are off by default).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import dagster as dg


class ImagePathError(ValueError):
    """An image_path that must not be read; `reason` is the quarantine reason code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class ImageLocator:
    """Resolves and reads image paths relative to one landing folder (plain Python)."""

    def __init__(self, root: str | os.PathLike, allowed_schemes: Sequence[str] = ("file",)) -> None:
        self.root = Path(root).resolve()
        self.allowed_schemes = tuple(s.lower() for s in allowed_schemes)

    def resolve(self, image_path: str) -> str:
        """Return a local absolute path or an allowed URI; raise ImagePathError otherwise."""
        if image_path is None or not str(image_path).strip():
            raise ImagePathError("missing_image_path", "image_path is empty")
        raw = str(image_path).strip()
        scheme, sep, rest = raw.partition("://")
        if sep:
            scheme = scheme.lower()
            if scheme not in self.allowed_schemes:
                raise ImagePathError(
                    "image_scheme_not_allowed",
                    f"image_path {raw!r} uses scheme {scheme!r}; allowed: {', '.join(self.allowed_schemes)} "
                    "(enable others in the image store's allowed_schemes)",
                )
            if scheme == "file":
                return self._inside_root(Path(rest), raw, allow_absolute=True)
            return raw
        if raw.startswith("/") or raw.startswith("\\") or (len(raw) > 1 and raw[1] == ":"):
            raise ImagePathError(
                "image_path_escapes_landing",
                f"image_path {raw!r} is absolute; it must be relative to the landing folder {self.root}",
            )
        if ".." in PurePosixPath(raw.replace("\\", "/")).parts:
            raise ImagePathError(
                "image_path_escapes_landing", f"image_path {raw!r} contains '..'; it must stay inside {self.root}"
            )
        return self._inside_root(self.root / raw, raw, allow_absolute=False)

    def _inside_root(self, candidate: Path, raw: str, allow_absolute: bool) -> str:
        resolved = candidate.resolve()
        if resolved != self.root and self.root not in resolved.parents:
            raise ImagePathError(
                "image_path_escapes_landing",
                f"image_path {raw!r} resolves to {resolved}, outside the landing folder {self.root}",
            )
        return str(resolved)

    def read_bytes(self, image_path: str) -> bytes:
        """Bytes of an image; raises ImagePathError (bad path) or OSError (missing/unreadable)."""
        location = self.resolve(image_path)
        if "://" in location:
            import fsspec  # only for allow-listed remote schemes

            with fsspec.open(location, "rb") as handle:
                return handle.read()
        return Path(location).read_bytes()


class ImageStoreResource(dg.ConfigurableResource):
    """Dagster resource: images under the landing folder (`root`), optional extra URI schemes."""

    root: str
    allowed_schemes: list[str] = ["file"]

    def locator(self) -> ImageLocator:
        return ImageLocator(self.root, self.allowed_schemes)

"""Where creative images are read from: the landing folder, or an fsspec URI when allowed.

`image_path` values come from users' exports, so they are treated as untrusted: a
path must stay inside the landing folder, and a URI scheme must be allow-listed
(remote fetches are off by default). A local path must name a regular file no larger than
`max_bytes`, decided from `os.stat()` before anything is opened: a FIFO would block the
reader forever, a device file never ends, and a 1 GiB file is not read to find out.
"""

from __future__ import annotations

import os
import stat
import unicodedata
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from creative_dag.contract import MAX_IMAGE_BYTES

_CHUNK = 1 << 20


class ImagePathError(ValueError):
    """An image_path that must not be read; `reason` is the quarantine reason code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class ImageLocator:
    """Resolves and reads image paths relative to one landing folder (plain Python)."""

    def __init__(self, root: str | os.PathLike, allowed_schemes: Sequence[str] = ("file",),
                 max_bytes: int = MAX_IMAGE_BYTES) -> None:
        self.root = Path(root).resolve()
        self.allowed_schemes = tuple(s.lower() for s in allowed_schemes)
        self.max_bytes = int(max_bytes)

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
        resolved = _unicode_variant(candidate).resolve()
        if resolved != self.root and self.root not in resolved.parents:
            raise ImagePathError(
                "image_path_escapes_landing",
                f"image_path {raw!r} resolves to {resolved}, outside the landing folder {self.root}",
            )
        return str(resolved)

    def read_bytes(self, image_path: str) -> bytes:
        """Bytes of an image; raises ImagePathError (bad path, not a regular file, too large) or
        OSError (missing/unreadable)."""
        location = self.resolve(image_path)
        if "://" in location:
            import fsspec  # only for allow-listed remote schemes

            with fsspec.open(location, "rb") as handle:
                data = handle.read(self.max_bytes + 1)
            if len(data) > self.max_bytes:
                raise ImagePathError("image_file_too_large", f"{location} is larger than {self.max_bytes:,} bytes")
            return data
        return read_regular_file(Path(location), self.max_bytes)


def read_regular_file(path: Path, max_bytes: int) -> bytes:
    """The bytes of a regular file of at most `max_bytes`, decided from stat() before reading.

    Opened non-blocking and checked again on the open descriptor, so a file swapped for a FIFO
    between the two checks cannot hang the run.
    """
    _check_regular(path, os.stat(path), max_bytes)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        _check_regular(path, os.fstat(fd), max_bytes)
        chunks, size = [], 0
        while size <= max_bytes:
            chunk = os.read(fd, min(_CHUNK, max_bytes + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    if size > max_bytes:  # grew while being read
        raise ImagePathError("image_file_too_large", f"{path} is larger than {max_bytes:,} bytes")
    return b"".join(chunks)


def _check_regular(path: Path, info: os.stat_result, max_bytes: int) -> None:
    if stat.S_ISDIR(info.st_mode):
        raise ImagePathError("image_not_a_file", f"{path} is a folder, not an image file")
    if not stat.S_ISREG(info.st_mode):
        kind = ("a named pipe (FIFO)" if stat.S_ISFIFO(info.st_mode) else "a device file"
                if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode) else "a socket"
                if stat.S_ISSOCK(info.st_mode) else "not a regular file")
        raise ImagePathError("image_not_a_file", f"{path} is {kind}, not an image file")
    if info.st_size > max_bytes:
        raise ImagePathError("image_file_too_large",
                             f"{path} has {info.st_size:,} bytes, more than the limit of {max_bytes:,}")


def _unicode_variant(candidate: Path) -> Path:
    """`candidate`, or its NFC/NFD spelling when only that exists (macOS zips store NFD names)."""
    if os.path.lexists(candidate):
        return candidate
    for form in ("NFC", "NFD"):
        variant = Path(unicodedata.normalize(form, str(candidate)))
        if variant != candidate and os.path.lexists(variant):
            return variant
    return candidate

"""Headless Chromium for tests: render a page, get its DOM after scripts ran, its console errors, a screenshot.

Used by tests that check what a person sees (tests/test_html_report.py, the Dagster UI test). Debian's
`chromium` package is found on PATH or installed once with apt-get when the tests run as root; without it
a test skips with the reason, except in CI (CI=true), where the install is attempted and failure fails.

How Chromium reports the page (measured on Chromium 150, Debian 12): `--dump-dom` prints the DOM after
`--virtual-time-budget` ms of virtual time (scripts, timers and loads run; the budget waits for pending
network); `--enable-logging=stderr --v=0` prints every console message and uncaught exception of the
page as `[pid:tid:time:INFO:CONSOLE:line] "message", source: url (line)`. Chromium logs console
messages of web pages at INFO whatever their level (only its own chrome:// pages keep the level), so
`console.log` and `console.error` cannot be told apart there: every console message of the page is
returned as an error. A page under test should log nothing; one that logs on purpose filters
`console_errors` itself.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
INSTALL_COMMAND = ("apt-get", "install", "-y", "--no-install-recommends", "chromium")
APT_TIMEOUT_S = 900
RENDER_TIMEOUT_S = 120

# "[12:34:0101/120000.123:INFO:CONSOLE:1] "msg", source: file:///x.html (1)"; older builds wrote
# "INFO:CONSOLE(1)" and some log real levels ("ERROR:CONSOLE"): all of them match.
_CONSOLE_LINE = re.compile(r"^\[[^\]]*:(?:[A-Z]+\d*):CONSOLE[:(]?\d*\)?\]\s*(?P<message>.*)$")

_unavailable_reason: str | None = None


@dataclass(frozen=True)
class RenderResult:
    """dom: the serialised DOM after scripts ran; console_errors: the page's console messages and
    uncaught exceptions, in order, without duplicates; screenshot: the PNG written."""

    dom: str
    console_errors: list[str]
    screenshot: Path


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def find_chromium() -> str | None:
    """The first Chromium (or Chrome) binary on PATH, or $CHROMIUM when it names one."""
    override = os.environ.get("CHROMIUM")
    if override:
        return shutil.which(override) or (override if os.access(override, os.X_OK) else None)
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


@functools.cache
def find_or_install_chromium() -> str | None:
    """The Chromium binary's path; installs Debian's `chromium` once per test session when it is absent.

    Installs only as root (or with password-less sudo in CI) on a machine with apt-get, running
    `apt-get install -y --no-install-recommends chromium`, and `apt-get update` first when the package
    is not known yet. Returns None when it cannot (`chromium_unavailable_reason()` says why) so a test
    can skip; in CI (CI=true) it raises RuntimeError instead, so the test fails rather than skips."""
    global _unavailable_reason
    found = find_chromium()
    if found:
        return found
    if _unavailable_reason is not None and in_ci():  # the install failed already: fail at once, not again
        raise RuntimeError(_unavailable_reason)
    try:
        _install_chromium()
    except RuntimeError as exc:
        _unavailable_reason = str(exc)
        if in_ci():
            raise
        log.warning("%s", exc)
        return None
    found = find_chromium()
    if found is None:
        _unavailable_reason = f"`{' '.join(INSTALL_COMMAND)}` succeeded but no chromium binary is on PATH"
        if in_ci():
            raise RuntimeError(_unavailable_reason)
    return found


def chromium_unavailable_reason() -> str:
    """Why find_or_install_chromium() returned None (for pytest.skip)."""
    return _unavailable_reason or "chromium is not installed"


def chromium_or_skip() -> str:
    """The Chromium binary, or skip the calling test with the reason (fails instead in CI)."""
    import pytest

    binary = find_or_install_chromium()
    if binary is None:
        pytest.skip(f"headless Chromium unavailable: {chromium_unavailable_reason()}")
    return binary


def _install_chromium() -> None:
    apt = shutil.which("apt-get")
    if apt is None:
        raise RuntimeError("chromium is not installed and apt-get is not available: install Chromium "
                           "(or set CHROMIUM to a Chrome/Chromium binary)")
    prefix: list[str] = []
    if os.geteuid() != 0:
        sudo = shutil.which("sudo")
        if not in_ci() or sudo is None:
            raise RuntimeError("chromium is not installed and installing it needs root: run "
                               f"`sudo {' '.join(INSTALL_COMMAND)}`")
        prefix = [sudo, "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [*prefix, *INSTALL_COMMAND]
    log.warning("chromium not found: running `%s`", " ".join(install))
    result = subprocess.run(install, capture_output=True, text=True, env=env, timeout=APT_TIMEOUT_S, check=False)
    if result.returncode != 0:
        update = [*prefix, "apt-get", "update"]
        log.warning("`%s` failed (exit %d); running `%s` and trying again", " ".join(install), result.returncode,
                    " ".join(update))
        subprocess.run(update, capture_output=True, text=True, env=env, timeout=APT_TIMEOUT_S, check=False)
        result = subprocess.run(install, capture_output=True, text=True, env=env, timeout=APT_TIMEOUT_S,
                                check=False)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"`{' '.join(install)}` failed (exit {result.returncode}): {' | '.join(tail)}")
    log.warning("installed chromium with `%s`", " ".join(install))


def _as_url(target: str) -> str:
    """A URL as is; a filesystem path as a file:// URL."""
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", target) or target.startswith(("about:", "data:")):
        return target
    return Path(target).resolve().as_uri()


def _run_chromium(binary: str, flags: list[str], url: str, wait_ms: int) -> tuple[str, str]:
    """stdout and stderr of one headless run with its own throw-away profile (runs in parallel do not
    share a profile lock). On a hang, the whole process group is killed and the error names the URL."""
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        command = [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                   "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--hide-scrollbars",
                   "--mute-audio", f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
                   f"--virtual-time-budget={int(wait_ms)}", *flags, url]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   errors="replace", start_new_session=True)
        timeout = RENDER_TIMEOUT_S + wait_ms / 1000.0
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise RuntimeError(f"headless chromium did not finish rendering {url} within {timeout:.0f} s") from None
    if process.returncode != 0:
        tail = " | ".join(err.strip().splitlines()[-3:])
        raise RuntimeError(f"headless chromium failed on {url} (exit {process.returncode}): {tail}")
    return out, err


def console_errors(stderr: str) -> list[str]:
    """The page's console messages and uncaught exceptions in Chromium's stderr log, in order, once each."""
    found: list[str] = []
    for line in stderr.splitlines():
        match = _CONSOLE_LINE.match(line.strip())
        message = match.group("message") if match else (line.strip() if "Uncaught" in line else None)
        if message and message not in found:
            found.append(message)
    return found


def render(target: str, screenshot: Path, width: int = 1400, height: int = 1000, wait_ms: int = 3000) -> RenderResult:
    """Render `target` (a URL, or a path to an HTML file) in headless Chromium.

    Two runs: `--dump-dom` for the DOM once scripts ran, and `--screenshot` at width x height (the
    top of the page). Console errors of both runs are returned. Raises RuntimeError when Chromium is
    unavailable (call find_or_install_chromium first to skip instead), fails, or hangs."""
    binary = find_or_install_chromium()
    if binary is None:
        raise RuntimeError(f"headless Chromium unavailable: {chromium_unavailable_reason()}")
    url = _as_url(target)
    screenshot = Path(screenshot).resolve()
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    screenshot.unlink(missing_ok=True)
    window = f"--window-size={int(width)},{int(height)}"
    dom, dom_log = _run_chromium(binary, ["--dump-dom", window], url, wait_ms)
    _, shot_log = _run_chromium(binary, [f"--screenshot={screenshot}", window], url, wait_ms)
    if not screenshot.is_file() or screenshot.stat().st_size == 0:
        raise RuntimeError(f"headless chromium wrote no screenshot of {url} to {screenshot}")
    errors = console_errors(dom_log)
    errors += [e for e in console_errors(shot_log) if e not in errors]
    return RenderResult(dom=dom, console_errors=errors, screenshot=screenshot)

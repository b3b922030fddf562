"""Headless Chromium for the tests that look at a page as a browser does (Debian's `chromium` package).

`find_chromium()` returns the browser's path, installing the package with apt-get where it is missing and we are
root (the CI machine), or the reason it cannot be had, for a skip. `open_page()` loads one local file in a single
browser launch and returns its DOM (after scripts ran), a screenshot, and every request the page made (from
Chromium's network log: the browser's own background requests, e.g. to Google, are told apart by the network
isolation key, which is the page's origin, file://, for the page's requests).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
INSTALL_COMMAND = ("apt-get", "install", "-y", "--no-install-recommends", "chromium")
INSTALL_TIMEOUT_SECONDS = 900
PAGE_TIMEOUT_SECONDS = 120
# No first-run work, no sync or update checks: fewer background requests, a faster start.
QUIET_FLAGS = (
    "--headless",
    "--no-sandbox",  # root in a container has no user namespace for the sandbox
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--hide-scrollbars",
)


def find_chromium() -> tuple[str | None, str]:
    """(path of a Chromium binary, "") or (None, why there is none)."""
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found, ""
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("apt-get") is None:
        return None, "no chromium on PATH, and not root with apt-get to install Debian's chromium package"
    try:
        subprocess.run(
            INSTALL_COMMAND,
            check=True,
            capture_output=True,
            timeout=INSTALL_TIMEOUT_SECONDS,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as err:
        details = getattr(err, "stderr", b"") or b""
        return None, f"`{' '.join(INSTALL_COMMAND)}` failed ({err}): {details.decode(errors='replace')[-300:]}"
    found = shutil.which("chromium")
    return (found, "") if found else (None, "apt-get installed chromium but no chromium is on PATH")


@dataclass(frozen=True)
class LoadedPage:
    """dom: the serialised DOM after load; screenshot: PNG bytes; requests: URLs the page itself requested (its own
    file: URL is not among them: Chromium reads local files outside the network stack); num_log_events: events in
    the network log (0 would mean there was no log to check)."""

    dom: str
    screenshot: bytes
    requests: list[str]
    num_log_events: int


def open_page(chromium: str, page: Path, width: int = 1100, height: int = 1500) -> LoadedPage:
    """Load `page` from disk in one headless Chromium run: --dump-dom, --screenshot and --log-net-log at once."""
    with tempfile.TemporaryDirectory(prefix="featcache-browser-") as scratch:
        scratch_dir = Path(scratch)
        screenshot, net_log = scratch_dir / "screenshot.png", scratch_dir / "net-log.json"
        completed = subprocess.run(
            [
                chromium,
                *QUIET_FLAGS,
                f"--user-data-dir={scratch_dir / 'profile'}",
                f"--window-size={width},{height}",
                f"--screenshot={screenshot}",
                f"--log-net-log={net_log}",
                "--dump-dom",
                page.resolve().as_uri(),
            ],
            capture_output=True,
            timeout=PAGE_TIMEOUT_SECONDS,
        )
        assert completed.returncode == 0, completed.stderr.decode(errors="replace")[-2000:]
        num_events = len(json.loads(net_log.read_text(encoding="utf-8"))["events"])
        return LoadedPage(completed.stdout.decode("utf-8"), screenshot.read_bytes(), page_requests(net_log), num_events)


def page_requests(net_log: Path) -> list[str]:
    """The URLs of the requests a file:// page started (URL_REQUEST_START_JOB events keyed to the file origin)."""
    log = json.loads(net_log.read_text(encoding="utf-8"))
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return [
        event["params"]["url"]
        for event in log["events"]
        if event.get("type") == start_job
        and "file://" in str(event.get("params", {}).get("network_isolation_key", ""))
        and "url" in event.get("params", {})
    ]

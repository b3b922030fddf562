"""The model page in a real browser: headless Chromium opens the report from disk (one launch for the suite), and
the test reads the DOM it built, its screenshot, and its network log.

FEATCACHE_UPDATE_SCREENSHOT=1 also writes the screenshot to docs/images/model-report.png (the README's).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
from browser import open_page, page_requests
from report_fixtures import FRAME_INDICES, WRONG, build_report_world
from test_evaluate import CLASS_NAMES

from featcache.report import write_model_report

UPDATE_SCREENSHOT_ENV = "FEATCACHE_UPDATE_SCREENSHOT"
README_SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "images" / "model-report.png"
README_SCREENSHOT_WIDTH = 700  # pixels; with a 160-colour palette the committed PNG stays under 150 KB
README_SCREENSHOT_COLOURS = 160
WINDOW = (1100, 2000)  # width, height: down to the first misclassified videos' thumbnails


def test_the_model_report_in_a_browser(chromium: str, tmp_path: Path) -> None:
    world = build_report_world(tmp_path, discs=True)
    # One misclassified video's source was moved away: its strip says so, the page still renders.
    moved = world.video_root / "Gamma" / "v8.avi"
    shutil.move(moved, tmp_path / "v8-moved-away.avi")
    page_path, _ = write_model_report(
        world.model_dir, world.cache, out=tmp_path / "report.html", video_root=world.video_root
    )

    loaded = open_page(chromium, page_path, *WINDOW)
    dom = loaded.dom

    confusion = dom.split('id="confusion-matrix"')[1].split("</table>")[0]
    assert len(re.findall(r"<td\b", confusion)) == len(CLASS_NAMES) ** 2
    assert len(re.findall(r'<tr class="class-row"', dom)) == len(CLASS_NAMES)
    strips = re.findall(r'<div class="video misclassified-video">(.*?)</div>\s*</div>', dom, flags=re.S)
    assert len(strips) == len(WRONG), "one thumbnail strip per misclassified video"
    shown = [strip for strip in strips if 'data-status="ok"' in strip]
    missing = [strip for strip in strips if 'data-status="missing"' in strip]
    assert len(shown) == 1 and len(missing) == 1 and "Gamma/v8.avi" in missing[0]
    assert len(re.findall(r'<img src="data:image/jpeg', shown[0])) == len(FRAME_INDICES)
    assert 'id="learning-curves"' in dom and "data-order" not in dom  # scripts ran, nothing sorted yet

    # No request left the page: every src/href is inline, and the network log holds no request of the page's.
    assert not re.findall(r'(?:src|href)="(?:https?:)?//', dom)
    assert loaded.num_log_events > 0, "Chromium wrote no network log"
    assert loaded.requests == []

    screenshot = cv2.imdecode(np.frombuffer(loaded.screenshot, np.uint8), cv2.IMREAD_COLOR)
    assert screenshot is not None and screenshot.shape[:2] == (WINDOW[1], WINDOW[0])
    assert screenshot.std() > 10, "the screenshot is not a blank page"
    if os.environ.get(UPDATE_SCREENSHOT_ENV) == "1":
        write_readme_screenshot(screenshot)


def write_readme_screenshot(screenshot: np.ndarray) -> None:
    from PIL import Image  # matplotlib's dependency

    height, width = screenshot.shape[:2]
    size = (README_SCREENSHOT_WIDTH, round(height * README_SCREENSHOT_WIDTH / width))
    small = cv2.cvtColor(cv2.resize(screenshot, size, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
    README_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    # A palette without dithering: flat page colours compress far better than dithered noise.
    palette = Image.fromarray(small).quantize(README_SCREENSHOT_COLOURS, dither=Image.Dither.NONE)
    palette.save(README_SCREENSHOT, optimize=True)


def test_page_requests_are_told_from_the_browsers_own(tmp_path: Path) -> None:
    """The network-log reading above can fail: a page's request is keyed to its file:// origin, Chromium's own
    background requests (time sync, accounts) are not. The events are shaped as Chromium 150 writes them."""
    start_job = 7
    events = [
        {"type": start_job, "params": {"url": "https://example.com/a.png", "network_isolation_key": "file:// file://"}},
        {"type": start_job, "params": {"url": "http://clients2.google.com/time", "network_isolation_key": "null null"}},
        {"type": 3, "params": {"url": "https://example.com/b.png"}},
    ]
    net_log = tmp_path / "net-log.json"
    net_log.write_text(
        json.dumps({"constants": {"logEventTypes": {"URL_REQUEST_START_JOB": start_job}}, "events": events})
    )
    assert page_requests(net_log) == ["https://example.com/a.png"]

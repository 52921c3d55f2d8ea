"""The report opens in headless Chromium: every image loads, nothing is fetched, no console errors."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("DIGITLAB_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists() and not shutil.which(CHROMIUM):
        pytest.skip(f"chromium not found at {CHROMIUM}")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


def test_report_renders_with_every_image_loaded(browser, reproduce_dir, tmp_path):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors, requests = [], []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("request", lambda req: requests.append(req.url))
    page.goto((reproduce_dir / "report.html").resolve().as_uri(), wait_until="load")
    images = page.evaluate(
        "Array.from(document.images).map(i => ({alt: i.alt, complete: i.complete, w: i.naturalWidth,"
        " h: i.naturalHeight, shown: i.getBoundingClientRect().width}))")
    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    headings = page.eval_on_selector_all("section h2", "els => els.map(e => e.textContent)")
    page.close()

    assert errors == []
    # Only the page itself and its embedded data: URIs; nothing from the network.
    assert all(url.startswith(("file:", "data:")) for url in requests), requests
    assert len(images) == 7
    for image in images:
        assert image["complete"] and image["w"] > 0 and image["h"] > 0 and image["shown"] > 0, image
    assert headings[0] == "Overview" and "Misclassified images" in headings and len(headings) == 12
    assert shot.stat().st_size > 50_000  # a real, full-page rendering

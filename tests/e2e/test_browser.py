"""The draw-a-digit page in a real browser (Debian's chromium via Playwright) against a real
`digitlab serve`: mouse strokes, live predictions, Clear, uploads, touch on a phone-sized screen.

Screenshots land in test-output/e2e/ (ignored by git).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from serve_process import OUTPUT, serve

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(300),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed at /usr/bin/chromium "
                                                     "(apt-get install chromium)"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
expect = sync_api.expect

ONE = [[(0.50, 0.18), (0.50, 0.82)]]                                       # a vertical stroke


def _bezier(p0, p1, p2, n=10):
    """n points of a quadratic Bezier curve: smooth strokes, like a hand's."""
    return [((1 - t) ** 2 * p0[0] + 2 * (1 - t) * t * p1[0] + t * t * p2[0],
             (1 - t) ** 2 * p0[1] + 2 * (1 - t) * t * p1[1] + t * t * p2[1]) for t in (i / n for i in range(1, n + 1))]


# A 7 as people draw it: a bar rising a little, then a slightly bent diagonal.
SEVEN = [[(0.27, 0.27), *_bezier((0.27, 0.27), (0.50, 0.19), (0.72, 0.21)),
          *_bezier((0.72, 0.21), (0.56, 0.45), (0.47, 0.81))]]
SQUIGGLE = [[(0.3, 0.3), (0.6, 0.35), (0.4, 0.6), (0.7, 0.7)]]


@pytest.fixture(scope="module")
def server():
    with serve("--no-access-log", log_name="server-browser.log") as base:
        yield base


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1280, "height": 860}, device_scale_factor=1)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.goto(server + "/")
    expect(pg.locator("#model-badge")).to_contain_text("Model")
    yield pg
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def draw(page, strokes, steps: int = 12) -> None:
    """Draw polylines (0..1 coordinates on the canvas) with the mouse."""
    box = page.locator("#pad").bounding_box()
    at = lambda x, y: (box["x"] + x * box["width"], box["y"] + y * box["height"])  # noqa: E731
    for line in strokes:
        page.mouse.move(*at(*line[0]))
        page.mouse.down()
        for point in line[1:]:
            page.mouse.move(*at(*point), steps=steps)
        page.mouse.up()


def shot(page, name: str) -> Path:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    path = OUTPUT / name
    page.screenshot(path=str(path), full_page=True)
    return path


def ink_on_canvas(page) -> int:
    return page.evaluate("""() => {
        const c = document.getElementById('pad');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] > 128) n++;
        return n; }""")


def test_drawing_shows_a_live_prediction_bars_and_the_28x28(page):
    draw(page, SQUIGGLE)
    expect(page.locator("#result")).to_have_attribute("data-state", "ready")
    expect(page.locator("#digit")).to_have_text(re.compile(r"^[0-9?]$"))
    expect(page.locator("#saw")).to_be_visible()
    assert page.locator("#saw").evaluate("img => img.naturalWidth") == 28
    assert page.locator("#bars li").count() == 10
    widths = page.locator("#bars .fill").evaluate_all("els => els.map(e => parseFloat(e.style.width))")
    assert abs(sum(widths) - 100.0) < 0.5  # the ten probabilities, as bars


def test_live_updates_while_drawing_are_throttled(page):
    # Record when the page calls /api/predict, in the page's own clock.
    page.add_init_script("""window.__calls = []; const realFetch = window.fetch;
        window.fetch = (url, opts) => { if (String(url).includes('/api/predict')) window.__calls.push(performance.now());
                                        return realFetch(url, opts); };""")
    page.reload()
    box = page.locator("#pad").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.15)
    page.mouse.down()
    for i in range(60):  # a pointermove every ~20 ms or more
        page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * (0.15 + 0.7 * i / 59))
        page.wait_for_timeout(20)
    up_at = page.evaluate("performance.now()")
    page.mouse.up()
    expect(page.locator("#digit")).to_have_text("1")
    page.wait_for_function(f"window.__calls.filter(t => t >= {up_at}).length >= 1")
    calls = page.evaluate("window.__calls")
    during = [t for t in calls if t < up_at]
    assert len(during) >= 2, calls                     # it updates while drawing...
    gaps = [b - a for a, b in zip(during, during[1:])]
    assert min(gaps) >= 120, gaps                      # ...at most every ~150 ms, not per pointermove
    assert len(calls) > len(during)                    # and once more when the stroke ends


def test_vertical_stroke_is_one_and_seven_is_seven_and_clear_works(page):
    draw(page, ONE)
    expect(page.locator("#digit")).to_have_text("1")
    shot(page, "draw-one.png")

    page.click("#clear")
    expect(page.locator("#digit")).to_have_text("–")
    expect(page.locator("#result")).to_have_attribute("data-state", "empty")
    expect(page.locator("#saw")).to_be_hidden()
    assert ink_on_canvas(page) == 0

    draw(page, SEVEN, steps=3)
    expect(page.locator("#digit")).to_have_text("7")
    expect(page.locator("#bars li.top")).to_have_attribute("data-digit", "7")
    shot(page, "draw-seven.png")


def _upload(page, button: str, path: Path) -> None:
    with page.expect_file_chooser() as chooser:
        page.click(button)
    chooser.value.set_files(str(path))


def _photo(tmp_path: Path, digits: str) -> Path:
    """A 'photo' of digits: dark pen on light, slightly grey paper, as a PNG file."""
    from PIL import Image, ImageDraw

    shapes = {"1": ONE[0], "7": [(0.28, 0.22), (0.72, 0.22), (0.44, 0.82)],
              "4": [(0.6, 0.82), (0.6, 0.18), (0.25, 0.6), (0.75, 0.6)]}
    size = 180
    image = Image.new("L", (size * len(digits), size), 232)
    draw_ = ImageDraw.Draw(image)
    for i, d in enumerate(digits):
        pts = [(size * (i + x), size * y) for x, y in shapes[d]]
        draw_.line(pts, fill=30, width=16, joint="curve")
        for x, y in (pts[0], pts[-1]):
            draw_.ellipse((x - 8, y - 8, x + 8, y + 8), fill=30)
    path = tmp_path / f"photo-{digits}.png"
    image.save(path)
    return path


def test_upload_a_photo_of_a_digit_and_of_a_number(page, tmp_path):
    _upload(page, "#upload-digit", _photo(tmp_path, "7"))
    expect(page.locator("#digit")).to_have_text("7")
    expect(page.locator("#reading")).to_be_visible()  # the uploaded photo is shown
    expect(page.locator("#saw")).to_be_visible()

    _upload(page, "#upload-number", _photo(tmp_path, "714"))
    expect(page.locator("#digit")).to_have_text("714")
    expect(page.locator("#boxes > div")).to_have_count(3)
    expect(page.locator("#chips .chip")).to_have_count(3)
    shot(page, "upload-number.png")

    # An upload that is not an image: the server's one-line reason is shown, the page keeps working.
    bad = tmp_path / "not-an-image.png"
    bad.write_text("hello")
    _upload(page, "#upload-digit", bad)
    expect(page.locator("#error")).to_contain_text("not an image")
    page.click("#clear")
    draw(page, ONE)
    expect(page.locator("#digit")).to_have_text("1")


def test_touch_drawing_on_a_phone_sized_screen(browser, server):
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=3,
                                  is_mobile=True, has_touch=True)
    page = context.new_page()
    try:
        page.goto(server + "/")
        expect(page.locator("#model-badge")).to_contain_text("Model")
        box = page.locator("#pad").bounding_box()
        assert box["width"] <= 390 and box["x"] >= 0  # the board fits the phone's width
        # Real touch events through the DevTools protocol: the page sees pointerType "touch".
        cdp = context.new_cdp_session(page)
        x = box["x"] + box["width"] * 0.5
        ys = [box["y"] + box["height"] * (0.18 + 0.64 * i / 20) for i in range(21)]
        cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x, "y": ys[0]}]})
        for y in ys[1:]:
            cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x, "y": y}]})
        cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
        expect(page.locator("#digit")).to_have_text("1")
        # The page itself did not scroll while drawing (touch-action: none on the canvas).
        assert page.evaluate("window.scrollY") == 0
        shot(page, "phone-one.png")
    finally:
        context.close()


def test_page_and_api_docs_load_nothing_from_the_internet(browser, server):
    context = browser.new_context()
    page = context.new_page()
    outside: list[str] = []
    page.on("request", lambda req: req.url.startswith(server) or req.url.startswith("data:")
            or outside.append(req.url))
    try:
        page.goto(server + "/")
        expect(page.locator("#model-badge")).to_contain_text("Model")
        page.goto(server + "/docs")
        expect(page.locator(".opblock-summary-path").first).to_be_visible()  # Swagger UI rendered
        expect(page.locator(".opblock-summary-path", has_text="/api/predict")).to_have_count(1)
    finally:
        context.close()
    assert outside == [], f"requests outside the server: {outside}"

"""The detect report: one self-contained page that a real headless browser renders, and where a click on
the timeline changes the frame shown."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest

from memad.events import EventTracker, find_events
from memad.reports.html_report import ReportBuilder


def _frame(i: int) -> np.ndarray:
    img = np.full((48, 64, 3), 30, np.uint8)
    img[:, (i * 3) % 64] = 250  # a bar that moves: every frame looks different
    return img


@pytest.fixture()
def report(tmp_path):
    scores = np.r_[np.full(40, 0.2), np.full(15, 1.5), np.full(45, 0.3)]
    builder = ReportBuilder("test video", threshold=1.0, fps=10, max_images=40)
    tracker = EventTracker(1.0, window=1, release=0.0, min_frames=2, merge_gap=0)
    for i, s in enumerate(scores):
        step = tracker.update(i, s)
        builder.add(i, s, step.smoothed, int(step.active), _frame(i))
    events = [{"event": k, **e.as_dict()} for k, e in enumerate(find_events(range(100), scores, EventTracker(
        1.0, window=1, release=0.0, min_frames=2, merge_gap=0)))]
    return builder.write(tmp_path / "report.html", events), builder


def test_the_page_is_self_contained_and_keeps_a_bounded_set_of_frames(report):
    path, builder = report
    text = path.read_text()
    assert not re.search(r"""(src|href)=["'](https?:)?//""", text)  # no CDN, no remote file
    assert "<script src" not in text and "<link" not in text
    images = builder.images()
    assert len(images) <= 40 and 0 in images  # at most max_images, the first frame at the even stride
    assert set(sorted(images, key=lambda i: -builder.score[i])[:5]) <= set(range(40, 55))  # the top frames kept


def _browser():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("no Chromium and ChromeDriver on this machine (.ci/run installs Debian's chromium and "
                    "chromium-driver where apt-get can)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e .[test])")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1300,900"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(driver), options=options)


def test_a_real_browser_renders_the_timeline_and_a_click_changes_the_frame(report):
    path, _ = report
    browser = _browser()
    try:
        browser.get(path.as_uri())
        painted = browser.execute_script("""
            const c = document.getElementById('timeline'); const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0; for (let i = 3; i < px.length; i += 4) if (px[i] > 0) n++; return n;""")
        assert painted > 1000  # the curves, threshold and event band are drawn
        img = browser.find_element("id", "frame")
        assert browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img) > 0
        first = img.get_attribute("data-frame")
        assert first == "40"  # the page opens on the first event's peak
        canvas = browser.find_element("id", "timeline")
        from selenium.webdriver import ActionChains

        # click near the end of the timeline (frames ~95): another frame, its caption and a normal decision
        ActionChains(browser).move_to_element_with_offset(canvas, canvas.size["width"] // 2 - 20, 0).click().perform()
        second = img.get_attribute("data-frame")
        caption = browser.find_element("id", "caption").text
        assert second != first and int(second) > 80 and "normal" in caption and f"frame {second}" in caption
        assert browser.execute_script("return arguments[0].naturalWidth", img) > 0
        rows = browser.find_elements("css selector", "tr.ev")
        assert len(rows) == 1
        rows[0].click()
        assert img.get_attribute("data-frame") == "40"
    finally:
        browser.quit()


def _memory_payload():
    """Three items, each with its exemplar strip and its normal distance quantiles (median, 90%, 99%)."""
    import torch

    from memad.scoring.profile import png_strip

    strips = [png_strip(torch.full((2, 3, 8, 8), 60 * (m + 1), dtype=torch.uint8)) for m in range(3)]
    return {"samples": 100, "levels": [{
        "name": "level 3", "items": 3, "per_input": False, "share": [0.6, 0.3, 0.1], "quantiles": [0.5, 0.9, 0.99],
        "distance": [[0.01, 0.02, 0.03], [0.01, 0.02, 0.03], [0.02, 0.04, 0.05]], "exemplars": strips,
        "colours": ["#1f77b4", "#ff7f0e", "#2ca02c"]}]}


@pytest.fixture()
def memory_report(tmp_path):
    scores = np.r_[np.full(40, 0.2), np.full(15, 1.5), np.full(45, 0.3)]
    memory = _memory_payload()
    builder = ReportBuilder("test video", threshold=1.0, fps=10, max_images=40, memory=memory)
    tracker = EventTracker(1.0, window=1, release=0.0, min_frames=2, merge_gap=0)
    for i, s in enumerate(scores):
        step = tracker.update(i, s)
        # anomalous frames read item 2 far from it (above its normal 99%), the others item 0 near it (below its median)
        region = [2, 0.2, 0.25, 0.5, 0.25, 0.125] if s > 1 else [0, 0.005, 0.0, 0.0, 0.25, 0.125]
        builder.add(i, s, step.smoothed, int(step.active), _frame(i), [region])
    events = [{"event": 0, **e.as_dict()} for e in find_events(range(100), scores, EventTracker(
        1.0, window=1, release=0.0, min_frames=2, merge_gap=0))]
    return builder.write(tmp_path / "report.html", events), memory


def test_the_memory_exemplars_are_in_the_page_once(memory_report):
    path, memory = memory_report
    text = path.read_text()
    strips = memory["levels"][0]["exemplars"]
    assert text.count(strips[0]) == 1 and text.count(strips[2]) == 1  # once for the page, not once per frame
    assert text.count(strips[1]) == 0  # no frame read item 1: its exemplars are left out


def test_a_real_browser_shows_the_item_read_in_the_most_anomalous_region(memory_report, tmp_path):
    path, _ = memory_report
    browser = _browser()
    try:
        browser.get(path.as_uri())
        img = browser.find_element("id", "frame")
        assert img.get_attribute("data-frame") == "40"
        level = browser.find_element("css selector", "#memory .lvl")
        assert level.get_attribute("data-item") == "2" and "level 3: item 2" in level.text
        assert "above the 99th percentile" in level.text and "10.0% of normal reads" in level.text
        exemplars = browser.find_element("css selector", "#memory img.ex")
        assert browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", exemplars) == 17
        box = browser.execute_script("""const b = document.getElementById('region').getBoundingClientRect(),
            i = document.getElementById('frame').getBoundingClientRect();
            return [(b.left - i.left) / i.width, (b.top - i.top) / i.height, b.width / i.width, b.display];""")
        assert box[0] == pytest.approx(0.5, abs=0.02) and box[1] == pytest.approx(0.25, abs=0.02)
        assert box[2] == pytest.approx(0.125, abs=0.02)
        canvas = browser.find_element("id", "timeline")
        from selenium.webdriver import ActionChains

        ActionChains(browser).move_to_element_with_offset(canvas, canvas.size["width"] // 2 - 20, 0).click().perform()
        level = browser.find_element("css selector", "#memory .lvl")
        assert level.get_attribute("data-item") == "0" and "below the median" in level.text
        shot = tmp_path / "shot.png"
        assert browser.save_screenshot(str(shot)) and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        browser.quit()

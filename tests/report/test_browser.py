"""The report in a real browser: headless Debian Chromium driven by selenium.

Skipped, with the reason, where chromium, chromium-driver or selenium is absent (.ci/run
installs them). Load times are printed (run with -s), never asserted.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest


def _helper():
    """tests/report/browser.py, loaded by path (pytest's importlib mode puts no test folder on
    sys.path, and the tests are no package)."""
    name = "rdcompress_report_browser"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("browser.py"))
        assert spec is not None and spec.loader is not None
        sys.modules[name] = module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return sys.modules[name]


Browser, unavailable = _helper().Browser, _helper().unavailable
REASON = unavailable()
pytestmark = pytest.mark.skipif(REASON is not None, reason=REASON or "")

RUN_POINTS = """return [...document.querySelectorAll('#rd .scatterlayer .trace')]
  .filter(g => g.__data__ && g.__data__[0].trace.meta === 'runs')
  .flatMap(g => [...g.querySelectorAll('path.point')])"""


@pytest.fixture(scope="module")
def page(tiny_report):
    browser = Browser()
    seconds = browser.open(tiny_report)
    print(f"\n{tiny_report.name}: loaded in {seconds:.2f} s")
    yield browser
    browser.close()


def _rows(tiny_report) -> int:
    import re

    data = re.search(r'id="report-data">(.*?)</script>', tiny_report.read_text(), re.S)
    assert data is not None
    return len(json.loads(data.group(1))["models"])


def test_loads_without_console_errors(page):
    errors = [e for e in page.console() if e["level"] in ("SEVERE", "ERROR")]
    assert errors == []
    assert page.js("return typeof Plotly") == "object"  # the inline bundle ran


def test_one_point_per_run(page, tiny_report):
    runs = _rows(tiny_report)
    assert len(page.js(RUN_POINTS)) == runs == 4  # drawn SVG markers
    for axis, value in (("y-axis", "kl"), ("x-axis", "bits_per_weight"), ("y-axis",
                                                                          "accuracy")):
        page.js(f"const s = document.getElementById('{axis}'); s.value = '{value}';"
                "s.dispatchEvent(new Event('change'));")
        assert len(page.js(RUN_POINTS)) == runs, (axis, value)


def test_clicking_a_point_selects_its_model(page):
    from selenium.webdriver.common.action_chains import ActionChains

    before = page.js("return window.report.selected")
    points = page.js(RUN_POINTS)
    ids = page.js("""return arguments[0].map(p => {
        const trace = p.closest('.trace').__data__[0].trace;
        return trace.customdata[p.__data__.i]; })""", points)
    target = next(i for i, model in enumerate(ids) if model != before)
    ActionChains(page.driver).move_to_element(points[target]).click().perform()
    page.js("return 0")
    assert page.js("return window.report.selected") == ids[target]
    title = page.js("return document.getElementById('detail-title').textContent")
    file = page.js("return document.getElementById('detail-info').textContent")
    selected_row = page.js("return document.querySelector('tr.model-row.selected')"
                           ".dataset.id")
    assert int(selected_row) == ids[target]
    assert title and "·" in title and ".rdz" in file
    layer_rows = page.js("return document.querySelectorAll('#layer-table tr').length")
    assert layer_rows == 1 + 6  # header + digits-mlp's six tensors


def test_gallery_shows_images_of_changed_inputs(page):
    # the most damaged model: its gallery is not empty
    page.js("""const ev = JSON.parse(document.getElementById('report-data').textContent)
        .evaluation; const worst = Object.entries(ev).sort((a, b) =>
        b[1].changed_count - a[1].changed_count)[0][0]; window.reportSelect(+worst, false);""")
    images = page.js("return [...document.querySelectorAll('#gallery img.thumb')]"
                     ".map(i => [i.complete, i.naturalWidth, i.naturalHeight])")
    assert images, "the gallery shows no image"
    assert all(done and width == 8 and height == 8 for done, width, height in images)
    assert page.js("return document.querySelectorAll('#confusion .heatmaplayer').length") == 1


def test_a_second_model_side_by_side(page):
    first = page.js("return window.report.selected")
    other = page.js("return [...document.querySelectorAll('tr.model-row')].map(r => "
                    "+r.dataset.id).find(i => i !== window.report.selected)")
    page.js("window.reportSelect(arguments[0], true)", other)
    assert page.js("return window.report.compared") == other
    assert page.js("return window.report.selected") == first
    header = page.js("return document.querySelector('#layer-table tr').textContent")
    assert "compared" in header
    assert [e for e in page.console() if e["level"] in ("SEVERE", "ERROR")] == []

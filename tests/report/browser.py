"""Headless Chromium for the report tests (Debian's chromium + chromium-driver, via selenium).

Never downloads a browser: the driver is /usr/bin/chromedriver (or $CHROMEDRIVER) and the
browser /usr/bin/chromium (or $CHROMIUM). ``unavailable()`` says why tests must skip.

Also a measuring tool: ``PYTHONPATH=src python tests/report/browser.py REPORT.html`` prints the
file's size and its load time (navigation start to the page's script having drawn every view).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1300,1800")


def unavailable() -> str | None:
    """Why a browser test cannot run here, or None."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not (Path(path).is_file() and os.access(path, os.X_OK)):
            return f"{path} is absent: apt-get install -y {package} (Debian) to run this test"
    return None


class Browser:
    """One headless Chromium with a fresh profile; ``close()`` ends it and removes the profile."""

    def __init__(self) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self.profile = tempfile.mkdtemp(prefix="rdcompress-chromium-")
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in (*FLAGS, f"--user-data-dir={self.profile}"):
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))

    def open(self, path: str | Path, timeout: float = 60.0) -> float:
        """Load the report at ``path``; seconds from navigation start until its script
        finished drawing (``window.report.readyMs``)."""
        self.driver.get(Path(path).resolve().as_uri())
        deadline = time.monotonic() + timeout
        while not self.js("return !!(window.report && window.report.ready)"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{path}: the report's script did not finish in {timeout} s")
            time.sleep(0.05)
        return float(self.js("return window.report.readyMs")) / 1000.0

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def console(self) -> list[dict[str, Any]]:
        """Browser console entries since the last call."""
        return list(self.driver.get_log("browser"))

    def close(self) -> None:
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python tests/report/browser.py REPORT.html", file=sys.stderr)
        return 2
    reason = unavailable()
    if reason:
        print(reason, file=sys.stderr)
        return 1
    browser = Browser()
    try:
        seconds, own = [], []
        for _ in range(3):
            seconds.append(browser.open(argv[0]))
            own.append(seconds[-1] - browser.js("return window.report.startMs") / 1000)
        points = browser.js("return document.getElementById('rd').data.filter("
                            "t => t.meta === 'runs').reduce((n, t) => n + t.x.length, 0)")
    finally:
        browser.close()
    size = Path(argv[0]).stat().st_size
    print(f"{argv[0]}: {size / 1e6:.2f} MB, {points} points; load "
          + ", ".join(f"{s:.2f}" for s in seconds) + " s, of which the report's own script "
          + ", ".join(f"{s:.2f}" for s in own) + " s (3 loads; load average "
          + " ".join(f"{v:.1f}" for v in os.getloadavg()) + ")")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

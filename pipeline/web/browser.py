"""Headless Chromium through Selenium: emails pictured exactly as a browser lays them out."""

from __future__ import annotations

import base64
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service

from pipeline.errors import BrowserError

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
DRIVERS = ("chromedriver",)
INSTALL_HINT = "install Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)"
# Quiet and self-contained: no profile of the user's, no updates, no sign-in, no first-run pages.
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run")
_LOAD_HEIGHT = 100  # layout height while measuring: content taller than this sets the real height


def _find(names: tuple[str, ...], what: str) -> str:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    raise BrowserError(f"{what} not found: {INSTALL_HINT}")


@contextmanager
def headless_chromium() -> Iterator[webdriver.Chrome]:
    """A fresh headless Chromium with a throwaway profile, quit and cleaned up afterwards."""
    binary = _find(BROWSERS, "Chromium")
    driver_path = _find(DRIVERS, "chromedriver")
    with tempfile.TemporaryDirectory(prefix="campaign-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = binary
        for flag in (*FLAGS, f"--user-data-dir={profile}"):
            options.add_argument(flag)
        try:
            # An explicit driver path keeps Selenium Manager from trying to download one.
            driver = webdriver.Chrome(options=options, service=Service(driver_path))
        except WebDriverException as exc:
            reason = (exc.msg or str(exc)).strip().splitlines()[0]
            raise BrowserError(f"Chromium did not start ({reason}); {INSTALL_HINT}") from None
        try:
            yield driver
        finally:
            driver.quit()


def set_viewport(driver: webdriver.Chrome, width: int, height: int) -> None:
    """An exact viewport: a headless window cannot be made narrower than 500 px any other way."""
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})


def screenshot_html(html: str, width: int) -> bytes:
    """A PNG of an HTML document laid out width CSS pixels wide, as tall as its content."""
    with tempfile.TemporaryDirectory(prefix="campaign-shot-") as folder, headless_chromium() as driver:
        page = Path(folder) / "email.html"
        page.write_text(html, encoding="utf-8")
        set_viewport(driver, width, _LOAD_HEIGHT)
        driver.get(page.as_uri())
        height = driver.execute_script(
            "return Math.max(document.documentElement.scrollHeight, document.body ? document.body.scrollHeight : 0)")
        set_viewport(driver, width, max(int(height), 1))
        shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png"})
        return base64.b64decode(shot["data"])

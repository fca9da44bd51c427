"""A real browser for the web console's tests: Debian's Chromium, headless, driven by
Selenium through Debian's chromedriver. `chromium()` starts one (pytest skips where it
is not installed, saying why); `Page` wraps the few waits the tests share (every wait is
Selenium's own, on the page's state). Used by tests/e2e/test_web_console.py.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@contextmanager
def chromium(*, width: int = 1400, height: int = 1000) -> Iterator[webdriver.Chrome]:
    if not (Path(CHROMIUM).exists() and shutil.which("chromedriver")):
        pytest.skip("Chromium and chromedriver are not installed (make setup installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={width},{height}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


class Page:
    def __init__(self, driver: webdriver.Chrome, base: str) -> None:
        self.driver, self.base = driver, base.rstrip("/")

    def open(self, hash_: str = "") -> None:
        self.driver.get(f"{self.base}/ui/{hash_}")

    def go(self, hash_: str) -> None:
        """Another view of the page, without a reload (the router follows the hash)."""
        self.driver.execute_script("location.hash = arguments[0]", hash_)

    def until(self, check: Callable[[webdriver.Chrome], Any], *, timeout: float = 10.0) -> Any:
        return WebDriverWait(self.driver, timeout, poll_frequency=0.05).until(check)

    def find(self, css: str, *, timeout: float = 10.0) -> WebElement:
        found: WebElement = self.until(lambda d: d.find_element(By.CSS_SELECTOR, css),
                                       timeout=timeout)
        return found

    def attrs(self, css: str, name: str) -> list[str]:
        """An attribute of every element `css` finds, read in one go in the page (rows are
        redrawn as the watch stream changes them: elements found earlier go stale)."""
        return list(self.driver.execute_script(
            "return [...document.querySelectorAll(arguments[0])]"
            ".map((e) => e.getAttribute(arguments[1]))", css, name))

    def text_of(self, css: str) -> str:
        """The text the first element `css` finds shows ("" when none), read in the page."""
        return str(self.driver.execute_script(
            "const e = document.querySelector(arguments[0]); return e ? e.innerText : ''", css))

    def click(self, css: str) -> None:
        self.until(lambda d: d.find_element(By.CSS_SELECTOR, css).is_enabled())
        self.driver.find_element(By.CSS_SELECTOR, css).click()

    def confirm(self) -> None:
        self.click("#dialog-ok")

    def shot(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.driver.save_screenshot(str(path))

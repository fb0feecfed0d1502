"""A real headless Chromium for the page's tests: Debian's ``chromium`` and ``chromium-driver``, driven by selenium.

Started with the flags a closed network needs (no background networking,
no component updates, no sync: each would try to leave the machine), a
user data directory of its own (removed afterwards), and the browser's
console and network logs kept, so that a test can say no error was logged
and no request left dnscock's origin.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--window-size=1400,1000")


class BrowserUnavailable(Exception):
    pass


class Browser:
    """One Chromium, its console and network logs read as the test goes."""

    def __init__(self) -> None:
        try:
            from selenium import webdriver
            from selenium.webdriver.chrome.service import Service
        except ImportError as error:
            raise BrowserUnavailable(f"selenium is not installed: {error}") from None
        if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
            raise BrowserUnavailable(f"{CHROMIUM} and {CHROMEDRIVER} are needed (apt-get install chromium "
                                     "chromium-driver)")
        self.profile = tempfile.mkdtemp(prefix="dnscock-chromium-")
        options = webdriver.ChromeOptions()
        for flag in (*FLAGS, f"--user-data-dir={self.profile}"):
            options.add_argument(flag)
        options.binary_location = CHROMIUM
        options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
        self.driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        self.console: list[dict[str, Any]] = []
        self.requests: list[str] = []

    def get(self, url: str) -> None:
        self.driver.get(url)

    def text(self, element_id: str) -> str:
        return self.driver.find_element("id", element_id).text

    def wait_until(self, condition: Callable[[], Any], timeout: float = 10.0, what: str = "the condition") -> Any:
        """Polls ``condition`` until it is true (and returns it); AssertionError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            value = condition()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} did not hold within {timeout:g}s")
            time.sleep(0.05)

    def read_logs(self) -> None:
        """Moves the browser's new console entries and requested URLs into ``console`` and ``requests``."""
        self.console += self.driver.get_log("browser")
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message.get("method") == "Network.requestWillBeSent":
                self.requests.append(message["params"]["request"]["url"])

    def close(self) -> None:
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)

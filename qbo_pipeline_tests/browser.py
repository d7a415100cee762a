"""A real headless browser for UI tests: Debian's chromium driven by Playwright (no browser
is downloaded), and the Dagster webserver those tests look at."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# As the machine's probe starts it: no sandbox as root, and no background calls out of
# a closed network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WEBSERVER = str(Path(sys.executable).parent / "dagster-webserver")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        raise RuntimeError("Debian's chromium is needed: apt-get install chromium (.ci/run does)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_webserver(env: dict[str, str], port: int) -> subprocess.Popen:
    server = subprocess.Popen(
        [WEBSERVER, "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/server_info", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        if server.poll() is not None:
            raise RuntimeError(f"dagster-webserver exited: {server.stderr.read()[-2000:]}")
        time.sleep(0.5)
    server.kill()
    raise RuntimeError("dagster-webserver did not answer within 120 s")


def open_page(browser: Browser, url: str) -> Page:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(url, wait_until="networkidle")
    dismiss_dialogs(page)
    return page


def dismiss_dialogs(page: Page) -> None:
    """Dagster's first-visit dialogs (the community sign-up, what's new), which can open a
    moment after the page has loaded and cover what a test clicks."""
    page.wait_for_timeout(1000)
    for name in ("Skip", "Dismiss", "Close", "Got it"):
        button = page.get_by_role("button", name=name, exact=True).filter(visible=True)
        if button.count():
            button.first.click()
    if page.locator(".bp5-overlay-backdrop").filter(visible=True).count():
        page.keyboard.press("Escape")


def wait_for_dagster(base_url: str, process: subprocess.Popen | None = None) -> None:
    """Until the webserver answers (a cold `dagster dev` takes a while on two cores)."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base_url}/server_info", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"Dagster exited with status {process.returncode}")
        time.sleep(0.5)
    raise RuntimeError(f"the Dagster webserver at {base_url} did not answer within 180 s")

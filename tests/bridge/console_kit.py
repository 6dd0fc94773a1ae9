"""The web console in Debian's Chromium (Playwright): launch, open the console, watch for errors.

Shared by the console tests so that every one of them launches the browser (and the mesh it
talks to) the same way and fails on the same things: uncaught page errors, `console.error`
messages and HTTP responses of 400 or more (a missing favicon included).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from meshkit import start_test_mesh
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page, Response, ViewportSize, async_playwright

from server.app.root import Mesh

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--autoplay-policy=no-user-gesture-required"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
SCREENSHOTS = ARTIFACTS / "console"
VIEWPORT: ViewportSize = {"width": 1280, "height": 860}
CONSOLE_SERVICES = ("tts", "core", "bridge")  # what a console page talks to


@asynccontextmanager
async def console_mesh(data_dir: Path, *flags: str) -> AsyncIterator[Mesh]:
    """A running mesh of CONSOLE_SERVICES started with `flags`, stopped however the block ends."""
    mesh = await start_test_mesh(data_dir, *flags, only=CONSOLE_SERVICES)
    try:
        yield mesh
    finally:
        await mesh.stop()


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield browser
        finally:
            await browser.close()


class Problems:
    """Everything a page did wrong, as readable lines (assert it stays empty)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def watch(self, page: Page, name: str = "page") -> Page:
        page.on("pageerror", lambda exc: self.lines.append(f"{name}: uncaught {exc}"))
        page.on("console", lambda msg: self._console(name, msg))
        page.on("response", lambda response: self._response(name, response))
        return page

    def _console(self, name: str, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.lines.append(f"{name}: console.error {message.text}")

    def _response(self, name: str, response: Response) -> None:
        if response.status >= 400:
            self.lines.append(f"{name}: HTTP {response.status} {response.url}")


async def open_console(context: Browser | BrowserContext, bridge: str, device: str, problems: Problems,
                       name: str = "page") -> Page:
    """A console page for `device`, connected (the token in the fragment, as `peromesh serve` prints it)."""
    page = problems.watch(await context.new_page(), name)
    await page.set_viewport_size(VIEWPORT)
    await page.goto(f"http://{bridge}/?device={device}#token=test-token")
    await page.wait_for_selector('#conn[data-state="open"]', timeout=15_000)
    return page


async def js(page: Page, expression: str, arg: Any = None) -> Any:
    return await page.evaluate(expression, arg)


async def wait_js(page: Page, expression: str, timeout_ms: float = 30_000) -> None:
    await page.wait_for_function(expression, timeout=timeout_ms)


async def screenshot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path))
    return path

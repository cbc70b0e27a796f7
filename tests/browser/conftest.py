"""Headless Chromium (Debian's package) driven by pytest-playwright against Django's live server.

pytest-playwright's `page`, `context`, artifacts (`--screenshot`, `--tracing`, `--video`) and
`expect` are used as they come. Three of its fixtures are narrowed from the session to each
test: Playwright's sync API runs an event loop in this thread while it lives, and Django opens
its database connections per context, so a session-wide Playwright would leave the next test's
ORM calls on a connection that the previous test's transaction rolled back. One Playwright and
one browser per test costs about a second and keeps each test on its own.
"""

import os
import shutil
from pathlib import Path

import pytest
from django.db import connections

CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# The page sizes the issue asks the pages to work at: a laptop and a tablet held upright.
LAPTOP = {"width": 1280, "height": 900}
TABLET = {"width": 820, "height": 1180}
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def _chromium_path() -> str | None:
    return os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    path = _chromium_path()
    return {**browser_type_launch_args, "executable_path": path, "args": CHROMIUM_FLAGS} if path else {}


@pytest.fixture
def playwright(monkeypatch, _pw_api_request_contexts):
    if _chromium_path() is None:
        from tests.conftest import _unavailable

        _unavailable("needs Chromium (apt-get install chromium, or `make browsers`)")
    from playwright.sync_api import sync_playwright

    # The test's own ORM calls are synchronous and safe beside Playwright's loop, which Django
    # cannot tell by itself.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        yield playwright
    # The test body ran in Playwright's context, where Django opened a connection of its own.
    connections.close_all()


@pytest.fixture
def browser_type(playwright, browser_name):
    return getattr(playwright, browser_name or "chromium")


@pytest.fixture
def launch_browser(browser_type_launch_args, browser_type):
    return lambda **kwargs: browser_type.launch(**{**browser_type_launch_args, **kwargs})


@pytest.fixture
def browser(launch_browser):
    browser = launch_browser()
    yield browser
    browser.close()


@pytest.fixture
def browser_context_args(live_server):
    return {"base_url": live_server.url, "viewport": LAPTOP}


@pytest.fixture
def page(context):
    context.set_default_timeout(10_000)
    return context.new_page()


def log_in(page, username: str, password: str = "a-long-test-password") -> None:
    page.goto("/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


def screenshot(page, name: str) -> None:
    """Save the page as docs/screenshots/<name>.png (the README shows them) when asked to by
    CONCORD_SCREENSHOTS=1 (`make screenshots`); an ordinary run leaves the committed files alone."""
    if os.environ.get("CONCORD_SCREENSHOTS") != "1":
        return
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    # A full-page picture would show sticky bars stuck halfway down; lay them out in place.
    page.add_style_tag(content=".sticky-top { position: static !important; }")
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)

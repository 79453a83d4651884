"""A real browser (Debian's chromium, driven by Playwright) against a real ``qr dev`` running
``examples/bookmarks``.

``scripts/browser-up`` installs the browser (``.ci/run`` calls it). Locally the browser tests skip
when chromium is missing, naming that script; in CI (``CI=true``) they fail instead, because a
skip there would hide that the dashboard went untested (the Docker tests follow the same rule).
Playwright cannot download its own browsers here, so it launches the system one
(``executable_path``).

Every wait has a deadline: Playwright's default timeout is ``WAIT`` for every action and
assertion, and the dev server has ``WAIT`` to start (``running_dev``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright

from tests.integration.test_dev_server import DevProcess, running_dev
from tests.waiting import WAIT

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "bookmarks"
VIEWPORT = {"width": 1280, "height": 800}
CHROMIUM_ARGS = [
    "--no-sandbox",  # the suite runs as root in CI
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"a browser is required in CI: {reason}")
    pytest.skip(f"no browser for the browser tests ({reason}); install one with scripts/browser-up")


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    """Module scope, not session: while Playwright's sync API runs, its event loop is the
    thread's running loop, and every later test that calls ``asyncio.run`` would fail."""
    with sync_playwright() as driver:
        yield driver


def browser_executable() -> str:
    """The system chromium; skips (locally) or fails (CI) the test when there is none."""
    executable = shutil.which("chromium")
    if executable is None:
        _unavailable("chromium is not on PATH")
    assert executable is not None
    return executable


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    executable = browser_executable()
    launched = playwright.chromium.launch(
        executable_path=executable, args=CHROMIUM_ARGS, timeout=WAIT * 1000
    )
    yield launched
    launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh page (own context: no cookies or storage from other tests)."""
    context = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    context.set_default_timeout(WAIT * 1000)
    context.set_default_navigation_timeout(WAIT * 1000)
    expect.set_options(timeout=WAIT * 1000)  # (its own default is 5 s)
    opened = context.new_page()
    yield opened
    context.close()


def copy_example(base: Path) -> Path:
    """``examples/bookmarks`` at ``base/bookmarks`` with its ``.env``, without local state."""
    root = base / "bookmarks"
    shutil.copytree(
        EXAMPLE, root, ignore=shutil.ignore_patterns(".qr", "__pycache__", ".pytest_cache", ".env")
    )
    shutil.copy(root / ".env.example", root / ".env")
    return root


def as_printed(dev: DevProcess) -> str:
    """The URL ``qr dev`` prints (``http://localhost:PORT``), the one a user opens.

    ``server.json`` holds ``http://127.0.0.1:PORT``, but ``url()`` builds ``localhost`` URLs: a
    page on 127.0.0.1 following a redirect of the app there would cross origins (and the browser
    drops ``Authorization`` on the way).
    """
    return dev.url.replace("://127.0.0.1:", "://localhost:")


@pytest.fixture(scope="module")
def bookmarks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevProcess]:
    """``qr dev --port 0`` on a copy of ``examples/bookmarks`` for the module's tests."""
    base = tmp_path_factory.mktemp("bookmarks")
    root = copy_example(base)
    env = {**os.environ, "NO_COLOR": "1", "BOOKMARKS_DB": str(base / "bookmarks.sqlite3")}
    with running_dev(root, base / "dev.log", ["--port", "0"], env, timeout=WAIT) as server:
        server.url = as_printed(server)
        yield server

"""``scripts/dashboard-screenshots`` keeps working: one small 1280x800 PNG per dashboard page."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from tests.browser.conftest import browser_executable
from tests.browser.screenshots import PAGES, take

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.slow]


def test_every_page_gets_a_small_screenshot(tmp_path: Path) -> None:
    browser_executable()  # skips (or fails in CI) without chromium, like the other browser tests
    written = take(tmp_path)
    assert [path.stem for path in written] == list(PAGES)
    for path in written:
        with Image.open(path) as picture:
            assert (picture.format, picture.size) == ("PNG", (1280, 800))
            assert picture.getextrema() != ((0, 0),)  # not one flat colour
        assert path.stat().st_size < 100_000, f"{path.name}: {path.stat().st_size} bytes"

"""Screenshots of every dashboard page for docs/dashboard.md (``scripts/dashboard-screenshots``).

Runs ``qr dev`` on a copy of ``examples/bookmarks``, gives it something to show (a signed-in
WebSocket client, bookmarks whose screenshot jobs succeed, a job pushed without a user that
fails, a delayed job, a schedule run), then saves one PNG per page at 1280x800. The same
helpers as the browser tests; every wait has a deadline.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from PIL import Image
from playwright.sync_api import Page, expect, sync_playwright
from websockets.sync.client import ClientConnection, connect

from tests.browser.conftest import CHROMIUM_ARGS, VIEWPORT, as_printed, copy_example
from tests.integration.test_dev_server import DevProcess, running_dev
from tests.waiting import WAIT, until

PAGES = ("overview", "queues", "jobs", "job", "trace", "schedules", "sockets", "logs")


def _control(dev: DevProcess, path: str, body: object, token: str) -> dict[str, str]:
    answer = httpx.post(
        f"{dev.url}/_qr/{path}", json=body, headers={"X-Qr-Token": token}, timeout=WAIT
    )
    answer.raise_for_status()
    data: dict[str, str] = answer.json()
    return data


@contextmanager
def _activity(dev: DevProcess) -> Iterator[tuple[ClientConnection, dict[str, str]]]:
    """Traffic to show; yields the open socket and the ids the job and trace pages show."""
    token = httpx.post(dev.url + "/tokens", json={"user": "alice"}, timeout=WAIT).json()["token"]
    auth = {"Authorization": f"Bearer {token}"}
    with connect(dev.ws_url(), open_timeout=WAIT) as ws:
        ws.send(json.dumps({"token": token}))
        ws.recv(timeout=WAIT)
        for title, link in [
            ("qr docs", "https://example.com/qr"),
            ("Starlette", "https://example.org"),
        ]:
            created = httpx.post(
                dev.url + "/bookmarks",
                headers=auth,
                data={"title": title, "url": link},
                timeout=WAIT,
            )
            assert created.status_code == 303, created.text
        httpx.get(dev.url + "/bookmarks", headers=auth, timeout=WAIT)
        httpx.get(dev.url + "/bookmarks/missing", headers=auth, timeout=WAIT)
        httpx.get(dev.url + "/profile", timeout=WAIT)  # 401: no token
        control = json.loads((dev.root / ".qr/dev/server.json").read_text())["token"]
        # update_profile sends to the pushing user's sockets: pushed by nobody, it fails 3 times.
        failed = _control(
            dev,
            "queues/update_profile.fifo/push",
            {"payload": {"name": "Nobody"}, "group": "nobody"},
            control,
        )
        _control(
            dev, "queues/screenshots/push", {"payload": {"id": "later"}, "delay": 600}, control
        )
        _control(dev, "schedules/daily_digest", {}, control)
        lines = [line for line in dev.output().splitlines() if "POST /bookmarks 303" in line]
        until(lambda: " ok in " in dev.output(), "a screenshots job to succeed", output=dev.output)
        job_page = f"{dev.url}/_qr/jobs/{failed['job_id']}"
        until(
            lambda: 'data-status="dead"' in httpx.get(job_page, timeout=WAIT).text,
            "the pushed job to fail its attempts",
            output=dev.output,
        )
        yield ws, {"job": failed["job_id"], "request": lines[-1].split()[-1]}


def _shoot(page: Page, url: str, path: Path) -> bool:
    answer = page.goto(url)
    if answer is None or answer.status == 404:
        print(f"skipped {path.name}: {url} is not served", file=sys.stderr)
        return False
    expect(page.locator("#feed-status")).to_have_text("live")
    picture = Image.open(io.BytesIO(page.screenshot())).convert("RGB")
    # A page is a few hundred shades (text anti-aliasing): 256 of them look the same and make
    # the file a third of chromium's PNG.
    small = picture.quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    small.save(path, optimize=True)
    return True


def take(out: Path) -> list[Path]:
    """Write ``out/<page>.png`` for each page; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    executable = shutil.which("chromium")
    if executable is None:
        raise SystemExit("chromium is missing: run scripts/browser-up first")
    written: list[Path] = []
    with tempfile.TemporaryDirectory() as scratch:
        base = Path(scratch)
        root = copy_example(base)
        env = {**os.environ, "NO_COLOR": "1", "BOOKMARKS_DB": str(base / "bookmarks.sqlite3")}
        with running_dev(root, base / "dev.log", ["--port", "0"], env) as dev:
            dev.url = as_printed(dev)
            with _activity(dev) as (_, ids), sync_playwright() as driver:
                browser = driver.chromium.launch(
                    executable_path=executable, args=CHROMIUM_ARGS, timeout=WAIT * 1000
                )
                page = browser.new_page(viewport=VIEWPORT)  # type: ignore[arg-type]
                page.set_default_timeout(WAIT * 1000)
                expect.set_options(timeout=WAIT * 1000)
                urls = {
                    "overview": "/_qr/",
                    "queues": "/_qr/queues",
                    "jobs": "/_qr/jobs",
                    "job": f"/_qr/jobs/{ids['job']}",
                    "trace": f"/_qr/trace/{ids['request']}",
                    "schedules": "/_qr/schedules",
                    "sockets": "/_qr/sockets",
                    "logs": "/_qr/logs",
                }
                for name in PAGES:
                    path = out / f"{name}.png"
                    if _shoot(page, dev.url + urls[name], path):
                        written.append(path)
                browser.close()
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, nargs="?", default=Path("docs/dashboard"))
    for path in take(parser.parse_args().out):
        print(f"{path} {path.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()

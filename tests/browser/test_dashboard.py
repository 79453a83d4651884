"""The ``qr dev`` dashboard in a real browser: every page and action against ``qr dev`` running
a copy of ``examples/bookmarks`` (one server for the module; each test uses its own data).

Hooks are the ids and ``data-*`` attributes the templates document at their top
(``qr/cli/dev/dashboard/templates``). Every wait is Playwright's (default timeout ``WAIT``)
or ``until``; nothing asserts how fast anything is.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from typing import Any

import httpx
import pytest
from playwright.sync_api import Locator, Page, expect
from websockets.sync.client import connect

from tests.integration.test_dev_server import DevProcess
from tests.waiting import WAIT, until

pytestmark = [pytest.mark.browser, pytest.mark.integration]


def _sign_in(dev: DevProcess, user: str) -> str:
    answer = httpx.post(dev.url + "/tokens", json={"user": user}, timeout=WAIT)
    answer.raise_for_status()
    token: str = answer.json()["token"]
    return token


def _open(page: Page, dev: DevProcess, section: str = "") -> None:
    """Open a dashboard page and wait until its live feed is connected."""
    page.goto(f"{dev.url}/_qr/{section}")
    expect(page.locator("#feed-status")).to_have_text("live")


def _follow(page: Page, link: Locator | str) -> None:
    """Click a link to another dashboard page and wait until that page's script runs (its live
    feed connects): on a loaded machine a click on an action button before then does nothing."""
    with page.expect_navigation():
        (page.locator(link) if isinstance(link, str) else link).click()
    expect(page.locator("#feed-status")).to_have_text("live")


def _push(page: Page, queue: str, payload: Any, delay: int = 0, group: str = "") -> str:
    """Push a job from the Queues page's form; returns its id (from the flash message's link)."""
    page.select_option("#push-queue", queue)
    page.fill("#push-payload", json.dumps(payload))
    page.fill("#push-delay", str(delay))
    page.fill("#push-group", group)
    page.click("#push-submit")
    link = page.locator("#pushed-job")
    expect(link).to_be_visible()
    href = link.get_attribute("href") or ""
    assert href.startswith("/_qr/jobs/"), href
    return href.removeprefix("/_qr/jobs/")


def _request(dev: DevProcess) -> tuple[str, str]:
    """GET a path of its own (a 404) and return it with its request id from the console line."""
    path = f"/probe-{uuid.uuid4().hex[:8]}"
    httpx.get(dev.url + path, timeout=WAIT)

    def logged() -> str | None:
        for line in dev.output().splitlines():
            if f"GET {path} 404" in line:
                return line.split()[-1]
        return None

    return path, until(logged, f"the console line of GET {path}", output=dev.output)


def test_overview_lists_every_route_queue_schedule_and_socket_handler(
    page: Page, bookmarks: DevProcess
) -> None:
    routes = json.loads(
        subprocess.run(
            [sys.executable, "-m", "qr.cli", "routes", "--json"],
            cwd=bookmarks.root,
            capture_output=True,
            text=True,
            timeout=WAIT,
            check=True,
        ).stdout
    )
    _open(page, bookmarks)
    shown = page.locator("#routes tr[data-route]")
    expect(shown).to_have_count(len(routes["routes"]))
    for route in routes["routes"]:
        row = page.locator(f'#routes tr[data-route="{route["path"]}"]')
        expect(row).to_contain_text(route["file"])
    expect(page.locator('#routes tr[data-route="/bookmarks"]')).to_contain_text("authenticate")
    expect(page.locator("#queues-list")).to_contain_text("update_profile.fifo")
    expect(page.locator("#schedules-list")).to_contain_text("daily_digest")
    expect(page.locator("#socket-handlers")).to_contain_text("$default")


def test_a_request_appears_in_the_live_feed_without_a_reload(
    page: Page, bookmarks: DevProcess
) -> None:
    _open(page, bookmarks)
    page.evaluate("window.sameDocument = true")  # gone if the page reloaded
    path, request_id = _request(bookmarks)
    row = page.locator(f'#request-feed tr[data-request-id="{request_id}"]')
    expect(row).to_contain_text(path)
    expect(row).to_contain_text("404")
    assert page.evaluate("window.sameDocument") is True


def test_a_job_the_app_pushed_is_listed_with_its_result(page: Page, bookmarks: DevProcess) -> None:
    token = _sign_in(bookmarks, "alice")
    created = httpx.post(
        bookmarks.url + "/bookmarks",
        headers={"Authorization": f"Bearer {token}"},
        data={"title": "Listed", "url": "https://example.com/listed"},
        timeout=WAIT,
    )
    assert created.status_code == 303, created.text
    bookmark = created.headers["location"].rsplit("/", 1)[1]
    until(
        lambda: any(
            "screenshots job" in line and " ok in " in line
            for line in bookmarks.output().splitlines()
        ),
        "the screenshots job to succeed",
        output=bookmarks.output,
    )
    _open(page, bookmarks, "jobs?queue=screenshots&status=succeeded")
    rows = page.locator("#job-table tr[data-job-id]")
    expect(rows.first).to_be_visible()
    rows.first.locator('a[href^="/_qr/jobs/"]').click()  # newest first
    expect(page.locator("#job")).to_have_attribute("data-status", "succeeded")
    expect(page.locator("#job-result")).to_contain_text(bookmark)
    expect(page.locator("#job")).to_contain_text("alice")


def test_the_job_list_exports_as_json(page: Page, bookmarks: DevProcess) -> None:
    _open(page, bookmarks, "jobs?queue=screenshots")
    shown = page.locator("#job-table tr[data-job-id]")
    expect(shown.first).to_be_visible()
    ids = {row.get_attribute("data-job-id") for row in shown.all()}
    with page.expect_download() as download:
        page.click("#export")
    exported = json.loads(download.value.path().read_text(encoding="utf-8"))
    jobs = exported["jobs"] if isinstance(exported, dict) else exported
    assert {job["job_id"] for job in jobs} >= ids


def test_dead_jobs_are_retried_from_the_queues_page(page: Page, bookmarks: DevProcess) -> None:
    _open(page, bookmarks, "queues")
    # update_profile's handler sends to the pushing user's sockets: with no user, each of its
    # 3 attempts fails, then the job is dead.
    job_id = _push(page, "update_profile.fifo", {"name": "Nobody"}, group="nobody")
    page.goto(f"{bookmarks.url}/_qr/jobs/{job_id}")
    expect(page.locator("#job")).to_have_attribute("data-status", "dead")
    expect(page.locator("#job-error")).to_contain_text("SocketError")
    _open(page, bookmarks, "queues")
    row = page.locator('tr[data-queue="update_profile.fifo"]')
    expect(row.locator(".dead")).not_to_have_text("0")
    row.locator('button[data-action="redrive"]').click()
    expect(page.locator("#flash")).to_contain_text(
        "1 dead job(s) of update_profile.fifo queued again"
    )
    _open(page, bookmarks, "jobs?queue=update_profile.fifo")  # the dead one and its new copy
    expect(page.locator("#job-table tr[data-job-id]")).to_have_count(2)


def test_a_job_pushed_from_the_queues_page_shows_its_latest_error(
    page: Page, bookmarks: DevProcess
) -> None:
    _open(page, bookmarks, "queues")
    # The dashboard pushes as nobody, so the handler's job.user["id"] fails: a TypeError.
    job_id = _push(page, "screenshots", {"id": "nope"})
    page.click("#pushed-job")
    assert job_id in page.locator("h1").inner_text()
    expect(page.locator("#job-error")).to_contain_text("TypeError")
    expect(page.locator("#job-error")).to_contain_text("queues/screenshots.py")


def test_a_delayed_job_can_be_cancelled(page: Page, bookmarks: DevProcess) -> None:
    _open(page, bookmarks, "queues")
    _push(page, "screenshots", {"id": "later"}, delay=600)
    _follow(page, "#pushed-job")
    expect(page.locator("#job")).to_have_attribute("data-status", "delayed")
    page.click("#cancel-job")
    expect(page.locator("#flash")).to_contain_text("cancelled")
    expect(page.locator("#job")).to_have_attribute("data-status", "cancelled")


def test_schedule_run_now_shows_its_outcome(page: Page, bookmarks: DevProcess) -> None:
    _open(page, bookmarks, "schedules")
    row = page.locator('tr[data-schedule="daily_digest"]')
    expect(row.locator(".expression")).to_have_text("0 9 * * *")
    expect(row.locator(".next-runs li")).not_to_have_count(0)
    row.locator('button[data-action="run"]').click()
    expect(page.locator("#flash")).to_contain_text("daily_digest ran: ok")
    expect(row.locator(".last-runs li.ok")).not_to_have_count(0)


def test_sockets_page_shows_a_client_and_sends_it_a_message(
    page: Page, bookmarks: DevProcess
) -> None:
    user = f"sock{uuid.uuid4().hex[:6]}"
    token = _sign_in(bookmarks, user)
    with connect(bookmarks.ws_url(), open_timeout=WAIT) as ws:
        ws.send(json.dumps({"token": token}))
        assert json.loads(ws.recv(timeout=WAIT)) == {"authenticated": user}
        _open(page, bookmarks, "sockets")
        expect(page.locator(f'tr[data-user="{user}"] .connections')).not_to_be_empty()
        page.fill("#send-user", user)
        page.fill("#send-message", '{"hello": "from the test"}')
        page.click("#send-submit")
        expect(page.locator("#flash")).to_contain_text(f"sent to 1 connection(s) of user {user}")
        assert json.loads(ws.recv(timeout=WAIT)) == {"hello": "from the test"}


def test_logs_filter_by_request_id(page: Page, bookmarks: DevProcess) -> None:
    ids = [_request(bookmarks)[1] for _ in range(2)]
    _open(page, bookmarks, "logs")
    lines = page.locator("#log-lines li")
    for request_id in ids:
        expect(lines.filter(has_text=request_id)).not_to_have_count(0)
    page.fill("#log-request", ids[0])
    expect(lines.filter(has_text=ids[1])).to_be_hidden()
    shown = lines.filter(has_text=ids[0])
    expect(shown.first).to_be_visible()
    # the time as the console prints it: 24-hour, whatever the browser's locale would pick
    expect(shown.first).to_have_text(re.compile(r"^\d\d:\d\d:\d\d HTTP "))
    expect(page.locator("#log-count")).to_have_text(str(shown.count()))


def test_purge_asks_first(page: Page, bookmarks: DevProcess) -> None:
    _open(page, bookmarks, "queues")
    _push(page, "screenshots", {"id": "purged"}, delay=600)
    row = page.locator('tr[data-queue="screenshots"]')
    expect(row.locator(".delayed")).not_to_have_text("0")
    page.once("dialog", lambda dialog: dialog.dismiss())
    row.locator('button[data-action="purge"]').click()
    expect(row.locator(".delayed")).not_to_have_text("0")  # dismissed: nothing deleted
    page.once("dialog", lambda dialog: dialog.accept())
    row.locator('button[data-action="purge"]').click()
    expect(page.locator("#flash")).to_contain_text("job(s) of screenshots purged")
    expect(row.locator(".delayed")).to_have_text("0")


def _tab_stops(page: Page, limit: int = 60) -> list[str]:
    """What Tab focuses, in order, from the top of the page (id, or tag and text)."""
    page.locator("body").focus()
    stops: list[str] = []
    for _ in range(limit):
        page.keyboard.press("Tab")
        stop = page.evaluate(
            "() => { const e = document.activeElement;"
            " return e === document.body ? '' : (e.id || e.tagName + ':' + e.textContent.trim()); }"
        )
        if not stop or (stops and stop == stops[0]):
            break
        stops.append(stop)
    return stops


@pytest.mark.parametrize(
    ("section", "wanted"),
    [
        (
            "queues",
            ["A:Jobs", "BUTTON:Retry all dead", "BUTTON:Purge…", "push-payload", "push-submit"],
        ),
        ("schedules", ["BUTTON:Run now"]),
        ("sockets", ["send-user", "send-message", "send-submit"]),
        ("logs", ["log-request", "log-job", "log-level"]),
    ],
)
def test_the_main_actions_are_reachable_with_tab(
    page: Page, bookmarks: DevProcess, section: str, wanted: list[str]
) -> None:
    _open(page, bookmarks, section)
    stops = _tab_stops(page)
    missing = [stop for stop in wanted if stop not in stops]
    assert not missing, f"Tab never reaches {missing}; it goes {stops}"


def test_actions_refuse_a_foreign_origin_and_a_missing_token(
    page: Page, bookmarks: DevProcess
) -> None:
    _open(page, bookmarks, "queues")
    token = page.locator('meta[name="qr-token"]').get_attribute("content") or ""
    push = bookmarks.url + "/_qr/queues/screenshots/push"
    body = {"payload": {"id": "csrf"}}
    foreign = httpx.post(
        push,
        json=body,
        headers={"Origin": "http://evil.example", "X-Qr-Token": token},
        timeout=WAIT,
    )
    assert foreign.status_code == 403, foreign.text
    assert "Origin 'http://evil.example'" in foreign.json()["error"]
    tokenless = httpx.post(push, json=body, headers={"Origin": bookmarks.url}, timeout=WAIT)
    assert tokenless.status_code == 403, tokenless.text
    assert "x-qr-token" in tokenless.json()["error"]
    mine = httpx.post(
        push, json=body, headers={"Origin": bookmarks.url, "X-Qr-Token": token}, timeout=WAIT
    )
    assert mine.status_code == 200, mine.text  # the same request with the page's token works

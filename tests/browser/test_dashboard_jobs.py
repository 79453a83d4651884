"""A job's page in a real browser: payload, attempts (latest first), retry, replay, run now, and
the trace of a request to the jobs it pushed (``qr dev`` on a copy of ``examples/bookmarks``).
"""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.test_dashboard import _follow, _open, _push, _sign_in
from tests.integration.test_dev_server import DevProcess
from tests.waiting import WAIT, until

pytestmark = [pytest.mark.browser, pytest.mark.integration]


def _add_bookmark(dev: DevProcess, user: str, title: str) -> str:
    """POST /bookmarks as ``user`` (it pushes a screenshots job); returns the request id."""
    token = _sign_in(dev, user)
    created = httpx.post(
        dev.url + "/bookmarks",
        headers={"Authorization": f"Bearer {token}"},
        data={"title": title, "url": "https://example.com/" + title},
        timeout=WAIT,
    )
    assert created.status_code == 303, created.text

    def request_id() -> str | None:
        lines = [line for line in dev.output().splitlines() if "POST /bookmarks 303" in line]
        return lines[-1].split()[-1] if lines else None

    return until(request_id, "the console line of POST /bookmarks", output=dev.output)


def test_a_dead_job_shows_payload_and_every_attempt_and_retry_queues_it_again(
    page: Page, bookmarks: DevProcess
) -> None:
    _open(page, bookmarks, "queues")
    # update_profile sends to the pushing user's sockets: pushed by nobody, every attempt fails.
    job_id = _push(page, "update_profile.fifo", {"name": "Nobody"}, group="nobody")
    _follow(page, "#pushed-job")
    assert job_id in page.locator("h1").inner_text()
    expect(page.locator("#job-payload")).to_contain_text('"Nobody"')
    expect(page.locator("#job")).to_have_attribute("data-status", "dead")
    expect(page.locator("#job-error")).to_contain_text("SocketError")
    attempts = page.locator("#job-attempts-list li.attempt")
    total = page.locator("#job-attempts").inner_text()
    expect(attempts).to_have_count(int(total))
    expect(attempts.first).to_have_attribute("data-attempt", total)  # latest first
    expect(attempts.first).to_contain_text("SocketError")
    page.click("#retry-job")
    expect(page.locator("#flash")).to_contain_text("retry: new job")
    page.click("#new-job")
    expect(page.locator("#job-payload")).to_contain_text('"Nobody"')
    expect(page.locator("#job-attempts-list li.attempt").first).to_have_attribute(
        "data-status", "failed"
    )


def test_a_succeeded_job_is_replayed_as_a_new_job(page: Page, bookmarks: DevProcess) -> None:
    origin = _add_bookmark(bookmarks, "replayer", "replayed")
    _open(page, bookmarks, f"trace/{origin}")
    _follow(page, page.locator('#trace-jobs a[href^="/_qr/jobs/"]').first)
    expect(page.locator("#job")).to_have_attribute("data-status", "succeeded")
    first = page.locator("#job").get_attribute("data-job-id")
    page.click("#replay-job")  # the same payload again
    expect(page.locator("#flash")).to_contain_text("replay: new job")
    page.click("#new-job")
    expect(page.locator("#job")).not_to_have_attribute("data-job-id", first or "")
    expect(page.locator("#job")).to_have_attribute("data-status", "succeeded")
    expect(page.locator("#job-result")).to_contain_text('"id"')


def test_a_delayed_job_runs_when_promoted(page: Page, bookmarks: DevProcess) -> None:
    _open(page, bookmarks, "queues")
    _push(page, "screenshots", {"id": "promoted"}, delay=600)
    _follow(page, "#pushed-job")
    expect(page.locator("#job")).to_have_attribute("data-status", "delayed")
    page.click("#promote-job")
    expect(page.locator("#flash")).to_contain_text("runs now")
    expect(page.locator("#job-attempts-list li.attempt")).not_to_have_count(0)


def test_the_trace_of_a_request_shows_the_jobs_it_pushed(page: Page, bookmarks: DevProcess) -> None:
    origin = _add_bookmark(bookmarks, "tracer", "traced")
    _open(page, bookmarks, "")
    feed_link = page.locator(f'#request-feed tr[data-request-id="{origin}"] a')
    feed_link.click()  # the live feed's request id links to its trace
    expect(page.locator("#trace")).to_have_attribute("data-origin", origin)
    expect(page.locator("#trace-request")).to_contain_text("POST /bookmarks")
    job = page.locator('#trace-jobs li.trace-job[data-depth="0"]')
    expect(job).to_have_count(1)
    expect(job).to_contain_text("screenshots")
    expect(job.locator("li.attempt")).not_to_have_count(0)
    job.locator('a[href^="/_qr/jobs/"]').click()
    expect(page.locator("#job-origin")).to_contain_text(origin)

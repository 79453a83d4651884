"""The bookmarks example as its README promises it to a browser: a page signs in, adds a
bookmark and hears over WebSocket that its screenshot is ready (the queue job's socket.send).

This is also the smoke test of the browser fixtures: a real chromium, a real ``qr dev``.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Page

from tests.integration.test_dev_server import DevProcess
from tests.waiting import WAIT

pytestmark = [pytest.mark.browser, pytest.mark.integration]

# Runs in the page: every step is the browser's own fetch/WebSocket, each bounded by a deadline.
SIGN_IN_ADD_AND_LISTEN = """
async ([wsUrl, waitMs]) => {
  const deadline = (what) => new Promise((_, reject) =>
    setTimeout(() => reject(new Error("timed out waiting for " + what)), waitMs));
  const answer = await fetch("/tokens", {
    method: "POST", body: JSON.stringify({user: "alice"}), headers: {"Content-Type": "application/json"}});
  const {token} = await answer.json();
  const ws = new WebSocket(wsUrl);
  const messages = [];
  const heard = (test, what) => Promise.race([deadline(what), new Promise((resolve) => {
    const check = () => { const m = messages.find(test); if (m) resolve(m); else setTimeout(check, 20); };
    check();
  })]);
  ws.onmessage = (event) => messages.push(JSON.parse(event.data));
  await Promise.race([deadline("the socket to open"), new Promise((r) => { ws.onopen = r; })]);
  ws.send(JSON.stringify({token}));
  await heard((m) => m.authenticated === "alice", "authentication");
  const form = new FormData();
  form.append("title", "Example");
  form.append("url", "https://example.com");
  const created = await fetch("/bookmarks", {
    method: "POST", body: form, headers: {Authorization: "Bearer " + token}, redirect: "follow"});
  const bookmark = await created.json();
  const update = await heard((m) => m.update === "bookmark", "the screenshot job's message");
  ws.close();
  return {status: created.status, bookmark: bookmark.id, update: update.id};
}
"""


def test_a_page_hears_its_screenshot_job_over_websocket(page: Page, bookmarks: DevProcess) -> None:
    page.goto(bookmarks.url + "/")
    assert "bookmarks" in page.inner_text("body")
    outcome = page.evaluate(SIGN_IN_ADD_AND_LISTEN, [bookmarks.ws_url(), WAIT * 1000])
    assert outcome["status"] == 200  # after the 303 to the new bookmark
    assert outcome["update"] == outcome["bookmark"]

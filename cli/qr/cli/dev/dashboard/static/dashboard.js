// The qr dev dashboard: live feed (server-sent events), actions (POST with the per-run token),
// and live refresh of the parts of a page marked data-refresh. No framework, no build step.
"use strict";
(function () {
  const token = document.querySelector('meta[name="qr-token"]').content;
  const $ = (selector, root) => (root || document).querySelector(selector);
  const $$ = (selector, root) => Array.from((root || document).querySelectorAll(selector));

  function flash(text, failed) {
    const box = $("#flash");
    box.textContent = text;
    box.className = failed ? "error" : "ok";
  }

  async function act(path, body) {
    let response;
    try {
      response = await fetch("/_qr/" + path, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-Qr-Token": token },
        body: JSON.stringify(body || {}),
      });
    } catch (error) {
      flash("qr dev did not answer: " + error, true);
      return null;
    }
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
      flash((data.error || response.statusText) + (data.hint ? " — " + data.hint : ""), true);
      return null;
    }
    return data;
  }

  // Replace the marked parts of the page with the server's current rendering (no reload).
  async function refresh() {
    const parts = $$("[data-refresh]");
    if (!parts.length) return;
    const response = await fetch(location.href, { headers: { Accept: "text/html" } });
    if (!response.ok) return;
    const page = new DOMParser().parseFromString(await response.text(), "text/html");
    for (const part of parts) {
      const fresh = page.getElementById(part.id);
      if (fresh) part.replaceWith(fresh);
    }
  }

  function parsed(text) {
    try { return JSON.parse(text); } catch (error) { return undefined; }
  }

  document.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const kind = button.dataset.action;
    let data = null;
    if (kind === "redrive") {
      data = await act(`queues/${encodeURIComponent(button.dataset.queue)}/redrive`);
      if (data) flash(`${data.moved} dead job(s) of ${data.queue} queued again`);
    } else if (kind === "purge") {
      if (!window.confirm(`Delete every job of ${button.dataset.queue}? This cannot be undone.`)) return;
      data = await act(`queues/${encodeURIComponent(button.dataset.queue)}/purge`);
      if (data) flash(`${data.purged} job(s) of ${data.queue} purged`);
    } else if (kind === "cancel") {
      data = await act(`jobs/${encodeURIComponent(button.dataset.job)}/cancel`);
      if (data) flash(`job ${data.job_id} is ${data.status}${data.cancel_requested ? " (asked to stop)" : ""}`);
    } else if (kind === "retry" || kind === "replay" || kind === "promote") {
      data = await act(`jobs/${encodeURIComponent(button.dataset.job)}/${kind}`);
      if (data && data.new_job_id) {
        flash(`${kind}: new job ${data.new_job_id}`);
        const link = document.createElement("a");
        link.href = "/_qr/jobs/" + data.new_job_id; link.textContent = " open"; link.id = "new-job";
        $("#flash").append(link);
      } else if (data) flash(`job ${data.job_id} runs now`);
    } else if (kind === "run") {
      button.disabled = true;
      data = await act(`schedules/${encodeURIComponent(button.dataset.schedule)}`);
      button.disabled = false;
      if (data) flash(`${data.name} ran: ${data.ok ? "ok" : "failed: " + data.error} (${data.duration_ms} ms)`, !data.ok);
    }
    if (data) refresh();
  });

  document.addEventListener("submit", async (event) => {
    const form = event.target;
    if (form.id === "push-form") {
      event.preventDefault();
      const payload = parsed($("#push-payload").value);
      if (payload === undefined) { flash("the payload is not valid JSON", true); return; }
      const queue = $("#push-queue").value;
      const data = await act(`queues/${encodeURIComponent(queue)}/push`, {
        payload, delay: Number($("#push-delay").value || 0), group: $("#push-group").value || null,
      });
      if (data) {
        flash(`pushed job ${data.job_id} to ${data.queue}`);
        const link = document.createElement("a");
        link.href = "/_qr/jobs/" + data.job_id; link.textContent = " open"; link.id = "pushed-job";
        $("#flash").append(link);
        refresh();
      }
    } else if (form.id === "send-form") {
      event.preventDefault();
      const text = $("#send-message").value;
      const message = parsed(text);
      const data = await act("sockets/send", { user: $("#send-user").value, message: message === undefined ? text : message });
      if (data) flash(`sent to ${data.connections} connection(s) of user ${data.user}`);
    } else if (form.id === "log-filter") {
      event.preventDefault();
    }
  });

  // -- the live feed ------------------------------------------------------------------------
  const status = $("#feed-status");
  let dropped = 0;
  const cell = (row, text) => { const td = document.createElement("td"); td.textContent = text; row.append(td); return td; };
  // 24-hour, as the console prints it (a 12-hour locale would show "6:01:02 PM")
  const time = (seconds) => new Date(seconds * 1000).toLocaleTimeString([], { hour12: false });
  const MAX_ROWS = 200;

  function showRequest(event) {
    const body = $("#request-feed");
    if (!body) return;
    const row = document.createElement("tr");
    row.dataset.requestId = event.request_id;
    cell(row, time(event.time)); cell(row, event.method); cell(row, event.path);
    cell(row, String(event.status)).className = event.status >= 500 ? "error" : "";
    cell(row, String(event.duration_ms)); cell(row, event.user || "-");
    const id = cell(row, "");
    const link = document.createElement("a");
    link.href = "/_qr/trace/" + encodeURIComponent(event.request_id);
    link.textContent = event.request_id;
    id.append(link);
    body.prepend(row);
    while (body.rows.length > MAX_ROWS) body.deleteRow(-1);
  }

  function logVisible(item) {
    const request = $("#log-request").value.trim(), job = $("#log-job").value.trim();
    const level = $("#log-level").value;
    const text = item.textContent;
    return (!request || text.includes(request)) && (!job || text.includes(job)) &&
      (!level || item.dataset.level === level || (level === "warning" && item.dataset.level === "error"));
  }

  function filterLogs() {
    let shown = 0;
    for (const item of $$("#log-lines li")) { item.hidden = !logVisible(item); if (!item.hidden) shown += 1; }
    $("#log-count").textContent = String(shown);
  }

  function showLog(event) {
    const list = $("#log-lines");
    if (!list) return;
    const item = document.createElement("li");
    item.dataset.source = event.source; item.dataset.level = event.level;
    item.className = "level-" + event.level;
    item.textContent = `${time(event.time)} ${event.source.padEnd(5)} ${event.message}`;
    item.hidden = !logVisible(item);
    list.append(item);
    while (list.children.length > 2000) list.firstElementChild.remove();
    if (!item.hidden) $("#log-count").textContent = String(Number($("#log-count").textContent) + 1);
  }

  if ($("#log-lines")) {
    for (const input of $$("#log-filter input, #log-filter select")) input.addEventListener("input", filterLogs);
  }

  let refreshTimer = null;
  function connect() {
    const history = $("#log-lines") ? 2000 : $("#request-feed") ? 200 : 0;
    const source = new EventSource("/_qr/events?history=" + history);
    source.onopen = () => { status.textContent = "live"; status.className = "live"; };
    source.onerror = () => { status.textContent = "reconnecting"; status.className = "down"; };
    source.onmessage = (message) => {
      const frame = JSON.parse(message.data);
      if (frame.dropped) {
        dropped += frame.dropped;
        status.dataset.dropped = String(dropped);
        const counter = $("#feed-dropped");
        if (counter) counter.textContent = String(dropped);
      }
      let changed = false;
      for (const event of frame.events) {
        if (event.kind === "request") showRequest(event);
        else if (event.kind === "log") { showLog(event); changed = true; }
      }
      // Something happened (a job ran, a request came): refresh the live parts, at most 2/s.
      if (changed && !refreshTimer) refreshTimer = setTimeout(() => { refreshTimer = null; refresh(); }, 500);
    };
  }
  connect();
  // A running job reports progress without a console line: poll its page while it runs.
  setInterval(() => { if ($("#job[data-refresh]")) refresh(); }, 1000);
})();

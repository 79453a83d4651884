"""Client.run_queue / Client.drain: jobs pushed by requests run in-process on the real engine."""

from __future__ import annotations

import pytest

from qr.runtime.testing import Client
from tests.conftest import MakeProject

FILES = {
    "api/signup.py": """
        from qr.runtime import queues
        def post(body):
            job_id = queues["emails"].push({"to": body["email"]})
            return {"job_id": job_id}
    """,
    "api/orders/[group].py": """
        from qr.runtime import queues
        post = queues["orders.fifo"].http
    """,
    "api/_middleware.py": """
        def authenticate(bearer_token):
            return {"id": bearer_token} if bearer_token else None
    """,
    "queues/emails.py": """
        from qr.runtime import queues
        sent = []
        def handler(payload, user):
            sent.append(payload["to"])
            if payload["to"].endswith("@bounce"):
                raise ValueError("mailbox bounced")
            queues["audit"].push({"sent": payload["to"]})
            return {"sent": payload["to"], "by": user}
    """,
    "queues/audit.py": """
        def handler(payload):
            return payload
    """,
    "queues/orders.fifo.py": """
        seen = []
        def handler(payload, job):
            seen.append((job.group_id, payload))
    """,
}


def test_run_queue_runs_what_a_request_pushed(make_project: MakeProject) -> None:
    with Client(make_project(FILES)) as client:
        response = client.post(
            "/signup", json={"email": "a@b.c"}, headers={"authorization": "Bearer u1"}
        )
        job_id = response.json()["job_id"]
        (outcome,) = client.run_queue("emails")
        assert (outcome.job_id, outcome.outcome) == (job_id, "ok")
        assert outcome.result == {"sent": "a@b.c", "by": {"id": "u1"}}
        assert client.engine.result(job_id) == outcome.result
        assert [o.result for o in client.run_queue("audit")] == [{"sent": "a@b.c"}]
        assert client.run_queue("emails") == []


def test_failures_are_reported_and_drain_runs_every_queue(make_project: MakeProject) -> None:
    with Client(make_project(FILES)) as client:
        client.post("/signup", json={"email": "x@bounce"})
        client.post("/signup", json={"email": "ok@b.c"})
        outcomes = client.drain()
        by_outcome = sorted((o.queue, o.outcome) for o in outcomes)
        assert by_outcome == [("audit", "ok"), ("emails", "ok"), ("emails", "retry")]
        failed = next(o for o in outcomes if o.outcome == "retry")
        assert "ValueError: mailbox bounced" in (failed.error or "")


def test_http_queue_endpoint_answers_202_with_the_job_id(make_project: MakeProject) -> None:
    with Client(make_project(FILES)) as client:
        first = client.post("/orders/g1", json={"n": 1})
        second = client.post("/orders/g1", json={"n": 2})
        assert first.status_code == 202
        assert first.headers["x-job-id"] == first.json()["job_id"]
        client.run_queue("orders.fifo")
        import sys

        fifo = client.manifest.queue("orders.fifo")
        assert fifo is not None
        module = sys.modules[fifo.module]
        assert module.seen == [("g1", {"n": 1}), ("g1", {"n": 2})]
        assert second.headers["x-job-id"] != first.headers["x-job-id"]


def test_unknown_queue_names_the_known_ones(make_project: MakeProject) -> None:
    with (
        Client(make_project(FILES)) as client,
        pytest.raises(KeyError, match="Did you mean 'emails'"),
    ):
        client.run_queue("emial")

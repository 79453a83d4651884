"""config["status_route"]: queue.http answers with Location, GET /_jobs/{id} shows the state to its user."""

from __future__ import annotations

import pytest

from qr.runtime.testing import Client
from tests.conftest import MakeProject

FILES = {
    "api/_middleware.py": """
        def authenticate(bearer_token):
            return {"id": bearer_token} if bearer_token else None
    """,
    "api/shots.py": """
        from qr.runtime import queues
        post = queues["shots"].http
    """,
    "api/plain.py": """
        from qr.runtime import queues
        post = queues["plain"].http
    """,
    "queues/shots.py": """
        config = {"status_route": True}
        def handler(payload, job):
            job.progress(0.5, "half way")
            return {"url": payload["url"], "png": "shots/1.png"}
    """,
    "queues/plain.py": """
        def handler(payload):
            return "done"
    """,
}
U1 = {"authorization": "Bearer u1"}


def test_push_answers_location_and_the_pusher_reads_the_state(make_project: MakeProject) -> None:
    with Client(make_project(FILES)) as client:
        pushed = client.post("/shots", json={"url": "https://example.com"}, headers=U1)
        assert pushed.status_code == 202
        job_id = pushed.headers["x-job-id"]
        assert pushed.headers["location"] == f"/_jobs/{job_id}"
        queued = client.get(pushed.headers["location"], headers=U1)
        assert queued.status_code == 200
        assert queued.headers["cache-control"] == "no-store"
        assert queued.json()["status"] == "queued" and queued.json()["user"] == "u1"
        client.run_queue("shots")
        done = client.get(f"/_jobs/{job_id}", headers=U1).json()
        assert done["status"] == "succeeded"
        assert done["result"] == {"url": "https://example.com", "png": "shots/1.png"}
        assert (done["progress"], done["progress_message"]) == (0.5, "half way")


def test_only_the_pushing_user_may_read_it(make_project: MakeProject) -> None:
    with Client(make_project(FILES)) as client:
        job_id = client.post("/shots", json={"url": "u"}, headers=U1).headers["x-job-id"]
        other = client.get(f"/_jobs/{job_id}", headers={"authorization": "Bearer u2"})
        assert other.status_code == 403
        assert other.json() == {"error": "this job belongs to another user"}
        anonymous = client.get(f"/_jobs/{job_id}")
        assert anonymous.status_code == 401
        assert "authenticate as that user" in anonymous.json()["error"]


def test_a_job_without_a_user_is_readable_by_anyone(make_project: MakeProject) -> None:
    with Client(make_project(FILES)) as client:
        job_id = client.post("/shots", json={"url": "u"}).headers["x-job-id"]
        assert client.get(f"/_jobs/{job_id}").json()["status"] == "queued"
        assert client.get(f"/_jobs/{job_id}", headers=U1).status_code == 200


def test_unknown_ids_and_queues_without_the_route_are_404_with_a_reason(
    make_project: MakeProject,
) -> None:
    with Client(make_project(FILES)) as client:
        missing = client.get("/_jobs/no-such-job")
        assert missing.status_code == 404
        assert missing.json()["error"].startswith("no job 'no-such-job': the id is unknown")
        plain = client.post("/plain", json={"n": 1})
        assert plain.status_code == 202 and "location" not in plain.headers
        hidden = client.get(f"/_jobs/{plain.headers['x-job-id']}")
        assert hidden.status_code == 404
        assert "config['status_route']" in hidden.json()["error"]


def test_no_status_route_without_a_queue_asking_for_it(make_project: MakeProject) -> None:
    files = {k: v for k, v in FILES.items() if "shots" not in k}
    with Client(make_project(files)) as client:
        assert [r.path for r in client.manifest.routes] == ["/plain"]
        assert client.get("/_jobs/anything").status_code == 404


def test_qr_routes_names_the_status_route_as_qrs_own(
    make_project: MakeProject, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.functional.test_cli import run

    root = make_project(FILES)
    code, out, err = run(capsys, "routes", "-C", str(root))
    assert code == 0, err
    (line,) = [row for row in out.splitlines() if "/_jobs/" in row]
    assert "(qr job status route for shots)" in line and "api/_jobs" not in line
    assert "authenticate" in line  # api/_middleware.py applies to it


def test_routes_json_and_the_dashboard_name_it_the_same_way(make_project: MakeProject) -> None:
    from qr.cli.routes_table import routes_data
    from qr.runtime.manifest import scan

    files = [r["file"] for r in routes_data(scan(make_project(FILES)))["routes"]]
    assert "(qr job status route for shots)" in files

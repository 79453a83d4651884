"""Typed payloads: validated at push and at consume time; an invalid job goes straight to the DLQ."""

from __future__ import annotations

import json

import pytest

from qr.cli.main import main
from qr.runtime.errors import ProjectError
from qr.runtime.manifest import scan
from qr.runtime.ports import OutgoingJob
from qr.runtime.queues import QueueError
from qr.runtime.testing import Client
from tests.conftest import MakeProject

FILES = {
    "lib/__init__.py": "",
    "lib/models.py": """
        from dataclasses import dataclass, field
        from pydantic import BaseModel

        class Order(BaseModel):
            id: int
            sku: str
            qty: int = 1

        @dataclass
        class Point:
            x: float
            y: float
            tags: list[str] = field(default_factory=list)
    """,
    "queues/orders.py": """
        from lib.models import Order

        def handler(payload: Order, job):
            assert isinstance(payload, Order)
            return {"type": type(payload).__name__, "total": payload.qty * 10, "id": payload.id}
    """,
    "queues/points.fifo.py": """
        from lib.models import Point

        def handler(payload: Point):
            return {"type": type(payload).__name__, "sum": payload.x + payload.y}
    """,
    "api/orders.py": """
        from qr.runtime import queues
        from lib.models import Order

        def post(body):
            if body.get("as_model"):
                return {"job_id": queues["orders"].push(Order(id=body["id"], sku="a"))}
            return {"job_id": queues["orders"].push(body)}
    """,
    "api/raw.py": """
        from qr.runtime import queues
        post = queues["orders"].http
    """,
}


def test_pydantic_model_validated_at_push_and_consume(make_project: MakeProject) -> None:
    with Client(make_project(FILES)) as client:
        assert client.post("/orders", json={"id": 7, "sku": "a", "qty": 3}).status_code == 200
        assert client.post("/orders", json={"id": 8, "as_model": True}).status_code == 200
        outcomes = client.run_queue("orders")
        assert sorted((o.outcome, json.dumps(o.result)) for o in outcomes) == [
            ("ok", json.dumps({"type": "Order", "total": 10, "id": 8})),
            ("ok", json.dumps({"type": "Order", "total": 30, "id": 7})),
        ]
        # a dict that does not validate is refused at push time, naming the queue and the field
        from qr.runtime import queues

        with pytest.raises(QueueError) as info:
            queues["orders"].push({"id": "seven", "sku": "a"})
        message = str(info.value)
        assert "queue 'orders' takes Order payloads" in message
        assert "id" in message and "valid integer" in message  # pydantic's own text
        assert f"{__file__}:" in message  # the caller's push
        # the same through an HTTP queue endpoint: 400 with the error
        response = client.post("/raw", json={"sku": "a"})
        assert response.status_code == 400
        assert "Field required" in response.json()["error"]
        assert client.run_queue("orders") == []


def test_dataclass_payload_and_instance_push(make_project: MakeProject) -> None:
    with Client(make_project(FILES)) as client:
        from qr.runtime import queues

        point = client.manifest.queue("points.fifo")
        assert point is not None and point.payload is not None
        models = __import__("lib.models", fromlist=["Point"])
        queues["points.fifo"].group("g").push(models.Point(1.5, 2))
        queues["points.fifo"].group("g").push({"x": 1, "y": 1})
        with pytest.raises(QueueError, match="takes Point payloads"):
            queues["points.fifo"].group("g").push({"x": 1})
        results = [o.result for o in client.run_queue("points.fifo")]
        assert results == [{"type": "Point", "sum": 3.5}, {"type": "Point", "sum": 2.0}]


def test_invalid_payload_at_consume_time_is_dead_at_once(make_project: MakeProject) -> None:
    with Client(make_project(FILES)) as client:
        # a job pushed around validation (an older producer, another tool): body of the wrong shape
        job_id = client.engine.push(
            OutgoingJob("orders", '{"id": "x", "sku": 5}', "application/json")
        ).job_id
        (outcome,) = client.run_queue("orders")
        assert (outcome.job_id, outcome.outcome, outcome.attempt) == (job_id, "dead", 1)
        (dead,) = client.engine.dead_jobs("orders")
        assert dead.job_id == job_id and dead.received_count == 1
        assert dead.last_error is not None
        assert "does not validate as Order" in dead.last_error
        assert "valid integer" in dead.last_error and "sku" in dead.last_error
        assert client.engine.stats(["orders"])[0].to_dict()["dead"] == 1


def test_a_model_that_is_not_pydantic_or_dataclass_is_a_load_error(
    make_project: MakeProject,
) -> None:
    root = make_project(
        {
            "queues/bad.py": """
                class Plain:
                    pass


                def handler(payload: Plain):
                    pass
            """,
            "queues/unresolved.py": """
                from __future__ import annotations

                def handler(payload: Missing):
                    pass
            """,
            "queues/untyped.py": """
                from typing import Any

                def handler(payload: dict[str, Any], job):
                    pass
            """,
        }
    )
    with pytest.raises(ProjectError) as info:
        scan(root)
    text = str(info.value)
    assert (
        "queues/bad.py:5: the payload annotation Plain is not a pydantic model or a dataclass"
        in text
    )
    assert "fix: annotate payload with a pydantic model" in text
    assert "queues/unresolved.py:3: the payload annotation 'Missing' cannot be resolved" in text
    assert "untyped.py" not in text


def test_routes_json_shows_the_payload_schema(
    make_project: MakeProject, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_project(FILES)
    with pytest.raises(SystemExit):
        main(["routes", "--json", "-C", str(root)])
    data = json.loads(capsys.readouterr().out)
    by_name = {q["name"]: q["payload"] for q in data["queues"]}
    assert by_name["orders"]["model"] == "lib.models.Order"
    assert by_name["orders"]["kind"] == "pydantic"
    schema = by_name["orders"]["schema"]
    assert schema["required"] == ["id", "sku"]
    assert schema["properties"]["qty"] == {"default": 1, "title": "Qty", "type": "integer"}
    assert by_name["points.fifo"]["kind"] == "dataclass"
    assert by_name["points.fifo"]["schema"]["properties"]["x"]["type"] == "number"
    with pytest.raises(SystemExit):
        main(["routes", "-C", str(root)])
    assert "Order" in capsys.readouterr().out


WITHOUT_PYDANTIC = """
import dataclasses, json, sys
sys.modules["pydantic"] = None  # import pydantic now fails, as where it is not installed
from qr.runtime import payloads

@dataclasses.dataclass
class Inner:
    n: int

@dataclasses.dataclass
class Job:
    name: str
    inner: Inner
    ratio: float = 1.0
    extra: object = None

def handler(payload: Job):
    pass

model = payloads.check(handler)
out = {"kind": model.kind, "schema": model.schema()}
job = model.validate({"name": "a", "inner": {"n": 2}, "ratio": 3})
out["built"] = [type(job).__name__, type(job.inner).__name__, job.ratio]
out["dump"] = model.dump(job)
errors = []
for bad in ({"name": 1, "inner": {"n": 1}}, {"inner": {"n": 1}}, {"name": "a", "inner": {"n": True}},
            {"name": "a", "inner": {"n": 1}, "what": 1}, [1]):
    try:
        model.validate(bad)
    except payloads.PayloadError as exc:
        errors.append(exc.detail)
out["errors"] = errors
print(json.dumps(out))
"""


def test_dataclasses_validate_without_pydantic() -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_PYDANTIC], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["kind"] == "dataclass"
    assert out["built"] == ["Job", "Inner", 3]
    assert out["dump"] == {"name": "a", "inner": {"n": 2}, "ratio": 3, "extra": None}
    assert out["errors"] == [
        "name: expected str, got int",
        "missing field name",
        "inner.n: expected int, got bool",
        "unknown field(s): ['what']",
        "expected an object, got list",
    ]
    assert out["schema"] == {
        "title": "Job",
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "inner": {
                "title": "Inner",
                "type": "object",
                "properties": {"n": {"type": "integer"}},
                "required": ["n"],
            },
            "ratio": {"type": "number"},
            "extra": {},
        },
        "required": ["name", "inner"],
    }

"""Generator-side rules: each broken rule is a ProjectError naming the file and the fix."""

from __future__ import annotations

import dataclasses

import pytest

from qr.cli.terraform import build_model, check, terraform_model
from qr.cli.terraform.model import fit_name, label
from qr.runtime.errors import ProjectError
from qr.runtime.manifest import scan
from tests.conftest import MakeProject

QUEUE = "def handler(payload, job):\n    return None\n"


def problems(make_project: MakeProject, files: dict[str, str], stage: str | None = None) -> str:
    manifest = scan(make_project(files))
    with pytest.raises(ProjectError) as info:
        terraform_model(manifest, stage)
    return "\n".join(str(p) for p in info.value.problems)


def test_long_names_name_the_file(make_project: MakeProject) -> None:
    text = problems(
        make_project,
        {
            "qr.yaml": f"name: {'a' * 40}\nstages:\n  {'s' * 20}: {{}}\n",
            f"queues/{'q' * 30}.fifo.py": QUEUE,
        },
        "s" * 20,
    )
    assert f"queues/{'q' * 30}.fifo.py: the SQS queue name" in text
    assert "AWS allows 80" in text
    assert "shorten the queue name" in text


def test_dead_letter_name_collision(make_project: MakeProject) -> None:
    text = problems(make_project, {"queues/emails.py": QUEUE, "queues/emails-dlq.py": QUEUE})
    assert "proj-production-emails-dlq' is also used by" in text


def test_reserved_environment(make_project: MakeProject) -> None:
    yaml = "name: app\nstages:\n  production:\n    env: {AWS_REGION: x, QR_STAGE: y, OK: z}\n"
    text = problems(make_project, {"qr.yaml": yaml, "queues/a.py": QUEUE})
    assert "qr.yaml: stages.production.env: AWS_REGION is reserved by Lambda" in text
    assert "QR_STAGE uses the QR_ prefix" in text
    assert "OK" not in text.replace("QR_", "")


def test_environment_size(make_project: MakeProject) -> None:
    yaml = "name: app\nstages:\n  production:\n    env: {BIG: " + "x" * 5000 + "}\n"
    assert "Lambda allows 4096" in problems(make_project, {"qr.yaml": yaml, "queues/a.py": QUEUE})


def test_zone_without_domain_and_domain_without_routes(make_project: MakeProject) -> None:
    yaml = "name: app\nstages:\n  production:\n    zone: Z0123456789\n"
    assert "zone is set but stages.production.domain is not" in problems(
        make_project, {"qr.yaml": yaml, "queues/a.py": QUEUE}
    )
    yaml = "name: app\nstages:\n  production:\n    domain: api.example.com\n"
    assert "needs an HTTP API, but api/ has no routes" in problems(
        make_project, {"qr.yaml": yaml, "queues/a.py": QUEUE}
    )


def test_websocket_domain_too_long(make_project: MakeProject) -> None:
    domain = ".".join(["a" * 62] * 3 + ["b" * 60, "io"])
    assert len(domain) == 252  # valid; ws.<domain> is not
    yaml = f"name: app\nstages:\n  production:\n    domain: {domain}\n"
    files = {"qr.yaml": yaml, "api/index.py": "def get():\n    return 1\n"}
    files["socket/index.py"] = "def handler(data):\n    return None\n"
    assert "the WebSocket API is served on ws.<domain>" in problems(make_project, files)


def test_model_rules_guard_the_model(make_project: MakeProject) -> None:
    """Rules the model satisfies by construction still fail if the model regresses."""
    manifest = scan(make_project({"queues/orders.fifo.py": QUEUE, "queues/jobs.py": QUEUE}))
    model = build_model(manifest)
    fifo = next(q for q in model.queues if q.fifo)
    standard = next(q for q in model.queues if not q.fifo)
    broken = dataclasses.replace(
        model,
        queues=(
            dataclasses.replace(
                fifo,
                visibility_timeout=30,
                batch_size=11,
                batching_window=5,
                dlq_name="x-dlq",
                batch_seconds=335,
                waves=11,
            ),
            dataclasses.replace(
                standard, batch_size=20, batching_window=None, maximum_concurrency=1
            ),
        ),
    )
    with pytest.raises(ProjectError) as info:
        check(broken, manifest.config.stage())
    text = "\n".join(str(p) for p in info.value.problems)
    assert (
        "queues/orders.fifo.py: queue 'orders.fifo': visibility timeout 30s is below 1830s "
        "(6x the function timeout" in text
    )
    assert model.function.timeout == 305  # a FIFO batch of 10 x 30 s, one after another
    assert "a batch of 11 may run 11 x 30s in one invocation (335s with the margin)" in text
    assert "a FIFO queue needs a FIFO dead-letter queue" in text
    assert "batch_size 11 is above 10, the FIFO maximum" in text
    assert "FIFO queues take no batching window" in text
    assert "queues/jobs.py: queue 'jobs': a batch_size above 10 needs a batching window" in text
    assert "concurrency 1 is outside 2-1000" in text


def test_labels_and_fitted_names() -> None:
    taken: set[str] = {"schedules_dlq"}
    assert label("emails", taken, ("", "_dlq")) == "emails"
    clash = label("emails_dlq", taken, ("", "_dlq"))
    assert clash.startswith("emails_dlq_") and clash != "emails_dlq"
    assert label("schedules", taken, ("", "_dlq")).startswith("schedules_")
    assert label("1st", set()) == "x_1st"
    long = fit_name("x" * 70 + "-scheduler", 64)
    assert len(long) == 64 and long == fit_name("x" * 70 + "-scheduler", 64)
    assert fit_name("short", 64) == "short"


def test_iam_size_quotas(make_project: MakeProject) -> None:
    """IAM's quotas: 10,240 characters of inline policy per role, 6,144 per managed policy, 10
    managed policies per role (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html)."""
    manifest = scan(make_project({f"queues/{'q' * 36}{i:02d}.py": QUEUE for i in range(100)}))
    model = build_model(manifest)
    assert model.policy_size < 10240 and len(model.managed_policies) == 4
    assert all(40 + p.statement.size <= 6144 for p in model.managed_policies)
    # each queue and its dead-letter queue
    assert sum(len(p.statement.resources) for p in model.managed_policies) == 200
    policy = model.managed_policies[0]
    crowded = dataclasses.replace(model, managed_policies=(policy,) * 11)
    big = dataclasses.replace(
        policy, statement=dataclasses.replace(policy.statement, sizes=(11000,))
    )
    inline = dataclasses.replace(model, statements=(*model.statements, big.statement))
    with pytest.raises(ProjectError) as info:
        check(crowded, manifest.config.stage())
    text = "\n".join(str(p) for p in info.value.problems)
    assert "100 queues need 11 IAM policies to list them; a role takes 10 managed policies" in text
    with pytest.raises(ProjectError) as info:
        check(dataclasses.replace(inline, managed_policies=(big,)), manifest.config.stage())
    text = "\n".join(str(p) for p in info.value.problems)
    assert "inline policy would have about" in text and "IAM allows 10240" in text
    assert "proj-production-queues-1' would have about" in text and "IAM allows 6144" in text

"""The rendered Terraform of the scaffold and edge projects: parses, matches the AWS provider
6.69.1 schema, every reference resolves, and the structure keeps the design's promises."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests import terraform_lint, terraform_projects
from tests.terraform_projects import PROJECTS, STAGES


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tf")
    return {
        name: terraform_projects.render(terraform_projects.make(root, name), STAGES.get(name))
        for name in PROJECTS
    }


@pytest.fixture(scope="module")
def parsed(rendered: dict[str, Path]) -> dict[str, dict[str, dict[str, Any]]]:
    return {name: terraform_lint.parse_dir(out) for name, out in rendered.items()}


def resources(tree: dict[str, dict[str, Any]], type_name: str) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for file in tree.values():
        for item in file.get("resource", []):
            found.update(item.get(type_name, {}))
    return found


def outputs(tree: dict[str, dict[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for item in tree["outputs.tf"].get("output", []):
        found.update(item)
    return found


@pytest.mark.parametrize("project", PROJECTS)
def test_schema_and_references(rendered: dict[str, Path], project: str) -> None:
    assert terraform_lint.lint(rendered[project]) == []


def test_lint_finds_mistakes(rendered: dict[str, Path], tmp_path: Path) -> None:
    """The checker is not a rubber stamp: each kind of mistake is reported."""
    for file in rendered["scaffold"].glob("*.tf"):
        (tmp_path / file.name).write_text(file.read_text())
    queues = tmp_path / "queues.tf"
    queues.write_text(
        queues.read_text()
        .replace("visibility_timeout_seconds", "visibility_timeout")
        .replace("maximum_concurrency", "max_concurrency")
    )
    http = tmp_path / "http_api.tf"
    http.write_text(
        http.read_text().replace("alias.current.invoke_arn", "alias.current.invocation_arn")
    )
    function = tmp_path / "function.tf"
    function.write_text(
        function.read_text().replace("role             = aws_iam_role.function.arn", "")
    )
    outputs_tf = tmp_path / "outputs.tf"
    outputs_tf.write_text(outputs_tf.read_text().replace("local.base_url", "local.base_uri"))
    problems = "\n".join(terraform_lint.lint(tmp_path))
    assert "unknown argument or block 'visibility_timeout'" in problems
    assert "scaling_config: unknown argument or block 'max_concurrency'" in problems
    assert "has no attribute 'invocation_arn'" in problems
    assert "missing required argument 'role'" in problems
    assert "local.base_uri is not declared" in problems


def test_files_by_project(rendered: dict[str, Path]) -> None:
    def files(name: str) -> set[str]:
        return {p.name for p in rendered[name].glob("*.tf")}

    common = {"versions.tf", "providers.tf", "variables.tf", "main.tf", "function.tf", "outputs.tf"}
    assert files("scaffold") == common | {
        "queues.tf",
        "jobs.tf",
        "flow.tf",
        "http_api.tf",
        "websocket.tf",
        "schedules.tf",
    }
    assert files("fifo-only") == common | {"queues.tf", "jobs.tf", "flow.tf"}
    assert files("no-sockets") == common | {
        "queues.tf",
        "jobs.tf",
        "flow.tf",
        "http_api.tf",
        "schedules.tf",
    }
    assert files("domain-zone") == common | {"http_api.tf", "websocket.tf", "domain.tf"}


def test_function_alias_and_triggers(parsed: dict[str, dict[str, dict[str, Any]]]) -> None:
    tree = parsed["scaffold"]
    function = resources(tree, "aws_lambda_function")["app"]
    assert function["function_name"] == "scaffold-production"
    assert function["handler"] == "qr.runtime.aws.entry.handler"
    assert function["publish"] is True
    assert function["filename"] == "${local.bundle}"
    assert function["source_code_hash"] == "${filebase64sha256(local.bundle)}"
    assert function["logging_config"][0]["log_format"] == "JSON"
    # 30 s jobs (the scaffold's longest handler) + the 5 s margin.
    assert function["timeout"] == 35
    env = function["environment"][0]["variables"]
    assert env["QR_QUEUE_URL_PREFIX"] == "${local.queue_url_prefix}"
    assert env["QR_WS_ENDPOINT"] == "${local.ws_endpoint}"
    assert env["QR_SSM_PATH"] == "/qr/scaffold/production/"
    alias = resources(tree, "aws_lambda_alias")["current"]
    assert alias["name"] == "current"
    assert alias["lifecycle"][0]["ignore_changes"] == ["${function_version}"] or alias["lifecycle"][
        0
    ]["ignore_changes"] == ["function_version"]
    for permission in resources(tree, "aws_lambda_permission").values():
        assert permission["qualifier"] == "${aws_lambda_alias.current.name}"
        assert permission["source_arn"].endswith("/*/*")
    for integration in resources(tree, "aws_apigatewayv2_integration").values():
        assert integration["integration_uri"] == "${aws_lambda_alias.current.invoke_arn}"
    for mapping in resources(tree, "aws_lambda_event_source_mapping").values():
        assert mapping["function_name"] == "${aws_lambda_alias.current.arn}"
        assert mapping["function_response_types"] == ["ReportBatchItemFailures"]
    for schedule in resources(tree, "aws_scheduler_schedule").values():
        assert schedule["target"][0]["arn"] == "${aws_lambda_alias.current.arn}"
    locals_ = tree["main.tf"]["locals"][0]
    assert locals_["bundle"] == "${path.module}/../bundle.zip"
    assert locals_["ws_endpoint"] == (
        "https://${aws_apigatewayv2_api.ws.id}.execute-api.${local.region}.${local.dns_suffix}/${local.stage}"
    )


def test_queues(parsed: dict[str, dict[str, dict[str, Any]]]) -> None:
    queues = resources(parsed["fifo-only"], "aws_sqs_queue")
    orders, dlq = queues["orders_fifo"], queues["orders_fifo_dlq"]
    assert orders["name"] == "fifo-only-production-orders.fifo"
    assert dlq["name"] == "fifo-only-production-orders-dlq.fifo"
    assert orders["fifo_queue"] is True and dlq["fifo_queue"] is True
    assert orders["content_based_deduplication"] is True
    assert orders["sqs_managed_sse_enabled"] is True
    # A FIFO batch runs its jobs one after another: 5 x 120 s + 5 s is the function timeout,
    # and every queue's visibility timeout is 6 x the function timeout (AWS's advice).
    function = resources(parsed["fifo-only"], "aws_lambda_function")["app"]
    assert function["timeout"] == 605
    assert orders["visibility_timeout_seconds"] == 3630
    assert queues["profile_updates_fifo"]["visibility_timeout_seconds"] == 3630
    assert "maxReceiveCount = 5" in orders["redrive_policy"]
    mappings = resources(parsed["fifo-only"], "aws_lambda_event_source_mapping")
    mapping = mappings["orders_fifo"]
    assert mapping["batch_size"] == 5
    assert "maximum_batching_window_in_seconds" not in mapping
    policy = parsed["fifo-only"]["function.tf"]["data"][1]["aws_iam_policy_document"]["function"]
    # a rate limit: the flow table, the function's variable, IAM scoped to that table
    flow = resources(parsed["fifo-only"], "aws_dynamodb_table")["flow"]
    assert flow["name"] == "fifo-only-production-flow"
    assert (flow["hash_key"], flow["range_key"]) == ("pk", "sk")
    assert flow["ttl"][0]["attribute_name"] == "expires_at" and flow["ttl"][0]["enabled"] is True
    assert "server_side_encryption" not in flow  # the AWS owned key, as for connections and jobs
    function = resources(parsed["fifo-only"], "aws_lambda_function")["app"]
    variables = function["environment"][0]["variables"]
    assert variables["QR_FLOW_TABLE"] == "${aws_dynamodb_table.flow.name}"
    control = next(s for s in policy["statement"] if s["sid"] == "FlowControl")
    assert control["resources"] == ["${aws_dynamodb_table.flow.arn}"]
    assert "dynamodb:PutItem" in control["actions"]
    # debounce needs the table for any standard queue; no queues, no table
    assert "flow" in resources(parsed["no-sockets"], "aws_dynamodb_table")
    assert "flow.tf" not in parsed["domain-zone"]
    # the runtime sends a job whose payload fails validation to the DLQ itself
    queue_statement = next(s for s in policy["statement"] if s["sid"] == "Queues")
    assert "sqs:SendMessage" in queue_statement["actions"]
    assert queue_statement["resources"] == [
        "${aws_sqs_queue.orders_fifo.arn}",
        "${aws_sqs_queue.orders_fifo_dlq.arn}",
        "${aws_sqs_queue.profile_updates_fifo.arn}",
        "${aws_sqs_queue.profile_updates_fifo_dlq.arn}",
    ]
    assert mapping["scaling_config"][0]["maximum_concurrency"] == 10
    assert mappings["profile_updates_fifo"]["batch_size"] == 10  # 10 x 30 s fits
    # A standard batch runs `concurrency` jobs at a time: 10 jobs of 600 s, 2 at a time, cannot
    # fit in 900 s, so the default batch shrinks to one wave of 2.
    no_sockets = resources(parsed["no-sockets"], "aws_sqs_queue")
    assert no_sockets["emails"]["visibility_timeout_seconds"] == 6 * 605
    assert (
        resources(parsed["no-sockets"], "aws_lambda_event_source_mapping")["emails"]["batch_size"]
        == 2
    )
    assert "fifo_queue" not in no_sockets["emails"]


def test_queue_permissions_name_every_queue(parsed: dict[str, dict[str, dict[str, Any]]]) -> None:
    """No wildcard: `<project>-<stage>-*` would also match stage `prod-eu` next to `prod`, or
    project `app-prod` next to project `app` stage `prod`. 100 queues do not fit the 10,240
    characters of a role's inline policies, so they go into managed policies."""
    tree = parsed["many-queues"]
    assert len(resources(tree, "aws_sqs_queue")) == 200
    assert len(resources(tree, "aws_lambda_event_source_mapping")) == 100
    documents = tree["function.tf"]["data"]
    inline = next(d for d in documents if "function" in d.get("aws_iam_policy_document", {}))
    sids = [s["sid"] for s in inline["aws_iam_policy_document"]["function"]["statement"]]
    assert "Queues" not in sids
    listed: list[str] = []
    count = len(resources(tree, "aws_iam_policy"))
    assert count == 4  # 200 ARNs (queues and DLQs) in policies of at most 6,144 characters
    labels = [f"queues_{n}" for n in range(1, count + 1)]
    for label in labels:
        document = next(d for d in documents if label in d.get("aws_iam_policy_document", {}))
        statement = document["aws_iam_policy_document"][label]["statement"][0]
        listed += statement["resources"]
        assert statement["actions"] == [
            "sqs:ChangeMessageVisibility",
            "sqs:DeleteMessage",
            "sqs:GetQueueAttributes",
            "sqs:ReceiveMessage",
            "sqs:SendMessage",
        ]
    assert sorted(listed) == sorted(  # each queue and its DLQ
        f"${{aws_sqs_queue.{label}.arn}}" for label in resources(tree, "aws_sqs_queue")
    )
    policies = resources(tree, "aws_iam_policy")
    assert sorted(p["name"] for p in policies.values()) == [
        f"many-queues-production-{label.replace('_', '-')}" for label in labels
    ]
    attachments = resources(tree, "aws_iam_role_policy_attachment")
    assert {a["policy_arn"] for a in attachments.values()} == {
        f"${{aws_iam_policy.{label}.arn}}" for label in labels
    }
    # The function and every mapping wait for the attachments (Lambda checks the role).
    function = resources(tree, "aws_lambda_function")["app"]
    assert f"${{aws_iam_role_policy_attachment.{labels[-1]}}}" in function["depends_on"]
    for mapping in resources(tree, "aws_lambda_event_source_mapping").values():
        assert "${aws_iam_role_policy_attachment.queues_1}" in mapping["depends_on"]
    assert len(outputs(tree)["queue_urls"]["value"]) == 100
    # A project with a few queues lists them in the inline policy.
    fifo = parsed["fifo-only"]
    statements = fifo["function.tf"]["data"][1]["aws_iam_policy_document"]["function"]["statement"]
    queues = next(s for s in statements if s["sid"] == "Queues")
    assert queues["resources"] == [
        "${aws_sqs_queue.orders_fifo.arn}",
        "${aws_sqs_queue.orders_fifo_dlq.arn}",
        "${aws_sqs_queue.profile_updates_fifo.arn}",
        "${aws_sqs_queue.profile_updates_fifo_dlq.arn}",
    ]
    assert resources(fifo, "aws_iam_policy") == {}
    for tree in parsed.values():
        for document in tree["function.tf"]["data"]:
            for body in document.get("aws_iam_policy_document", {}).values():
                for statement in body["statement"]:
                    if statement["sid"].startswith("Queues"):
                        assert not any("*" in r for r in statement["resources"])


def test_job_state_table_and_its_scoped_permissions(
    parsed: dict[str, dict[str, dict[str, Any]]],
) -> None:
    tree = parsed["scaffold"]
    table = resources(tree, "aws_dynamodb_table")["jobs"]
    assert table["name"] == "scaffold-production-jobs"
    assert (table["billing_mode"], table["hash_key"]) == ("PAY_PER_REQUEST", "job_id")
    assert [(a["name"], a["type"]) for a in table["attribute"]] == [("job_id", "S")]
    assert (table["ttl"][0]["attribute_name"], table["ttl"][0]["enabled"]) == ("expires_at", True)
    assert table["point_in_time_recovery"][0]["enabled"] is True
    assert "server_side_encryption" not in table  # the AWS owned key, as for connections
    env = resources(tree, "aws_lambda_function")["app"]["environment"][0]["variables"]
    assert env["QR_JOBS_TABLE"] == "${aws_dynamodb_table.jobs.name}"
    policy = tree["function.tf"]["data"][1]["aws_iam_policy_document"]["function"]
    jobs = next(s for s in policy["statement"] if s["sid"] == "JobState")
    assert jobs["actions"] == ["dynamodb:GetItem", "dynamodb:UpdateItem"]
    assert jobs["resources"] == ["${aws_dynamodb_table.jobs.arn}"]
    assert outputs(tree)["jobs_table"]["value"] == "${aws_dynamodb_table.jobs.name}"


def test_no_job_table_when_no_queue_keeps_state(tmp_path: Path) -> None:
    root = terraform_projects.make(tmp_path, "fifo-only")
    for file in (root / "queues").glob("*.py"):
        file.write_text(file.read_text() + "config = {'keep_results': 0}\n")
    tree = terraform_lint.parse_dir(terraform_projects.render(root, None))
    assert "jobs.tf" not in tree
    env = resources(tree, "aws_lambda_function")["app"]["environment"][0]["variables"]
    assert "QR_JOBS_TABLE" not in env
    assert outputs(tree)["jobs_table"]["value"] is None
    policy = tree["function.tf"]["data"][1]["aws_iam_policy_document"]["function"]
    assert "JobState" not in [s["sid"] for s in policy["statement"]]


def test_http_api(parsed: dict[str, dict[str, dict[str, Any]]]) -> None:
    tree = parsed["no-sockets"]
    keys = sorted(r["route_key"] for r in resources(tree, "aws_apigatewayv2_route").values())
    assert keys == ["ANY /", "ANY /feed.xml", "ANY /files/{path+}", "ANY /users/{id}"]
    api = resources(tree, "aws_apigatewayv2_api")["http"]
    # One route turns CORS off, so CORS is left to the app.
    assert "cors_configuration" not in api
    scaffold_api = resources(parsed["scaffold"], "aws_apigatewayv2_api")["http"]
    assert scaffold_api["cors_configuration"][0]["allow_origins"] == ["*"]
    stage = resources(tree, "aws_apigatewayv2_stage")["http"]
    assert stage["name"] == "$default" and stage["auto_deploy"] is True
    assert stage["access_log_settings"][0]["destination_arn"] == (
        "${aws_cloudwatch_log_group.http_access.arn}"
    )


def test_websocket(parsed: dict[str, dict[str, dict[str, Any]]]) -> None:
    tree = parsed["domain-zone"]
    routes = sorted(r["route_key"] for r in resources(tree, "aws_apigatewayv2_route").values())
    assert routes == ["$connect", "$default", "$disconnect", "ANY /", "chat"]
    api = resources(tree, "aws_apigatewayv2_api")["ws"]
    assert api["route_selection_expression"] == "$request.body.action"
    table = resources(tree, "aws_dynamodb_table")["connections"]
    # Encrypted with DynamoDB's AWS owned key (free): `server_side_encryption { enabled = true }`
    # would pick the AWS managed KMS key and bill KMS requests.
    assert "server_side_encryption" not in table
    assert table["billing_mode"] == "PAY_PER_REQUEST"
    assert table["ttl"][0]["enabled"] is True
    assert table["point_in_time_recovery"][0]["enabled"] is True
    deployment = resources(tree, "aws_apigatewayv2_deployment")["ws"]
    assert "aws_apigatewayv2_route.ws_action_chat" in deployment["triggers"]["redeployment"]


def test_schedules(parsed: dict[str, dict[str, dict[str, Any]]]) -> None:
    schedules = resources(parsed["no-sockets"], "aws_scheduler_schedule")
    assert set(schedules) == {"digest", "hourly"}  # "never" has no schedule
    digest = schedules["digest"]
    assert digest["schedule_expression"] == "cron(0 9 ? * 2-6 *)"
    assert digest["group_name"] == "${aws_scheduler_schedule_group.this.name}"
    assert digest["target"][0]["input"] == '${jsonencode({qr = "schedule", name = "digest"})}'
    assert (
        digest["target"][0]["dead_letter_config"][0]["arn"] == "${aws_sqs_queue.schedules_dlq.arn}"
    )
    assert schedules["hourly"]["schedule_expression"] == "rate(1 hour)"


def test_domain_with_zone(parsed: dict[str, dict[str, dict[str, Any]]]) -> None:
    tree = parsed["domain-zone"]
    certificate = resources(tree, "aws_acm_certificate")["domain"]
    assert certificate["domain_name"] == "api.example.com"
    assert certificate["subject_alternative_names"] == ["ws.api.example.com"]
    names = resources(tree, "aws_apigatewayv2_domain_name")
    assert {n["domain_name"] for n in names.values()} == {"api.example.com", "ws.api.example.com"}
    assert "count" not in names["http"]
    records = resources(tree, "aws_route53_record")
    assert set(records) == {"certificate_validation", "http", "ws"}
    assert outputs(tree)["dns_records"]["value"] == []
    assert outputs(tree)["ws_url"]["value"] == "wss://ws.api.example.com"
    backend = tree["versions.tf"]["terraform"][0]["backend"][0]["s3"]
    assert backend["key"] == "states/domain-zone/production/terraform.tfstate"
    assert backend["use_lockfile"] is True
    env = resources(tree, "aws_lambda_function")["app"]["environment"][0]["variables"]
    assert env["GREETING"] == "hello $${name} %%{x}"  # literal text, not interpolation


def test_domain_without_zone(parsed: dict[str, dict[str, dict[str, Any]]]) -> None:
    tree = parsed["domain-manual"]
    assert "aws_route53_record" not in json.dumps(tree["domain.tf"].get("resource", []))
    names = resources(tree, "aws_apigatewayv2_domain_name")
    assert names["http"]["count"] == "${var.domain_certificate_ready ? 1 : 0}"
    assert "concat(" in outputs(tree)["dns_records"]["value"]
    function = resources(tree, "aws_lambda_function")["app"]
    assert function["memory_size"] == 1024
    assert function["function_name"] == "domain-manual-staging"
    local = tree["main.tf"]["locals"][0]
    assert local["base_url"].startswith(
        '${var.domain_certificate_ready ? "https://staging.example.org"'
    )
    backend = tree["versions.tf"]["terraform"][0]["backend"][0]["local"]
    assert backend["path"] == "../../../state/staging/terraform.tfstate"
    # The execute-api URL stays on until the domain serves; the stage's burst over the
    # project's rate.
    api = resources(tree, "aws_apigatewayv2_api")["http"]
    assert api["disable_execute_api_endpoint"] == "${var.domain_certificate_ready}"
    stage = resources(tree, "aws_apigatewayv2_stage")["http"]
    settings = stage["default_route_settings"][0]
    assert (settings["throttling_rate_limit"], settings["throttling_burst_limit"]) == (50, 100)


def test_execute_api_endpoint_and_throttling(
    parsed: dict[str, dict[str, dict[str, Any]]],
) -> None:
    """With a custom domain clients use it, so the default execute-api URL is off; every HTTP
    stage has default route throttling (qr.yaml throttle, default 1000 requests/s, burst 2000)."""
    api = resources(parsed["domain-zone"], "aws_apigatewayv2_api")["http"]
    assert api["disable_execute_api_endpoint"] is True
    assert (
        "disable_execute_api_endpoint"
        not in resources(parsed["domain-zone"], "aws_apigatewayv2_api")["ws"]
    )
    for project in ("no-sockets", "scaffold", "bookmarks"):
        api = resources(parsed[project], "aws_apigatewayv2_api")["http"]
        assert "disable_execute_api_endpoint" not in api
        stage = resources(parsed[project], "aws_apigatewayv2_stage")["http"]
        settings = stage["default_route_settings"][0]
        assert (settings["throttling_rate_limit"], settings["throttling_burst_limit"]) == (
            1000,
            2000,
        )


def test_variables_are_validated(parsed: dict[str, dict[str, dict[str, Any]]]) -> None:
    variables = {
        name: body
        for item in parsed["scaffold"]["variables.tf"]["variable"]
        for name, body in item.items()
    }
    assert "var.region" in variables["region"]["validation"][0]["condition"]
    retention = variables["log_retention_days"]["validation"][0]["condition"]
    assert "contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731" in retention


@pytest.mark.parametrize("project", PROJECTS)
def test_least_privilege_and_tags(
    parsed: dict[str, dict[str, dict[str, Any]]], project: str
) -> None:
    tree = parsed[project]
    for file in tree.values():
        for item in file.get("data", []):
            for label, document in item.get("aws_iam_policy_document", {}).items():
                for statement in document["statement"]:
                    actions = statement.get("actions", [])
                    assert "*" not in actions and not any(a.endswith(":*") for a in actions), label
                    assert "*" not in statement.get("resources", []), label
    provider = tree["providers.tf"]["provider"][0]["aws"]
    assert provider["default_tags"][0]["tags"] == "${local.tags}"
    tags = tree["main.tf"]["locals"][0]["tags"]
    assert '"qr:project" = "' in tags and '"qr:stage" = "' in tags and "var.tags" in tags

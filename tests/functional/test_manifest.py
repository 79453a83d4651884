from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from qr.runtime._loader import project_tag
from qr.runtime.errors import ProjectError
from qr.runtime.manifest import Manifest, scan
from tests.conftest import MakeProject

GET = "def get():\n    return {}\n"


def problems(root: Path) -> list[str]:
    with pytest.raises(ProjectError) as info:
        scan(root)
    return [str(p) for p in info.value.problems]


def one_problem(root: Path) -> str:
    found = problems(root)
    assert len(found) == 1, found
    return found[0]


def test_routes_params_and_ranking(make_project: MakeProject) -> None:
    root = make_project(
        {
            "api/index.py": GET,
            "api/bookmarks/index.py": GET + "def post(body):\n    return body\n",
            "api/bookmarks/[id].py": "def get(id):\n    return id\n\ndef del_(id):\n    return None\n",
            "api/bookmarks/new.py": GET,
            "api/files/[...path].py": "def get(path):\n    return path\n",
            "api/feed.xml.py": GET,
            "api/_private.py": GET,
            "api/.hidden/x.py": GET,
            "api/_drafts/x.py": GET,
            "api/notes.txt": "not python",
        }
    )
    manifest = scan(root)
    by_path = {r.path: r for r in manifest.routes}
    assert set(by_path) == {
        "/",
        "/bookmarks",
        "/bookmarks/[id]",
        "/bookmarks/new",
        "/files/[...path]",
        "/feed.xml",
    }
    paths = [r.path for r in manifest.routes]
    assert paths.index("/bookmarks/new") < paths.index("/bookmarks/[id]")
    item = by_path["/bookmarks/[id]"]
    assert item.pattern == "/bookmarks/{id}"
    assert item.params == ("id",)
    assert item.methods == ("GET", "HEAD", "DELETE")
    assert item.functions == {"DELETE": "del_", "GET": "get"}
    assert item.module == f"qr_app:{project_tag(str(root.resolve()))}:api/bookmarks/[id].py"
    files = by_path["/files/[...path]"]
    assert files.pattern == "/files/{path:path}"
    assert files.catch_all == "path"
    assert by_path["/feed.xml"].pattern == "/feed.xml"
    assert by_path["/bookmarks"].methods == ("GET", "HEAD", "POST")
    assert item.module in sys.modules


def test_catch_all_ranks_after_parameter(make_project: MakeProject) -> None:
    root = make_project(
        {
            "api/[...rest].py": GET,
            "api/[slug].py": "def get(slug):\n    return slug\n",
            "api/about.py": GET,
        }
    )
    assert [r.path for r in scan(root).routes] == ["/about", "/[slug]", "/[...rest]"]


def test_file_and_index_map_to_same_route(make_project: MakeProject) -> None:
    root = make_project({"api/a.py": GET, "api/a/index.py": GET})
    problem = one_problem(root)
    assert "maps to the same route /a as" in problem
    assert "api/a.py" in problem
    assert "api/a/index.py" in problem


def test_two_parameter_names_for_same_route(make_project: MakeProject) -> None:
    root = make_project(
        {"api/[id].py": "def get(id): ...\n", "api/[slug].py": "def get(slug): ...\n"}
    )
    assert "maps to the same route" in one_problem(root)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("api/[1st].py", "path parameter '1st' is not a valid Python identifier"),
        ("api/[class].py", "path parameter 'class' is not a valid Python identifier"),
        ("api/[user-id].py", "path parameter 'user-id' is not a valid Python identifier"),
        ("api/[].py", "path parameter '' is not a valid Python identifier"),
        ("api/[body].py", "clashes with the injected name 'body'"),
        ("api/post-[id].py", "mixes text and a [parameter]"),
        ("api/[id]/[id].py", "path parameter 'id' appears twice"),
    ],
)
def test_invalid_parameter_names(make_project: MakeProject, name: str, message: str) -> None:
    root = make_project({name: "def get(**kw): ...\n"})
    problem = one_problem(root)
    assert problem.startswith(name)
    assert message in problem
    assert "fix:" in problem


def test_catch_all_not_last(make_project: MakeProject) -> None:
    root = make_project({"api/[...rest]/edit.py": "def get(rest): ...\n"})
    assert "catch-all [...rest] must be the last segment" in one_problem(root)


@pytest.mark.parametrize("name", ["Screenshots", "bad name", "x" * 41, "a.b", "q.FIFO"])
def test_bad_queue_names(make_project: MakeProject, name: str) -> None:
    root = make_project({f"queues/{name}.py": "def handler(payload): ...\n"})
    problem = one_problem(root)
    assert f"queue name {name!r} is not valid" in problem
    assert "update_profile.fifo.py" in problem


def test_queues(make_project: MakeProject) -> None:
    root = make_project(
        {
            "queues/screenshots.py": "config = {'timeout': 60, 'max_attempts': 5, 'backoff': 'fixed'}\n"
            "def handler(payload, job): ...\n",
            "queues/update_profile.fifo.py": "config = {'backoff': {'initial': 1, 'max': 60}}\n"
            "async def handler(payload, job, user): ...\n",
        }
    )
    manifest = scan(root)
    screenshots = manifest.queue("screenshots")
    fifo = manifest.queue("update_profile.fifo")
    assert screenshots is not None and fifo is not None
    assert not screenshots.fifo and fifo.fifo
    assert screenshots.config.timeout == 60
    assert screenshots.config.max_attempts == 5
    assert screenshots.config.backoff.strategy == "fixed"
    assert fifo.config.backoff.max == 60


def test_socket_init_rejected(make_project: MakeProject) -> None:
    root = make_project({"socket/__init__.py": "", "socket/index.py": "def handler(data): ...\n"})
    problem = one_problem(root)
    assert problem.startswith("socket/__init__.py")
    assert "shadow the standard library" in problem
    assert "delete socket/__init__.py" in problem


def test_socket_handlers_and_middleware(make_project: MakeProject) -> None:
    root = make_project(
        {
            "socket/index.py": "def handler(data, connection_id, user): ...\n",
            "socket/chat.py": "def handler(data): ...\n",
            "socket/_middleware.py": "def on_connect(request, connection_id): ...\n"
            "def authenticate(data, connection_id): ...\n",
        }
    )
    socket = scan(root).socket
    assert socket is not None
    assert [h.action for h in socket.handlers] == ["$default", "chat"]
    assert socket.middleware == {
        "on_connect": "socket/_middleware.py",
        "authenticate": "socket/_middleware.py",
    }
    chat = socket.handler("chat")
    assert chat is not None and chat.file == "socket/chat.py"
    fallback = socket.handler("unknown")
    assert fallback is not None and fallback.action == "$default"


def test_socket_timeout_is_bounded_by_api_gateway(make_project: MakeProject) -> None:
    """API Gateway stops waiting for a WebSocket integration at 29 s: a longer timeout is a load
    error, and the default fits."""
    root = make_project(
        {
            "socket/index.py": "def handler(data): ...\n",
            "socket/slow.py": "config = {'timeout': 60}\ndef handler(data): ...\n",
        }
    )
    problem = one_problem(root)
    assert problem.startswith("socket/slow.py:1: config['timeout'] must be seconds")
    assert "at most 29 (API Gateway's WebSocket integration timeout" in problem
    (root / "socket/slow.py").unlink()
    root = make_project(
        {
            "socket/ok.py": "config = {'timeout': 29}\ndef handler(data): ...\n",
            "schedules/long.py": "schedule = 'daily'\nconfig = {'timeout': 600}\ndef handler(): ...\n",
        }
    )
    manifest = scan(root)
    assert manifest.socket is not None
    assert [h.config.timeout for h in manifest.socket.handlers] == [29, 29]
    long = manifest.schedule("long")
    assert long is not None and long.config.timeout == 600


def test_schedule_without_schedule(make_project: MakeProject) -> None:
    root = make_project({"schedules/digest.py": "def handler(job): ...\n"})
    problem = one_problem(root)
    assert problem.startswith("schedules/digest.py: has no schedule")
    assert 'schedule = "0 9 * * 1-5"' in problem


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("61 * * * *", "not a valid cron expression"),
        ("* * *", "has 3 fields"),
        ("rate(5 fortnights)", "not a valid rate"),
        ("0 0 1 * 1", "cannot express"),
        ("0 9 * * 1#1,5#3", "allows one '#' (nth weekday)"),
        ("*/90 * * * *", "the step /90 in the minute field"),
    ],
)
def test_invalid_schedule(make_project: MakeProject, expression: str, message: str) -> None:
    root = make_project(
        {
            "schedules/digest.py": f'"""doc"""\n\nschedule = "{expression}"\n\ndef handler(job): ...\n'
        }
    )
    problem = one_problem(root)
    assert problem.startswith("schedules/digest.py:3:")
    assert message in problem


def test_schedules(make_project: MakeProject) -> None:
    root = make_project(
        {
            "schedules/digest.py": "schedule = 'daily'\nconfig = {'timeout': 120}\ndef handler(job): ...\n",
            "schedules/off.py": "schedule = 'never'\ndef handler(): ...\n",
        }
    )
    manifest = scan(root)
    digest = manifest.schedule("digest")
    assert digest is not None
    assert digest.expression.normalized == "0 0 * * *"
    assert digest.config.timeout == 120
    data = manifest.to_dict()
    assert data["schedules"][0]["aws_expression"] == "cron(0 0 * * ? *)"
    assert data["schedules"][1]["aws_expression"] is None


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("{'timout': 5}", "config key 'timout' does not exist. Did you mean 'timeout'?"),
        ("{'timeout': 'soon'}", "config['timeout'] must be a number of seconds"),
        ("{'timeout': 60}", "at most 29"),
        ("{'accepts': 'json'}", "config['accepts'] must be a list of media types"),
        ("{'cache': -1}", "config['cache'] must be seconds"),
        ("{'cors': 'yes'}", "config['cors'] must be"),
        ("{'cors': {'max_age': 172800}}", "must be -1 (no caching) to 86400 seconds"),
        ("{'cors': {'max_age': -2}}", "API Gateway's range, got -2"),
        ("{'cors': {'max_age': True}}", "config['cors'] must be"),
        ("{'methods': ['GET']}", "only applies to a module-level handler"),
        ("['timeout', 5]", "config must be a dict, got list"),
    ],
)
def test_bad_route_config(make_project: MakeProject, config: str, message: str) -> None:
    root = make_project({"api/index.py": f"import os\n\nconfig = {config}\n\ndef get(): ...\n"})
    problem = one_problem(root)
    assert problem.startswith("api/index.py:3:")
    assert message in problem


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("{'max_attempt': 5}", "Did you mean 'max_attempts'?"),
        ("{'timeout': 901}", "at most 900"),
        ("{'batch_size': 11}", "config['batch_size'] must be a whole number from 1 to 10"),
        ("{'concurrency': 1}", "from 2 to 1000"),
        ("{'max_attempts': True}", "config['max_attempts'] must be a whole number"),
        ("{'backoff': 'linear'}", "config['backoff'] must be 'exponential', 'fixed'"),
        ("{'keep_results': -1}", "config['keep_results'] must be a whole number from 0 to"),
        ("{'keep_results': 1.5}", "(seconds; 0 keeps no job state), got 1.5"),
        ("{'status_route': 'yes'}", "config['status_route'] must be True or False, got 'yes'"),
        (
            "{'status_route': True, 'keep_results': 0}",
            "config['status_route'] is on but config['keep_results'] is 0",
        ),
    ],
)
def test_bad_queue_config(make_project: MakeProject, config: str, message: str) -> None:
    root = make_project({"queues/jobs.py": f"config = {config}\ndef handler(payload): ...\n"})
    problem = one_problem(root)
    assert problem.startswith("queues/jobs.py:1:")
    assert message in problem


def test_queue_job_state_config(make_project: MakeProject) -> None:
    root = make_project(
        {
            "queues/a.py": "config = {'keep_results': 0}\ndef handler(payload): ...\n",
            "queues/b.py": "config = {'status_route': True, 'keep_results': 600}\n"
            "def handler(payload): ...\n",
            "queues/c.py": "def handler(payload): ...\n",
        }
    )
    configs = {q.name: q.config for q in scan(root).queues}
    assert (configs["a"].keep_results, configs["a"].status_route) == (0, False)
    assert (configs["b"].keep_results, configs["b"].status_route) == (600, True)
    assert (configs["c"].keep_results, configs["c"].status_route) == (86_400, False)


def test_queue_batches_fit_one_lambda_invocation(make_project: MakeProject) -> None:
    """A FIFO batch runs its jobs one after another, a standard one `concurrency` at a time, and
    the whole batch must finish inside Lambda's 900 s: an explicit batch_size that cannot is a
    load error naming the queue; the default batch shrinks to what fits."""
    root = make_project(
        {
            "queues/orders.fifo.py": "config = {'timeout': 120, 'batch_size': 10}\n"
            "def handler(payload): ...\n",
            "queues/wide.py": "config = {'timeout': 300, 'batch_size': 10, 'concurrency': 2}\n"
            "def handler(payload): ...\n",
        }
    )
    found = problems(root)
    assert len(found) == 2, found
    fifo, wide = sorted(found)
    assert fifo.startswith("queues/orders.fifo.py:1: config['batch_size'] 10 does not fit")
    assert "one job after another, so a batch may take 10 x 120 s + 5 s = 1205 s" in fifo
    assert "over Lambda's 900 s maximum" in fifo
    assert "use a batch_size of at most 7, or a shorter timeout" in fifo
    assert "2 jobs at a time, so a batch may take 5 x 300 s + 5 s = 1505 s" in wide
    assert "at most 4, or a shorter timeout or a higher concurrency" in wide
    for name in ("orders.fifo", "wide"):
        (root / f"queues/{name}.py").unlink()
    make_project(
        {
            "queues/slow.fifo.py": "config = {'timeout': 120}\ndef handler(payload): ...\n",
            "queues/long.fifo.py": "config = {'timeout': 900}\ndef handler(payload): ...\n",
            "queues/fits.fifo.py": "config = {'timeout': 60, 'batch_size': 10}\n"
            "def handler(payload): ...\n",
            "queues/wide.py": "config = {'timeout': 300, 'concurrency': 3}\n"
            "def handler(payload): ...\n",
        }
    )
    sizes = {q.name: q.config.batch_size for q in scan(root).queues}
    assert sizes == {"fits.fifo": 10, "long.fifo": 1, "slow.fifo": 7, "wide": 6}


def test_route_config_values(make_project: MakeProject) -> None:
    root = make_project(
        {
            "api/index.py": "config = {'timeout': 5, 'accepts': ['application/JSON'], 'cache': 60, "
            "'cors': {'origins': ['https://a.example']}}\ndef get(): ...\n",
            "api/any.py": "config = {'methods': ['get', 'post']}\ndef handler(request): ...\n",
            "api/all.py": "def handler(request): ...\n",
            "api/nocache.py": "config = {'cors': {'max_age': -1}}\ndef get(): ...\n",
            "api/day.py": "config = {'cors': {'max_age': 86400}}\ndef get(): ...\n",
        }
    )
    by_path = {r.path: r for r in scan(root).routes}
    assert by_path["/nocache"].config.cors.max_age == -1
    assert by_path["/day"].config.cors.max_age == 86400
    config = by_path["/"].config
    assert config.timeout == 5
    assert config.accepts == ("application/json",)
    assert config.cache == "max-age=60"
    assert config.cors.origins == ("https://a.example",)
    assert by_path["/any"].methods == ("GET", "HEAD", "POST")
    assert by_path["/all"].methods == ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def test_unknown_qr_yaml_key(make_project: MakeProject) -> None:
    root = make_project({"qr.yaml": "name: demo\nmemroy: 256\n", "api/index.py": GET})
    problem = one_problem(root)
    assert problem.startswith("qr.yaml:2: unknown key 'memroy'")
    assert "Did you mean 'memory'?" in problem
    assert "known keys: name, runtime, architecture, region, memory" in problem


def test_syntax_error_names_file_and_line(make_project: MakeProject) -> None:
    root = make_project({"api/index.py": "def get():\n    return {\n\nx = (\n", "api/ok.py": GET})
    problem = one_problem(root)
    assert problem.startswith("api/index.py:")
    assert "syntax error" in problem


def test_import_error_names_file_and_line(make_project: MakeProject) -> None:
    root = make_project(
        {"api/index.py": "import os\nimport no_such_module_here\n\ndef get(): ...\n"}
    )
    problem = one_problem(root)
    assert problem.startswith("api/index.py:2: failed to import: ModuleNotFoundError")


def test_error_raised_in_lib_points_at_lib(make_project: MakeProject) -> None:
    root = make_project(
        {
            "lib/__init__.py": "",
            "lib/broken.py": "x = 1\nraise RuntimeError('boom')\n",
            "api/index.py": "import lib.broken\n" + GET,
        }
    )
    problem = one_problem(root)
    assert problem.startswith("lib/broken.py:2: failed to import: RuntimeError: boom")


def test_lib_is_importable(make_project: MakeProject) -> None:
    root = make_project(
        {
            "lib/__init__.py": "",
            "lib/util.py": "VALUE = 7\n",
            "api/index.py": "from lib.util import VALUE\n" + GET,
        }
    )
    manifest = scan(root)
    assert sys.modules[manifest.routes[0].module].VALUE == 7


def test_all_problems_reported_together(make_project: MakeProject) -> None:
    root = make_project(
        {
            "qr.yaml": "nmae: x\n",
            "api/a.py": GET,
            "api/a/index.py": GET,
            "api/[1x].py": GET,
            "queues/Bad.py": "def handler(payload): ...\n",
            "schedules/s.py": "def handler(job): ...\n",
            "socket/__init__.py": "",
            "api/broken.py": "def get(:\n",
        }
    )
    found = problems(root)
    assert len(found) == 7
    assert [p.split(":")[0] for p in found] == sorted(p.split(":")[0] for p in found)


def test_handler_asks_for_unknown_name(make_project: MakeProject) -> None:
    root = make_project({"api/[id].py": "import os\n\ndef get(id, reqest):\n    return id\n"})
    problem = one_problem(root)
    assert problem.startswith("api/[id].py:3: route handler get() asks for 'reqest'")
    assert "Did you mean 'request'?" in problem


def test_no_handler_exported(make_project: MakeProject) -> None:
    root = make_project({"api/index.py": "VALUE = 1\n", "queues/q.py": "x = 1\n"})
    found = problems(root)
    assert any("api/index.py: exports no request handler" in p for p in found)
    assert any("queues/q.py: has no handler function" in p for p in found)


def test_handler_and_methods_conflict(make_project: MakeProject) -> None:
    root = make_project({"api/index.py": "def handler(): ...\ndef get(): ...\n"})
    assert "defines both handler and method functions" in one_problem(root)


def test_middleware_inheritance_and_opt_out(make_project: MakeProject) -> None:
    root = make_project(
        {
            "api/_middleware.py": "def authenticate(bearer_token): ...\ndef on_error(error): ...\n",
            "api/admin/_middleware.py": "def on_request(request): ...\n",
            "api/admin/users.py": GET,
            "api/public/index.py": "authenticate = None\n" + GET,
            "api/own.py": "def authenticate(request): ...\n" + GET,
            "api/index.py": GET,
        }
    )
    by_path = {r.path: r for r in scan(root).routes}
    assert by_path["/admin/users"].middleware == {
        "authenticate": "api/_middleware.py",
        "on_request": "api/admin/_middleware.py",
        "on_error": "api/_middleware.py",
    }
    assert by_path["/public"].middleware == {"authenticate": None, "on_error": "api/_middleware.py"}
    assert by_path["/own"].middleware["authenticate"] == "api/own.py"
    assert by_path["/"].middleware == {
        "authenticate": "api/_middleware.py",
        "on_error": "api/_middleware.py",
    }


def test_middleware_hook_with_unknown_parameter(make_project: MakeProject) -> None:
    root = make_project(
        {"api/_middleware.py": "def authenticate(token): ...\n", "api/index.py": GET}
    )
    problem = one_problem(root)
    assert problem.startswith(
        "api/_middleware.py:1: middleware hook authenticate() asks for 'token'"
    )


def test_to_dict_is_json(make_project: MakeProject) -> None:
    root = make_project(
        {
            "api/index.py": GET,
            "queues/q.fifo.py": "def handler(payload): ...\n",
            "schedules/s.py": "schedule='hourly'\ndef handler(): ...\n",
        }
    )
    manifest: Manifest = scan(root)
    data = json.loads(json.dumps(manifest.to_dict()))
    assert data["queues"][0]["fifo"] is True
    assert data["routes"][0]["pattern"] == "/"
    assert data["schedules"][0]["expression"] == "0 * * * *"


def test_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match="is not a directory"):
        scan(tmp_path / "missing")


def test_nested_queue_rejected(make_project: MakeProject) -> None:
    root = make_project({"queues/sub/q.py": "def handler(payload): ...\n"})
    assert "queues are flat files" in one_problem(root)


def test_problems_with_and_without_a_line_in_one_file_sort(make_project: MakeProject) -> None:
    # "get = 5" gives a problem at line 1 and "exports no request handler" without a line:
    # sorting them once raised TypeError (None < int).
    root = make_project({"api/numbers.py": "get = 5\n"})
    found = problems(root)
    assert found == [
        "api/numbers.py: exports no request handler\n  fix: define a function named after a "
        "method (get, post, put, patch, delete, head, options) or a handler with config['methods']",
        "api/numbers.py:1: get must be a function\n"
        "  fix: define it with def (or async def): def get(request): ...",
    ]


def test_every_load_problem_names_a_project_file_and_has_a_fix(
    make_project: MakeProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_project(
        {
            "qr.yaml": "name: demo\nmemory: [1]\nstages: 5\n",
            "api/index.py": "handler = 3\n",
            "api/_middleware.py": "authenticate = 5\non_error = 'x'\n",
            "api/items.py": GET + "config = {'timeout': 'soon', 'cache': []}\n",
            "api/broken.py": "import json\njson.loads('{')\n",
            "api/evals.py": "X = 1\nY = eval('(')\n",
            "socket/_middleware.py": "authenticate = 1\n",
            "socket/index.py": "handler = 2\n",
            "queues/jobs.py": "handler = 1\nconfig = {'timeout': 0, 'max_attempts': 0}\n",
            "schedules/tick.py": "schedule = 'daily'\nhandler = None\nconfig = {'timeout': -1}\n",
        }
    )
    (root / "api" / "v1.py").mkdir()  # a folder named like a handler file
    (root / "api" / "v1.py" / "things.py").write_text(GET, encoding="utf-8")
    monkeypatch.chdir(root)  # as qr runs: importlib's "<frozen ...>" frames resolved against it
    with pytest.raises(ProjectError) as info:
        scan(root)
    found = info.value.problems
    assert len(found) >= 10, [str(p) for p in found]
    for problem in found:
        assert (root / problem.file).is_file(), str(problem)
        assert problem.hint, f"no fix for: {problem}"
    text = "\n".join(str(p) for p in found)
    assert "<frozen" not in text
    assert "api/broken.py:2: failed to import: JSONDecodeError" in text
    assert "api/evals.py:2: syntax error: '(' was never closed" in text
    assert "authenticate must be a function or None" in text


def test_folder_named_like_a_handler_holds_routes(make_project: MakeProject) -> None:
    root = make_project({"api/v1.py/things.py": GET})
    (root / "api" / "empty.py").mkdir()
    assert [r.path for r in scan(root).routes] == ["/v1.py/things"]


def test_qr_yaml_that_is_not_utf8_names_the_byte(make_project: MakeProject) -> None:
    root = make_project({"api/index.py": GET})
    (root / "qr.yaml").write_bytes(b"name: demo\nregion: caf\xe9\n")
    assert problems(root) == [
        "qr.yaml:2: is not UTF-8 text: byte 22 is 0xe9\n"
        "  fix: save qr.yaml as UTF-8 (most editors have an encoding setting)"
    ]

"""Hot reload in-process: lib/ changes, broken files, recovery (``qr.cli.dev.reload``)."""

from __future__ import annotations

import io
from pathlib import Path

from starlette.testclient import TestClient
from watchfiles import Change

from qr.cli.console import Output
from qr.cli.dev.log import DevLog
from qr.cli.dev.reload import LiveProject, watch_filter
from qr.runtime.http import create_app
from qr.runtime.manifest import Manifest
from tests.conftest import MakeProject

FILES = {
    "lib/__init__.py": "",
    "lib/words.py": "WORD = 'one'\n",
    "api/word.py": "from lib.words import WORD\n\ndef get():\n    return {'word': WORD}\n",
    "api/other.py": "def get():\n    return {'other': True}\n",
}


def live_project(root: Path) -> tuple[LiveProject, io.StringIO]:
    stream = io.StringIO()
    return LiveProject(root, create_app, DevLog(Output(stream, rich=False))), stream


def console(live: LiveProject, stream: io.StringIO) -> str:
    live.log.flush()  # the dev console batches its lines
    return stream.getvalue()


def get(live: LiveProject, path: str) -> tuple[int, object]:
    scope = {"type": "http", "path": path, "headers": []}
    error = live.error_response(scope)
    app = error if error is not None else live.app
    response = TestClient(app).get(path)
    return response.status_code, response.json()


def test_lib_change_is_picked_up(make_project: MakeProject) -> None:
    root = make_project(FILES)
    live, stream = live_project(root)
    seen: list[Manifest] = []
    live.listeners.append(seen.append)
    assert get(live, "/word") == (200, {"word": "one"})
    (root / "lib/words.py").write_text("WORD = 'two'\n")
    assert live.reload()
    assert get(live, "/word") == (200, {"word": "two"})
    assert len(seen) == 1
    assert "reloaded 2 handlers in" in console(live, stream)


def test_broken_route_answers_with_the_error_others_keep_serving(make_project: MakeProject) -> None:
    root = make_project(FILES)
    live, stream = live_project(root)
    (root / "api/word.py").write_text("def get(:\n")
    assert not live.reload()
    status, body = get(live, "/word")
    assert status == 500
    assert isinstance(body, dict)
    assert body["error"] == "project error in api/word.py:1"
    assert get(live, "/other") == (200, {"other": True})
    assert "api/word.py:1: syntax error" in console(live, stream)
    (root / "api/word.py").write_text(FILES["api/word.py"])
    assert live.reload()
    assert get(live, "/word") == (200, {"word": "one"})


def test_broken_lib_affects_every_route_and_keeps_the_old_modules(
    make_project: MakeProject,
) -> None:
    root = make_project(FILES)
    live, _ = live_project(root)
    (root / "lib/words.py").write_text("WORD = 1 / 0\n")
    assert not live.reload()
    status, body = get(live, "/other")
    assert status == 500
    assert isinstance(body, dict)
    assert body["problems"][0]["file"] == "lib/words.py"
    assert body["problems"][0]["line"] == 1
    # the last good app still holds working modules (restored into sys.modules)
    response = TestClient(live.app).get("/word")
    assert response.json() == {"word": "one"}


def test_new_broken_route_file_only_breaks_its_own_path(make_project: MakeProject) -> None:
    root = make_project(FILES)
    live, _ = live_project(root)
    (root / "api/items/[id].py").parent.mkdir()
    (root / "api/items/[id].py").write_text("import does_not_exist\n")
    assert not live.reload()
    assert get(live, "/items/3")[0] == 500
    assert get(live, "/other") == (200, {"other": True})


def test_watch_filter(tmp_path: Path) -> None:
    accept = watch_filter(tmp_path)
    yes = ["api/x.py", "lib/y.py", "qr.yaml", ".env", "socket/index.py"]
    no = ["tests/test_x.py", ".qr/dev/queues.db", ".venv/lib/z.py", "README.md", "api/x.txt"]
    assert all(accept(Change.modified, str(tmp_path / p)) for p in yes)
    assert not any(accept(Change.modified, str(tmp_path / p)) for p in no)


def test_watch_filter_reloads_for_a_new_or_removed_folder(tmp_path: Path) -> None:
    """A file written into a brand-new folder right away can be missed by the watcher (it watches
    the folder only once it has seen it): the folder's own event must trigger the rescan."""
    accept = watch_filter(tmp_path)
    (tmp_path / "api" / "users").mkdir(parents=True)
    (tmp_path / "tests" / "unit").mkdir(parents=True)
    (tmp_path / ".cache").mkdir()
    assert accept(Change.added, str(tmp_path / "api" / "users"))
    assert accept(Change.deleted, str(tmp_path / "api" / "gone"))
    assert not accept(Change.added, str(tmp_path / "tests" / "unit"))
    assert not accept(Change.added, str(tmp_path / ".cache"))
    assert not accept(Change.deleted, str(tmp_path / "notes.txt"))
    (tmp_path / "api" / "data.json").write_text("{}")
    assert not accept(Change.added, str(tmp_path / "api" / "data.json"))

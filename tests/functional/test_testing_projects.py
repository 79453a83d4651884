"""Two projects in one process (two ``Client``s in one test): each runs its own code.

Both projects have the same file names (``lib/words.py``, ``helpers.py``, ``api/word.py``,
``schedules/daily.py``) with different contents, as two services of one repository would.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

from qr.runtime.testing import Client


def _project(root: Path, word: str, files: dict[str, str] | None = None) -> Path:
    sources = {
        "qr.yaml": f"name: {word}\n",
        "lib/__init__.py": "",
        "lib/words.py": f"WORD = {word!r}\n",
        "helpers.py": f"NAME = {word!r}\n",
        "api/word.py": """
            import helpers
            from lib.words import WORD

            def get():
                return {"word": WORD, "helper": helpers.NAME}
        """,
        "schedules/daily.py": """
            from lib.words import WORD

            schedule = "0 9 * * *"

            def handler():
                return WORD
        """,
        **(files or {}),
    }
    for name, text in sources.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return root


def test_two_clients_each_load_their_own_project(tmp_path: Path) -> None:
    one = _project(tmp_path / "one", "alpha", {"only_one.py": "X = 1\n"})
    two = _project(
        tmp_path / "two",
        "beta",
        {
            "api/leak.py": """
                def get():
                    try:
                        import only_one  # noqa: F401 - only the other project has it
                    except ImportError:
                        return {"leak": False}
                    return {"leak": True}
            """
        },
    )
    with Client(one) as first:
        assert first.get("/word").json() == {"word": "alpha", "helper": "alpha"}
        with Client(two) as second:
            # the second project's lib/ and helpers.py, not the first one's cached modules
            assert second.get("/word").json() == {"word": "beta", "helper": "beta"}
            assert second.get("/leak").json() == {"leak": False}
            # the first client still runs its own code, including what it looks up per call
            assert first.get("/word").json() == {"word": "alpha", "helper": "alpha"}
            assert first.run_schedule("daily") == "alpha"
            assert second.run_schedule("daily") == "beta"
            # handler module names do not collide
            (route_one,) = [r for r in first.manifest.routes if r.file == "api/word.py"]
            (route_two,) = [r for r in second.manifest.routes if r.file == "api/word.py"]
            assert route_one.module != route_two.module
            assert sys.modules[route_one.module].__file__ == str(
                (one / "api" / "word.py").resolve()
            )
            assert sys.modules[route_two.module].__file__ == str(
                (two / "api" / "word.py").resolve()
            )
        # and back: a new client of the first project loads the first project's modules again
        with Client(one) as again:
            assert again.get("/word").json() == {"word": "alpha", "helper": "alpha"}
            assert again.run_schedule("daily") == "alpha"


QUEUE_FILES = {
    "queues/tasks.py": """
        from lib.words import WORD

        def handler(payload):
            return f"{WORD}:{payload}"
    """,
    "api/push.py": """
        from qr.runtime import queues

        def post(body):
            return {"job_id": queues["tasks"].push(body)}
    """,
}


def test_two_clients_alive_at_once_each_push_into_their_own_queues(tmp_path: Path) -> None:
    first_root = _project(tmp_path / "first", "alpha", QUEUE_FILES)
    second_root = _project(tmp_path / "second", "beta", QUEUE_FILES)
    with Client(first_root) as first, Client(second_root) as second:
        one = first.post("/push", json="one").json()["job_id"]
        two = second.post("/push", json="two").json()["job_id"]
        three = first.post("/push", json="three").json()["job_id"]

        assert [o.result for o in first.drain()] == ["alpha:one", "alpha:three"]
        assert [o.result for o in second.drain()] == ["beta:two"]
        assert first.job(two) is None and second.job(one) is None
        state = first.job(three)
        assert state is not None and state.status == "succeeded"
    from qr.runtime import ports

    assert ports.current_platform() is None


def test_a_platform_installed_by_someone_else_stays_in_place(tmp_path: Path) -> None:
    from qr.runtime import ports

    outer = Client(_project(tmp_path / "outer", "outer", QUEUE_FILES))
    theirs = outer.platform
    assert theirs is not None
    previous = ports.set_platform(None)
    try:
        # a platform a program installed itself (not a Client's own) is never replaced
        user_platform = ports.Platform(
            "local", theirs.queues, theirs.sockets, theirs.connections, jobs=theirs.jobs
        )
        ports.set_platform(user_platform)
        with Client(_project(tmp_path / "inner", "inner", QUEUE_FILES)) as inner:
            inner.post("/push", json="x")
            assert ports.current_platform() is user_platform
        assert ports.current_platform() is user_platform
    finally:
        ports.set_platform(previous)
        outer.close()

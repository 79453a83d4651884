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

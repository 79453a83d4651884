"""Projects the Terraform tests render: the scaffold and generated edge cases.

``render(root, stage)`` scans a project, builds and checks the model and writes the module to
``root/.qr/build/<stage>/terraform``, then forgets the handler modules it loaded, so it can run
in module-scoped fixtures without leaking into other tests.
"""

from __future__ import annotations

import shutil
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path

from qr.cli import scaffold
from qr.cli.terraform import terraform_model, write
from qr.runtime._loader import MODULE_PREFIX
from qr.runtime.manifest import scan

ROUTE = "def get():\n    return {'ok': True}\n"
QUEUE = "def handler(payload, job):\n    return None\n"
SOCKET = "def handler(data, connection_id):\n    return None\n"


def schedule(expression: str) -> str:
    return f"schedule = {expression!r}\n\ndef handler(job):\n    return None\n"


def qr_yaml(name: str, stage: str = "") -> str:
    return f"name: {name}\nregion: eu-west-1\n" + textwrap.dedent(stage)


EDGE_PROJECTS: Mapping[str, Mapping[str, str]] = {
    "fifo-only": {
        "qr.yaml": qr_yaml("fifo-only"),
        "queues/orders.fifo.py": QUEUE
        + "config = {'timeout': 120, 'max_attempts': 5, 'batch_size': 5,\n"
        + "          'rate_limit': {'limit': 5, 'per': 1, 'key': 'group'}}\n",
        "queues/profile_updates.fifo.py": QUEUE,
    },
    "no-sockets": {
        "qr.yaml": qr_yaml("no-sockets"),
        "api/index.py": ROUTE,
        "api/files/[...path].py": ROUTE,
        "api/feed.xml.py": ROUTE,
        "api/users/[id]/index.py": ROUTE + "config = {'cors': False}\n",
        "queues/emails.py": QUEUE + "config = {'concurrency': 2, 'timeout': 600}\n",
        "schedules/digest.py": schedule("0 9 * * 1-5"),
        "schedules/hourly.py": schedule("rate(1 hour)"),
        "schedules/paused.py": schedule("never"),
    },
    "domain-zone": {
        "qr.yaml": qr_yaml(
            "domain-zone",
            """\
            stages:
              production:
                domain: api.example.com
                zone: Z0123456789ABCDEFGHIJ
                env: {LOG_LEVEL: info, GREETING: "hello ${name} %{x}"}
            terraform:
              backend: {s3: {bucket: my-tf-state, region: eu-west-1, key_prefix: states}}
            """,
        ),
        "api/index.py": ROUTE,
        "socket/index.py": SOCKET,
        "socket/chat.py": SOCKET,
    },
    "domain-manual": {
        "qr.yaml": qr_yaml(
            "domain-manual",
            """\
            throttle: {rate: 50}
            stages:
              staging:
                domain: staging.example.org
                memory: 1024
                throttle: {burst: 100}
            """,
        ),
        "api/index.py": ROUTE,
        "socket/index.py": SOCKET,
        "queues/jobs.py": QUEUE,
    },
    "many-queues": {
        "qr.yaml": qr_yaml("many-queues"),
        **{
            f"queues/{'q' * 20}_{i:03d}{'.fifo' if i % 3 == 0 else ''}.py": QUEUE
            for i in range(100)
        },
    },
}
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
PROJECTS = ("scaffold", "bookmarks", *EDGE_PROJECTS)
STAGES = {"domain-manual": "staging"}


def make(root: Path, name: str) -> Path:
    """Write project ``name`` under ``root`` and return its directory."""
    target = root / name
    if name == "scaffold":
        scaffold.render(target, "default", scaffold.Answers(name="scaffold"))
        return target
    if name == "bookmarks":
        shutil.copytree(EXAMPLES / "bookmarks", target, ignore=shutil.ignore_patterns(".qr"))
        return target
    for relative, text in EDGE_PROJECTS[name].items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return target


def _project_module(name: str) -> bool:
    return name.startswith(MODULE_PREFIX) or name == "lib" or name.startswith("lib.")


def render(root: Path, stage: str | None = None, out: Path | None = None) -> Path:
    """Render ``root``'s Terraform for ``stage`` into ``out`` (default: its build directory)."""
    path = list(sys.path)
    # Another project's `lib` package may still be imported (fixtures of other tests): set it
    # aside so this project's own `lib` loads, and put it back afterwards.
    saved = {n: m for n, m in sys.modules.items() if _project_module(n)}
    for name in saved:
        del sys.modules[name]
    try:
        manifest = scan(root)
        model = terraform_model(manifest, stage)
    finally:
        sys.path[:] = path
        for name in [n for n in sys.modules if _project_module(n)]:
            del sys.modules[name]
        sys.modules.update(saved)
    out = out or root / ".qr" / "build" / model.stage / "terraform"
    write(model, out)
    return out

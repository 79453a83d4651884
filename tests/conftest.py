from __future__ import annotations

import faulthandler
import logging
import os
import sys
import textwrap
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from qr.runtime._loader import MODULE_PREFIX

MakeProject = Callable[[Mapping[str, str]], Path]

BACKSTOP_GRACE = 60.0
"""Seconds past a test's limit after which the run is stopped (see ``pytest_timeout_set_timer``)."""


_BACKSTOP_FD = pytest.StashKey[int]()


def pytest_configure(config: pytest.Config) -> None:
    # the terminal's stderr, kept now: while a test runs, fd 2 is pytest's capture file
    config.stash[_BACKSTOP_FD] = os.dup(sys.__stderr__.fileno() if sys.__stderr__ else 2)


def pytest_unconfigure(config: pytest.Config) -> None:
    os.close(config.stash[_BACKSTOP_FD])


@pytest.hookimpl(tryfirst=True)
def pytest_timeout_set_timer(item: pytest.Item, settings: Any) -> None:
    """Backstop for the ``signal`` method: its SIGALRM fails the test once, but the unwinding
    (a fixture's teardown, a ``Popen`` waiting for its child) could block again. If the test has
    not finished ``BACKSTOP_GRACE`` seconds later, dump every thread's stack and exit the run."""
    faulthandler.dump_traceback_later(
        settings.timeout + BACKSTOP_GRACE, exit=True, file=item.config.stash[_BACKSTOP_FD]
    )


@pytest.hookimpl(tryfirst=True)
def pytest_timeout_cancel_timer(item: pytest.Item) -> None:
    faulthandler.cancel_dump_traceback_later()


@pytest.fixture
def make_project(tmp_path: Path) -> MakeProject:
    """Write a project from ``{relative path: source}`` (dedented) and return its root."""

    def make(files: Mapping[str, str]) -> Path:
        root = tmp_path / "proj"
        root.mkdir(exist_ok=True)
        for name, text in files.items():
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return root

    return make


@pytest.fixture(autouse=True)
def _isolate_imports() -> Iterator[None]:
    """Each test loads its own projects: forget handler modules and project paths afterwards."""
    path = list(sys.path)
    before = set(sys.modules)
    yield
    sys.path[:] = path
    for name in set(sys.modules) - before:
        module = sys.modules[name]
        if (
            name.startswith(MODULE_PREFIX)
            or name == "lib"
            or name.startswith("lib.")
            or (getattr(module, "__file__", None) and "/proj/" in str(module.__file__))
        ):
            del sys.modules[name]


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """The Lambda runtime configures the root logger (JSON lines) as on Lambda: undo it afterwards."""
    root = logging.getLogger()
    level, formatters = root.level, [(h, h.formatter) for h in root.handlers]
    noisy = {name: logging.getLogger(name).level for name in ("botocore", "boto3", "urllib3")}
    yield
    root.setLevel(level)
    for handler, formatter in formatters:
        handler.setFormatter(formatter)
    for name, value in noisy.items():
        logging.getLogger(name).setLevel(value)

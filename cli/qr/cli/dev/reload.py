"""Hot reload: the project as currently served, and the file watcher that refreshes it.

``LiveProject`` holds the last good manifest and the ASGI app built from it. ``reload()``:

1. takes every project module out of ``sys.modules`` (handler modules ``qr_app:...`` and the
   project's own plain modules such as ``lib.*``: anything whose file is under the root), keeping
   them aside;
2. scans again (``qr.runtime.manifest.scan``), which loads every handler and what it imports anew;
3. on success, builds the new app and tells the listeners (socket dispatch, scheduler, queue
   worker) about the new manifest; the queue engine, its queued jobs and open WebSocket
   connections are untouched;
4. on a ``ProjectError`` (a syntax or import error, a bad config), puts the old modules back so the
   last good version keeps running, and remembers the problems.

While the project has problems, HTTP requests whose route file is broken (or, when the broken
file is not a route - ``lib/``, ``_middleware.py``, ``qr.yaml`` - every request, since any route
may depend on it) get a 500 response naming each file and line (``error_response``); other
routes, queues, schedules and sockets keep running the last good code. Fixing the file recovers
on the next save.

The watcher reloads with ``reload_in_thread``: steps 1-2 (and building the app) run in a daemon
thread, so a module that is slow to import never stalls the event loop, which goes on serving the
current code; step 3 runs back on the loop. Handler modules stay in ``sys.modules`` until their
new version replaces them (queue jobs and socket messages look their handler up there). An import
still running after ``timeout`` seconds is abandoned: the console names the file and line it is
stuck at, the old modules are put back, and the thread is sent an exception (an endless Python
loop stops at once; a blocking C call such as ``time.sleep`` first returns). Being a daemon, such
a thread never holds up ``qr dev``'s exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import html
import importlib
import re
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType, ModuleType

from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import compile_path
from starlette.types import ASGIApp, Scope
from watchfiles import Change, awatch

from qr.cli.dev.env import ENV_FILE, DevEnvironment
from qr.cli.dev.log import DevLog
from qr.runtime._loader import MODULE_PREFIX
from qr.runtime.config import CONFIG_FILE
from qr.runtime.errors import ProjectError
from qr.runtime.manifest import API_DIR, Manifest, scan

Listener = Callable[[Manifest], None]
_IGNORED_DIRS = {".qr", ".venv", "venv", "node_modules", "__pycache__", "tests", ".git"}
RELOAD_TIMEOUT = 10.0
"""Seconds a reload may take to import the project before it is abandoned (``--reload-timeout``)."""


class ReloadTimeout(BaseException):
    """Sent into an abandoned reload thread; a ``BaseException`` so no ``except Exception`` in the
    loader or in user code swallows it."""


class LiveProject:
    def __init__(
        self,
        root: Path,
        build: Callable[[Manifest], ASGIApp],
        log: DevLog,
        *,
        scanner: Callable[[Path], Manifest] = scan,
        timeout: float = RELOAD_TIMEOUT,
    ) -> None:
        self.root = root.resolve()
        self.build = build
        self.log = log
        self.scanner = scanner
        self.timeout = timeout
        self.manifest = scanner(self.root)
        self.app = build(self.manifest)
        self.error: ProjectError | None = None
        self.listeners: list[Listener] = []
        self._broken: list[tuple[re.Pattern[str], str]] = []

    def reload(self) -> bool:
        """Scan again (here, blocking); ``True`` when the new version is being served."""
        started = time.perf_counter()
        saved = _take_project_modules(self.root)
        try:
            manifest, app = self._load()
        except ProjectError as exc:
            return self._failed(exc, saved)
        return self._serve(manifest, app, saved, started)

    async def reload_in_thread(self) -> bool:
        """Scan again in a daemon thread while the loop serves the current code; give up after
        ``timeout`` seconds. ``True`` when the new version is being served."""
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        saved = _take_project_modules(self.root, handlers=False)
        loaded: asyncio.Future[tuple[Manifest, ASGIApp]] = loop.create_future()

        def settle(outcome: tuple[Manifest, ASGIApp] | BaseException) -> None:
            if loaded.done():
                return
            if isinstance(outcome, BaseException):
                loaded.set_exception(outcome)
            else:
                loaded.set_result(outcome)

        def load() -> None:
            outcome: tuple[Manifest, ASGIApp] | BaseException
            try:
                outcome = self._load()
            except ReloadTimeout:
                return
            except BaseException as exc:  # a bug in qr, or an exit at import: reported on the loop
                outcome = exc
            with contextlib.suppress(RuntimeError):  # the loop is closed: qr dev has stopped
                loop.call_soon_threadsafe(settle, outcome)

        thread = threading.Thread(target=load, name="qr-reload", daemon=True)
        thread.start()
        try:
            manifest, app = await asyncio.wait_for(asyncio.shield(loaded), self.timeout)
        except TimeoutError:
            self._abandon(thread, saved)
            return False
        except ProjectError as exc:
            return self._failed(exc, saved)
        except asyncio.CancelledError:  # qr dev is stopping
            _put_back(self.root, saved)
            raise
        except BaseException as exc:
            _put_back(self.root, saved)
            if isinstance(exc, Exception):
                raise
            # KeyboardInterrupt raised at import in the thread: a failed reload, not a Ctrl+C
            raise RuntimeError(f"importing the project raised {type(exc).__name__}") from exc
        return self._serve(manifest, app, saved, started)

    def _load(self) -> tuple[Manifest, ASGIApp]:
        importlib.invalidate_caches()
        manifest = self.scanner(self.root)
        return manifest, self.build(manifest)

    def _serve(
        self, manifest: Manifest, app: ASGIApp, saved: dict[str, ModuleType], started: float
    ) -> bool:
        for name, module in saved.items():  # handler modules whose file is gone
            if sys.modules.get(name) is module and name.startswith(MODULE_PREFIX):
                del sys.modules[name]
        self.manifest, self.app, self.error, self._broken = manifest, app, None, []
        for listener in self.listeners:
            listener(manifest)
        elapsed = (time.perf_counter() - started) * 1000
        self.log.info(f"reloaded {len(manifest.files)} handlers in {elapsed:.0f} ms")
        return True

    def _failed(self, exc: ProjectError, saved: dict[str, ModuleType]) -> bool:
        _put_back(self.root, saved)
        self.error = exc
        self._broken = self._broken_routes(exc)
        self.log.problems(exc)
        return False

    def _abandon(self, thread: threading.Thread, saved: dict[str, ModuleType]) -> None:
        """Give up on a reload still importing: say where it is stuck, serve the old code."""
        where = _stuck_at(thread, self.root)
        _interrupt(thread)
        _put_back(self.root, saved)
        self.log.error(
            f"reload gave up after {self.timeout:g} s: {where or 'the project'} was still "
            "running at import (an endless loop, or slow work at module level?); still serving "
            "the previous code\n"
            "  fix: move slow work into a function the handler calls, then save again; "
            "qr dev --reload-timeout SECONDS allows longer imports"
        )

    def error_response(self, scope: Scope) -> Response | None:
        """The error page for this request while the project is broken, else ``None``."""
        if self.error is None:
            return None
        path: str = scope.get("path", "/")
        if self._broken and not any(p.match(path) for p, _ in self._broken):
            return None
        problems = [
            {"file": p.file, "line": p.line, "message": p.message, "hint": p.hint}
            for p in self.error.problems
        ]
        accept = next((v for k, v in scope.get("headers", ()) if k == b"accept"), b"")
        if b"text/html" in accept:
            items = "".join(
                f"<li><b>{html.escape(p.location)}</b>: {html.escape(p.message)}"
                f"<br><i>{html.escape(p.hint)}</i></li>"
                for p in self.error.problems
            )
            return HTMLResponse(
                f"<!doctype html><title>qr: project error</title><h1>The project has errors</h1>"
                f"<ul>{items}</ul><p>Fix the file and save: qr dev reloads it.</p>",
                500,
            )
        where = ", ".join(p.location for p in self.error.problems)
        return JSONResponse({"error": f"project error in {where}", "problems": problems}, 500)

    def _broken_routes(self, error: ProjectError) -> list[tuple[re.Pattern[str], str]]:
        """Path patterns of broken route files; empty means every route may be affected."""
        patterns: list[tuple[re.Pattern[str], str]] = []
        for problem in error.problems:
            if not problem.file.startswith(API_DIR + "/") or "/_" in problem.file:
                return []
            known = next((r for r in self.manifest.routes if r.file == problem.file), None)
            pattern = known.pattern if known else _route_pattern(problem.file)
            patterns.append((compile_path(pattern)[0], problem.file))
        return patterns


def _route_pattern(relative: str) -> str:
    """``api/posts/[id].py`` -> ``/posts/{id}`` (only to match requests to a new broken file)."""
    parts = relative.removesuffix(".py").split("/")[1:]
    if parts and parts[-1] == "index":
        parts = parts[:-1]
    segments = []
    for part in parts:
        catch_all = re.fullmatch(r"\[\.\.\.(\w+)\]", part)
        param = re.fullmatch(r"\[(\w+)\]", part)
        if catch_all:
            segments.append(f"{{{catch_all.group(1)}:path}}")
        elif param:
            segments.append(f"{{{param.group(1)}}}")
        else:
            segments.append(part)
    return "/" + "/".join(segments)


def _take_project_modules(root: Path, *, handlers: bool = True) -> dict[str, ModuleType]:
    """Remove and return the modules loaded from the project (handlers and ``lib/`` alike);
    with ``handlers=False`` the handler modules are returned but left in ``sys.modules``."""
    taken: dict[str, ModuleType] = {}
    prefix = str(root) + "/"
    skip = tuple(f"{prefix}{d}/" for d in _IGNORED_DIRS)
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None) or ""
        handler = name.startswith(MODULE_PREFIX)
        if handler or (file.startswith(prefix) and not file.startswith(skip)):
            taken[name] = module
            if handlers or not handler:
                sys.modules.pop(name, None)
    return taken


def _put_back(root: Path, saved: dict[str, ModuleType]) -> None:
    """Undo a reload: the project's modules are the ones ``saved`` again."""
    _take_project_modules(root)
    sys.modules.update(saved)


def _stuck_at(thread: threading.Thread, root: Path) -> str | None:
    """``file:line`` of the innermost frame of ``thread`` that is in the project."""
    frame: FrameType | None = sys._current_frames().get(thread.ident or 0)
    while frame is not None:
        try:
            relative = Path(frame.f_code.co_filename).resolve().relative_to(root)
        except ValueError:
            frame = frame.f_back
            continue
        if relative.parts and relative.parts[0] not in _IGNORED_DIRS:
            return f"{relative.as_posix()}:{frame.f_lineno}"
        frame = frame.f_back
    return None


def _interrupt(thread: threading.Thread) -> None:
    """Raise ``ReloadTimeout`` in ``thread`` at its next Python instruction (CPython only)."""
    if thread.ident is not None and thread.is_alive():
        ctypes.pythonapi.PyThreadState_SetAsyncExc(
            ctypes.c_ulong(thread.ident), ctypes.py_object(ReloadTimeout)
        )


def watch_filter(root: Path) -> Callable[[Change, str], bool]:
    """Python files, ``qr.yaml``, ``.env`` and folders made or removed; not tests, caches,
    virtualenvs or ``.qr/``."""
    root = root.resolve()

    def accept(change: Change, path: str) -> bool:
        try:
            parts = Path(path).resolve().relative_to(root).parts
        except ValueError:
            return False
        if not parts or any(p in _IGNORED_DIRS for p in parts[:-1]):
            return False
        name = parts[-1]
        if len(parts) == 1 and name in (CONFIG_FILE, ENV_FILE):
            return True
        if name.endswith(".py") and not name.startswith("."):
            return True
        # A folder made or removed: the reload rescans the whole tree. The watcher starts watching
        # a new folder only after it sees it, so a file written into it at once can go unseen
        # (seen under load); moving a folder in or out gives only the folder's event.
        if name in _IGNORED_DIRS or name.startswith("."):
            return False
        if change == Change.added:
            return Path(path).is_dir()
        return change == Change.deleted and "." not in name

    return accept


async def watch(
    live: LiveProject,
    env: DevEnvironment,
    stop: asyncio.Event,
    *,
    step_ms: int = 20,
) -> None:
    """Reload ``live`` after every batch of saved files until ``stop`` is set."""
    async for changes in awatch(
        live.root,
        watch_filter=watch_filter(live.root),
        stop_event=stop,
        step=step_ms,
        debounce=400,
    ):
        names = {Path(p).name for _, p in changes}
        if ENV_FILE in names:
            changed = env.apply()
            if changed:
                live.log.info(f".env changed: {', '.join(sorted(changed))}")
        try:
            await live.reload_in_thread()
        except Exception as exc:  # a bug in building the app must not stop the watcher
            live.log.error(f"reload failed: {type(exc).__name__}: {exc}")

"""Handler tree -> manifest.

The manifest is the one description of a project that every consumer reads: the local platform
(``qr dev``), the Lambda entry point and the Terraform model. It is pure data (frozen dataclasses,
``to_dict()`` for JSON); the handler callables stay in the modules it names (``Route.module``),
which ``scan`` has loaded into ``sys.modules``.

Stages of ``scan(root)``:

1. parse ``qr.yaml`` (``qr.runtime.config``);
2. walk ``api/``, ``queues/``, ``socket/``, ``schedules/``, skipping names that start with ``_``
   or ``.``; map each file to its route / queue / socket action / schedule name;
3. load every handler and ``_middleware.py`` file by path (``qr.runtime._loader``);
4. read what each module exports (method functions, ``handler``, ``config``, ``schedule``,
   middleware hooks) and validate it, including the parameter names each function asks for;
5. resolve middleware inheritance and rank routes (literal > parameter > catch-all);
6. check that every chain (``queues["x"].after(...)``, ``job.then("x", ...)`` with a literal
   name) targets a queue of the project.

Every problem from every stage is collected and raised together as one ``ProjectError``.
"""

from __future__ import annotations

import ast
import keyword
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from qr.runtime import _loader, chains, payloads
from qr.runtime._suggest import did_you_mean
from qr.runtime.config import ProjectConfig, load_config
from qr.runtime.errors import Problem, ProjectError
from qr.runtime.handler_config import (
    HTTP_HOOKS,
    HTTP_INJECTABLES,
    HTTP_METHODS,
    HTTP_TIMEOUT_MAX,
    JOB_TIMEOUT_MAX,
    QUEUE_INJECTABLES,
    SCHEDULE_INJECTABLES,
    SOCKET_HOOKS,
    SOCKET_INJECTABLES,
    SOCKET_TIMEOUT_MAX,
    Backoff,
    Cors,
    JobConfig,
    QueueConfig,
    RouteConfig,
    _HandlerChecks,
)
from qr.runtime.schedules import ScheduleError, ScheduleExpression, parse_schedule

API_DIR, QUEUES_DIR, SOCKET_DIR, SCHEDULES_DIR = "api", "queues", "socket", "schedules"
RESERVED_PREFIX = "/_qr/"
"""Paths the dev server keeps for itself (dashboard, control endpoint): no route may use them."""
MIDDLEWARE_FILE = "_middleware.py"

# Module-level function name -> HTTP method it serves.
METHOD_FUNCTIONS: Mapping[str, str] = {
    "get": "GET",
    "post": "POST",
    "put": "PUT",
    "patch": "PATCH",
    "delete": "DELETE",
    "del_": "DELETE",
    "head": "HEAD",
    "options": "OPTIONS",
}
# What a bare ``handler`` serves without config["methods"] (OPTIONS stays with CORS).
_HANDLER_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")

QUEUE_NAME_RE = re.compile(r"^[a-z0-9_-]{1,40}(\.fifo)?$")
SCHEDULE_NAME_RE = re.compile(r"^[a-z0-9_-]{1,40}$")
ACTION_RE = re.compile(r"^[a-z0-9_-]{1,40}$")
PARAM_RE = re.compile(r"^\[(\.\.\.)?([^\[\]]*)\]$")


@dataclass(frozen=True)
class Route:
    file: str
    """Relative to the project root: ``api/bookmarks/[id].py``."""
    module: str
    path: str
    """The route as files spell it: ``/bookmarks/[id]`` (what ``url()`` takes)."""
    pattern: str
    """Starlette path syntax: ``/bookmarks/{id}``, catch-all ``/files/{path:path}``."""
    params: tuple[str, ...]
    catch_all: str | None
    methods: tuple[str, ...]
    """Methods served (``HEAD`` whenever ``GET`` is; ``OPTIONS`` is answered by CORS)."""
    functions: Mapping[str, str]
    """HTTP method -> function name in the module (``"DELETE": "del_"``, or ``"handler"``)."""
    middleware: Mapping[str, str | None]
    """Hook -> file that defines it; ``None`` when turned off with ``hook = None``."""
    config: RouteConfig
    line: int = 1

    @property
    def rank(self) -> tuple[tuple[int, str], ...]:
        """Sort key: literal segments before parameters before catch-alls, segment by segment."""
        key: list[tuple[int, str]] = []
        for segment in self.path.strip("/").split("/"):
            match = PARAM_RE.match(segment)
            if not match:
                key.append((0, segment))
            else:
                key.append((2 if match.group(1) else 1, ""))
        return (*key, (3, ""))


@dataclass(frozen=True)
class Queue:
    name: str
    file: str
    module: str
    fifo: bool
    config: QueueConfig
    payload: payloads.PayloadSchema | None = None
    """The handler's payload model (``def handler(payload: Order)``), ``None`` when untyped."""


@dataclass(frozen=True)
class SocketHandler:
    action: str
    """``$default`` for ``socket/index.py``, else the ``action`` value it receives."""
    file: str
    module: str
    config: JobConfig


@dataclass(frozen=True)
class Socket:
    handlers: tuple[SocketHandler, ...]
    middleware: Mapping[str, str | None]

    def handler(self, action: str | None) -> SocketHandler | None:
        by_action = {h.action: h for h in self.handlers}
        return by_action.get(action or "$default") or by_action.get("$default")


@dataclass(frozen=True)
class Schedule:
    name: str
    file: str
    module: str
    expression: ScheduleExpression
    config: JobConfig


@dataclass(frozen=True)
class Manifest:
    root: Path
    config: ProjectConfig
    routes: tuple[Route, ...]
    queues: tuple[Queue, ...]
    socket: Socket | None
    schedules: tuple[Schedule, ...]

    def queue(self, name: str) -> Queue | None:
        return next((q for q in self.queues if q.name == name), None)

    @property
    def status_queues(self) -> frozenset[str]:
        """Queues whose jobs ``GET /_jobs/{id}`` shows (``config["status_route"]``)."""
        return frozenset(q.name for q in self.queues if q.config.status_route)

    def schedule(self, name: str) -> Schedule | None:
        return next((s for s in self.schedules if s.name == name), None)

    @property
    def files(self) -> tuple[str, ...]:
        """Every handler file (not middleware) in the manifest."""
        names = [r.file for r in self.routes] + [q.file for q in self.queues]
        names += [s.file for s in self.schedules]
        if self.socket:
            names += [h.file for h in self.socket.handlers]
        return tuple(names)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data (what ``qr routes --json`` prints and the bundle carries)."""
        data = asdict(self)
        data["root"] = str(self.root)
        for schedule, raw in zip(self.schedules, data["schedules"], strict=True):
            raw["expression"] = schedule.expression.normalized
            raw["aws_expression"] = _aws_or_none(schedule.expression)
        result: dict[str, Any] = _jsonable(data)
        return result


def queue_names(root: Path | str) -> tuple[str, ...]:
    """The project's queue names from the files in ``queues/`` alone, importing nothing.

    For tools that only need to know which queues exist (``qr dev queue``, ``qr queues``): a
    broken file elsewhere in the project must not stop them.
    """
    scanner = _Scanner(Path(root))
    names = (
        Path(relative).name.removesuffix(".py")
        for relative in scanner.files(QUEUES_DIR)
        if relative.count("/") == 1  # files in sub-folders are no queues (scan reports them)
    )
    return tuple(sorted(n for n in names if QUEUE_NAME_RE.match(n)))


def scan(root: Path | str) -> Manifest:
    """Scan and load the project at ``root``; raise ``ProjectError`` listing every problem."""
    return _Scanner(Path(root)).scan()


class _Scanner(_HandlerChecks):
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.problems: list[Problem] = []
        self.modules: dict[str, ModuleType | None] = {}
        self.sources: dict[str, ast.Module | None] = {}
        self.checked_hooks: set[str] = set()

    def fail(self, file: str, line: int | None, message: str, hint: str) -> None:
        self.problems.append(Problem(file, line, message, hint))

    def scan(self) -> Manifest:
        if not self.root.is_dir():
            raise ProjectError(
                [
                    Problem(
                        str(self.root),
                        None,
                        "is not a directory",
                        "run qr inside a project folder (qr init makes one)",
                    )
                ]
            )
        try:
            config = load_config(self.root)
        except ProjectError as exc:
            self.problems.extend(exc.problems)
            config = ProjectConfig(name="app")
        _loader.use_root(self.root)
        routes = self.routes()
        queues = self.queues()
        routes = self.with_status_route(routes, queues)
        socket = self.socket()
        schedules = self.schedules()
        self.chain_targets({q.name for q in queues})
        if self.problems:
            raise ProjectError(self.problems)
        return Manifest(self.root, config, routes, queues, socket, schedules)

    # -- files and modules ---------------------------------------------------------------

    def files(self, folder: str) -> Iterator[str]:
        """Handler files under ``folder`` (relative paths), skipping ``_x`` and ``.x`` names."""
        base = self.root / folder
        if not base.is_dir():
            return
        for path in sorted(base.rglob("*.py")):
            if not path.is_file():
                continue  # a folder named like a handler (api/v1.py/) holds handlers, is none
            relative = path.relative_to(self.root)
            parts = relative.parts[1:]
            if any(p.startswith((".", "_")) for p in parts) or "__pycache__" in parts:
                continue
            yield relative.as_posix()

    def load(self, relative: str) -> ModuleType | None:
        if relative not in self.modules:
            try:
                self.modules[relative] = _loader.load_module(self.root, relative)
            except _loader.LoadError as exc:
                self.problems.append(exc.problem)
                self.modules[relative] = None
        return self.modules[relative]

    def line_of(self, relative: str, name: str) -> int | None:
        """Line where module-level ``name`` is assigned or defined (for config errors)."""
        if relative not in self.sources:
            try:
                text = (self.root / relative).read_text(encoding="utf-8")
                self.sources[relative] = ast.parse(text)
            except (SyntaxError, UnicodeDecodeError, OSError):
                self.sources[relative] = None
        tree = self.sources[relative]
        if tree is None:
            return None
        for node in tree.body:
            targets: list[ast.expr] = []
            if isinstance(node, ast.Assign):
                targets = node.targets
            elif isinstance(node, ast.AnnAssign):
                targets = [node.target]
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name:
                return node.lineno
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                return node.lineno
        return None

    # -- api/ ----------------------------------------------------------------------------

    def routes(self) -> tuple[Route, ...]:
        routes: list[Route] = []
        seen: dict[str, str] = {}
        reserved = self.root / API_DIR / RESERVED_PREFIX.strip("/")
        for found in sorted(reserved.rglob("*.py")) if reserved.is_dir() else ():
            self.fail(
                found.relative_to(self.root).as_posix(),
                None,
                f"{RESERVED_PREFIX} is reserved for the qr dev dashboard and control endpoint: "
                "no route can live under it",
                f"move the file out of {API_DIR}/{RESERVED_PREFIX.strip('/')}/ "
                "(e.g. to api/admin/)",
            )
        for relative in self.files(API_DIR):
            route_path = self.route_path(relative)
            if route_path is None:
                continue
            path, params, catch_all = route_path
            shape = re.sub(r"\[(\.\.\.)?[^\]]*\]", lambda m: "[...]" if m.group(1) else "[]", path)
            if shape in seen:
                other = seen[shape]
                self.fail(
                    relative,
                    None,
                    f"maps to the same route {path} as {other}",
                    f"remove or rename one of {other} and {relative}",
                )
                continue
            seen[shape] = relative
            module = self.load(relative)
            if module is None:
                continue
            route = self.route(relative, module, path, params, catch_all)
            if route is not None:
                routes.append(route)
        return tuple(sorted(routes, key=lambda r: r.rank))

    def with_status_route(
        self, routes: tuple[Route, ...], queues: tuple[Queue, ...]
    ) -> tuple[Route, ...]:
        """Add ``GET /_jobs/[job_id]`` when a queue sets ``config["status_route"]``."""
        from qr.runtime import status_route

        opened = frozenset(q.name for q in queues if q.config.status_route)
        if not opened:
            return routes
        relative = status_route.FILE
        module = status_route.module(opened)
        sys.modules[_loader.module_name(self.root, relative)] = module
        middleware = self.middleware(relative, module, API_DIR, HTTP_HOOKS)
        route = Route(
            file=relative,
            module=_loader.module_name(self.root, relative),
            path=status_route.PATH,
            pattern="/_jobs/{job_id}",
            params=("job_id",),
            catch_all=None,
            methods=("GET", "HEAD"),
            functions={"GET": "get"},
            middleware=middleware,
            config=RouteConfig(cache="no-store"),
        )
        return tuple(sorted((*routes, route), key=lambda r: r.rank))

    def route_path(self, relative: str) -> tuple[str, tuple[str, ...], str | None] | None:
        """``api/bookmarks/[id].py`` -> ``("/bookmarks/[id]", ("id",), None)``."""
        parts = relative.removesuffix(".py").split("/")[1:]
        if parts[-1] == "index":
            parts = parts[:-1]
        params: list[str] = []
        catch_all: str | None = None
        ok = True
        for position, segment in enumerate(parts):
            match = PARAM_RE.match(segment)
            if match is None:
                if "[" in segment or "]" in segment:
                    self.fail(
                        relative,
                        None,
                        f"segment {segment!r} mixes text and a [parameter]",
                        "a parameter must be a whole path segment, e.g. api/posts/[slug].py",
                    )
                    ok = False
                continue
            name = match.group(2)
            if not name.isidentifier() or keyword.iskeyword(name):
                self.fail(
                    relative,
                    None,
                    f"path parameter {name!r} is not a valid Python identifier",
                    "name it with letters, digits and '_' (not starting with a digit), e.g. [id] or [user_id]",
                )
                ok = False
            elif name in HTTP_INJECTABLES:
                self.fail(
                    relative,
                    None,
                    f"path parameter {name!r} clashes with the injected name {name!r}",
                    f"rename it, e.g. [{name}_id]",
                )
                ok = False
            elif name in params:
                self.fail(
                    relative,
                    None,
                    f"path parameter {name!r} appears twice",
                    "give each parameter its own name",
                )
                ok = False
            if match.group(1):
                if position != len(parts) - 1:
                    self.fail(
                        relative,
                        None,
                        f"catch-all [...{name}] must be the last segment of the route",
                        f"move it to the end, e.g. api/.../[...{name}].py",
                    )
                    ok = False
                catch_all = name
            params.append(name)
        if not ok:
            return None
        return "/" + "/".join(parts), tuple(params), catch_all

    def route(
        self,
        relative: str,
        module: ModuleType,
        path: str,
        params: tuple[str, ...],
        catch_all: str | None,
    ) -> Route | None:
        problems_before = len(self.problems)
        functions: dict[str, str] = {}
        for function_name, method in METHOD_FUNCTIONS.items():
            value = getattr(module, function_name, None)
            if value is None:
                continue
            if not callable(value):
                self.fail(
                    relative,
                    self.line_of(relative, function_name),
                    f"{function_name} must be a function",
                    f"define it with def (or async def): def {function_name}(request): ...",
                )
                continue
            if method in functions:
                self.fail(
                    relative,
                    self.line_of(relative, function_name),
                    f"both {functions[method]} and {function_name} handle {method}",
                    "keep one of them",
                )
                continue
            functions[method] = function_name
        handler = getattr(module, "handler", None)
        config = self.route_config(relative, module, has_handler=handler is not None)
        if handler is not None:
            if functions:
                self.fail(
                    relative,
                    self.line_of(relative, "handler"),
                    f"defines both handler and method functions ({', '.join(sorted(functions.values()))})",
                    "use either one handler (with config['methods']) or functions named after methods",
                )
            elif not callable(handler):
                self.fail(
                    relative,
                    self.line_of(relative, "handler"),
                    "handler must be a function",
                    "define it with def (or async def): def handler(request): ...",
                )
            else:
                methods = config.methods if config and config.methods else _HANDLER_METHODS
                functions = dict.fromkeys(methods, "handler")
        if not functions and handler is None:
            self.fail(
                relative,
                None,
                "exports no request handler",
                "define a function named after a method (get, post, put, patch, delete, head, options) "
                "or a handler with config['methods']",
            )
        allowed = HTTP_INJECTABLES | set(params)
        for function_name in sorted(set(functions.values())):
            self.check_signature(relative, module, function_name, allowed, "route handler")
        middleware = self.middleware(relative, module, API_DIR, HTTP_HOOKS)
        if len(self.problems) > problems_before or config is None:
            return None
        served = set(functions)
        if "GET" in served:
            served.add("HEAD")
        pattern = "/" + "/".join(
            self.pattern_segment(segment) for segment in path.strip("/").split("/") if segment
        )
        line = min((getattr(module, f).__code__.co_firstlineno for f in set(functions.values())
                    if hasattr(getattr(module, f), "__code__")), default=1)  # fmt: skip
        return Route(
            file=relative,
            module=_loader.module_name(self.root, relative),
            path=path,
            pattern=pattern,
            params=params,
            catch_all=catch_all,
            methods=tuple(m for m in HTTP_METHODS if m in served),
            functions=dict(sorted(functions.items())),
            middleware=middleware,
            config=config,
            line=line,
        )

    @staticmethod
    def pattern_segment(segment: str) -> str:
        match = PARAM_RE.match(segment)
        if match is None:
            return segment
        return f"{{{match.group(2)}:path}}" if match.group(1) else f"{{{match.group(2)}}}"

    def middleware(
        self, relative: str, module: ModuleType, top: str, hooks: Mapping[str, frozenset[str]]
    ) -> dict[str, str | None]:
        """Hook -> defining file, searching the module, then ``_middleware.py`` up to ``top``."""
        chain: list[tuple[str, ModuleType]] = [(relative, module)]
        folder = Path(relative).parent
        while True:
            candidate = (folder / MIDDLEWARE_FILE).as_posix()
            if (self.root / candidate).is_file():
                loaded = self.load(candidate)
                if loaded is not None:
                    chain.append((candidate, loaded))
            if folder.as_posix() == top or folder == Path():
                break
            folder = folder.parent
        resolved: dict[str, str | None] = {}
        for hook, allowed in hooks.items():
            for file, candidate_module in chain:
                if hook not in vars(candidate_module):
                    continue
                value = vars(candidate_module)[hook]
                if value is None:
                    resolved[hook] = None
                elif callable(value):
                    resolved[hook] = file
                    if file not in self.checked_hooks:
                        self.check_signature(
                            file, candidate_module, hook, allowed, "middleware hook"
                        )
                else:
                    self.fail(
                        file,
                        self.line_of(file, hook),
                        f"{hook} must be a function or None",
                        f"define it with def (or async def), or set {hook} = None to turn an "
                        "inherited one off",
                    )
                break
        self.checked_hooks.update(f for f, _ in chain if f.endswith(MIDDLEWARE_FILE))
        return {hook: resolved[hook] for hook in hooks if hook in resolved}

    # -- queues/, socket/, schedules/: one flat file per handler -----------------------------

    def flat_handlers(
        self,
        folder: str,
        what: str,
        valid: Callable[[str], bool],
        name_hint: str,
        injectables: frozenset[str],
        example: str,
    ) -> Iterator[tuple[str, str, ModuleType]]:
        """``(relative, name, module)`` of each loadable handler file directly in ``folder``.

        Files in sub-folders and invalid names are reported; a handler whose ``handler`` function
        is missing or asks for unknown names is reported and skipped.
        """
        for relative in self.files(folder):
            if relative.count("/") > 1:
                self.fail(
                    relative,
                    None,
                    f"{what}s are flat files in {folder}/",
                    f"move it to {folder}/{Path(relative).name}",
                )
                continue
            name = Path(relative).name.removesuffix(".py")
            if not valid(name):
                self.fail(relative, None, f"{what} name {name!r} is not valid", name_hint)
                continue
            module = self.load(relative)
            if module is None:
                continue
            before = len(self.problems)
            self.require_handler(relative, module, injectables, f"{what} handler", example)
            if len(self.problems) == before:
                yield relative, name, module

    def queues(self) -> tuple[Queue, ...]:
        queues: list[Queue] = []
        for relative, name, module in self.flat_handlers(
            QUEUES_DIR,
            "queue",
            lambda name: QUEUE_NAME_RE.match(name) is not None,
            "use 1-40 characters of a-z, 0-9, '_' and '-', plus '.fifo' for a FIFO queue "
            "(e.g. queues/screenshots.py, queues/update_profile.fifo.py)",
            QUEUE_INJECTABLES,
            "def handler(payload, job): ...",
        ):
            fifo = name.endswith(".fifo")
            config = self.queue_config(relative, module, fifo=fifo)
            payload, ok = self.queue_payload(relative, module)
            if config is not None and ok:
                module_name = _loader.module_name(self.root, relative)
                payloads.register(name, module_name)
                queues.append(Queue(name, relative, module_name, fifo, config, payload))
        return tuple(queues)

    def chain_targets(self, names: set[str]) -> None:
        """``queues["x"].after(...)`` / ``job.then("x", ...)`` must name a queue of the project."""
        for relative, module in list(self.modules.items()):
            if module is None:
                continue
            self.line_of(relative, "")  # parses the file once
            tree = self.sources.get(relative)
            if tree is None:
                continue
            for line, name in chains.targets(tree):
                if name not in names:
                    listing = ", ".join(sorted(names)) or "none"
                    self.fail(
                        relative,
                        line,
                        f"chains to the queue {name!r}, which does not exist."
                        f"{did_you_mean(name, names)}",
                        f"create queues/{name}.py, or chain to a known queue: {listing}",
                    )

    def queue_payload(
        self, relative: str, module: ModuleType
    ) -> tuple[payloads.PayloadSchema | None, bool]:
        """The payload model of a queue handler, and whether its annotation is usable."""
        handler = module.handler
        try:
            model = payloads.check(handler)
        except payloads.ModelError as exc:
            line = getattr(getattr(handler, "__code__", None), "co_firstlineno", None)
            self.fail(
                relative,
                line,
                str(exc),
                "annotate payload with a pydantic model (class Order(BaseModel)) or a "
                "@dataclass, or leave it unannotated for plain JSON data",
            )
            return None, False
        return (model.describe() if model is not None else None), True

    def socket(self) -> Socket | None:
        base = self.root / SOCKET_DIR
        if not base.is_dir():
            return None
        if (base / "__init__.py").exists():
            self.fail(
                f"{SOCKET_DIR}/__init__.py",
                None,
                "socket/ must not be a Python package: with the project root on sys.path it would "
                "shadow the standard library's socket module",
                "delete socket/__init__.py (qr loads socket/ handlers by path)",
            )
            return None
        handlers: list[SocketHandler] = []
        for relative, name, module in self.flat_handlers(
            SOCKET_DIR,
            "socket action",
            lambda name: name == "index" or ACTION_RE.match(name) is not None,
            "use 1-40 characters of a-z, 0-9, '_' and '-'",
            SOCKET_INJECTABLES,
            "def handler(data, connection_id, user): ...",
        ):
            config = self.job_config(relative, module, socket=True)
            if config is not None:
                action = "$default" if name == "index" else name
                handlers.append(
                    SocketHandler(
                        action, relative, _loader.module_name(self.root, relative), config
                    )
                )
        has_middleware = (base / MIDDLEWARE_FILE).exists()
        if not handlers and not has_middleware:
            return None
        if handlers and not (base / "index.py").exists():
            self.fail(
                f"{SOCKET_DIR}/index.py",
                None,
                "socket/ has action handlers but no socket/index.py for other messages",
                "add socket/index.py with def handler(data, connection_id, user): ...",
            )
        middleware: dict[str, str | None] = {}
        if has_middleware and self.load(f"{SOCKET_DIR}/{MIDDLEWARE_FILE}") is not None:
            anchor = f"{SOCKET_DIR}/index.py"
            middleware = self.middleware(anchor, ModuleType("empty"), SOCKET_DIR, SOCKET_HOOKS)
        return Socket(tuple(sorted(handlers, key=lambda h: h.action)), middleware)

    def schedules(self) -> tuple[Schedule, ...]:
        schedules: list[Schedule] = []
        for relative, name, module in self.flat_handlers(
            SCHEDULES_DIR,
            "schedule",
            lambda name: SCHEDULE_NAME_RE.match(name) is not None,
            "use 1-40 characters of a-z, 0-9, '_' and '-'",
            SCHEDULE_INJECTABLES,
            "def handler(job): ...",
        ):
            expression = self.schedule_expression(relative, module)
            config = self.job_config(relative, module)
            if expression is not None and config is not None:
                module_name = _loader.module_name(self.root, relative)
                schedules.append(Schedule(name, relative, module_name, expression, config))
        return tuple(schedules)

    def schedule_expression(self, relative: str, module: ModuleType) -> ScheduleExpression | None:
        if not hasattr(module, "schedule"):
            self.fail(
                relative,
                None,
                "has no schedule",
                'add a module-level schedule, e.g. schedule = "0 9 * * 1-5" (cron, UTC), '
                'schedule = "rate(15 minutes)", "hourly", "daily", "weekly" or "never"',
            )
            return None
        try:
            expression = parse_schedule(module.schedule)
            expression.aws_expression()
        except ScheduleError as exc:
            self.fail(
                relative,
                self.line_of(relative, "schedule"),
                str(exc),
                "see docs/schedules.md for the accepted forms",
            )
            return None
        return expression


def _aws_or_none(expression: ScheduleExpression) -> str | None:
    try:
        return expression.aws_expression()
    except ScheduleError:
        return None


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


__all__ = [
    "HTTP_HOOKS",
    "HTTP_INJECTABLES",
    "HTTP_METHODS",
    "HTTP_TIMEOUT_MAX",
    "JOB_TIMEOUT_MAX",
    "QUEUE_INJECTABLES",
    "SCHEDULE_INJECTABLES",
    "SOCKET_HOOKS",
    "SOCKET_INJECTABLES",
    "SOCKET_TIMEOUT_MAX",
    "Backoff",
    "Cors",
    "JobConfig",
    "Manifest",
    "Queue",
    "QueueConfig",
    "Route",
    "RouteConfig",
    "Schedule",
    "Socket",
    "SocketHandler",
    "scan",
]

"""``GET /_jobs/{job_id}``: a job's state as JSON, served when a queue sets ``config["status_route"]``.

The manifest adds this route (as if ``api/_jobs/[job_id].py`` existed, so ``api/_middleware.py``
authenticates it like any route at the top of ``api/``) when at least one queue opts in;
``queue.http`` then answers its 202 with ``Location: /_jobs/{id}``. The route shows only jobs of
the queues that opted in, and only to the user who pushed the job (any caller when the job has
no user). Everything else is a 404/401/403 whose body says why.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

FILE = "api/_jobs/[job_id].py"
PATH = "/_jobs/[job_id]"


def location(job_id: str) -> str:
    return f"/_jobs/{job_id}"


def module(queues: frozenset[str]) -> ModuleType:
    """The route's module: ``get(job_id, user)`` over the queues that opted in."""
    built = ModuleType("qr.runtime.status_route:get", __doc__)
    built.get = _handler(queues)  # type: ignore[attr-defined]
    return built


def _handler(queues: frozenset[str]) -> Callable[..., Any]:
    def get(job_id: str, user: Mapping[str, Any] | None) -> Any:
        from qr.runtime import jobs
        from qr.runtime.errors import HTTPError
        from qr.runtime.http.responses import Response

        state = jobs.get(job_id)
        if state is None or state.queue not in queues:
            raise HTTPError(
                404,
                f"no job {job_id!r}: the id is unknown, its state expired (config['keep_results']), "
                "it has not been picked up yet (AWS keeps state from a job's first run), or its "
                "queue has no status route (config['status_route'])",
            )
        if state.user is not None:
            caller = None if user is None else user.get("id")
            if caller is None:
                raise HTTPError(401, "this job belongs to a user: authenticate as that user")
            if str(caller) != state.user:
                raise HTTPError(403, "this job belongs to another user")
        return Response.json(state.to_dict(), headers={"cache-control": "no-store"})

    get.__qualname__ = "status_route.get"
    return get

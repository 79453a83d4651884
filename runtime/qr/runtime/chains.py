"""Chains: the next job is pushed only once this one succeeded, exactly once per step.

A queue handler names its next steps in two ways (both may be used together):

* it returns ``queues["next"].after(payload)`` (a ``Step``), or a list of them (fan-out);
* it calls ``job.then("next", payload)`` (or ``job.then(queues["next"], payload)``).

A ``Step`` is validated and encoded when it is made (``Queue.prepare``, so a typed payload or an
unknown queue fails inside the handler, which then fails its attempt), and sent only after the
handler returned. ``run_queue_job`` hands the steps to the platform's ``StepPort``, keyed by the
job id and the step's index: a job that is delivered again (its ack was lost, its worker died)
never pushes a step twice.

* Locally (``Engine.push_steps``) the step records and the pushes share one transaction.
* On AWS (``SqsQueues.send_steps``) a FIFO step is sent with the deduplication id
  ``<job id>-<index>`` (SQS drops a repeat within its 5-minute window); a standard step is
  recorded in the flow table first (``pending``, a conditional write), sent, then marked
  ``sent``; a repeat finds ``sent`` and skips, or ``pending`` (the first attempt died between
  the two writes) and sends again: at least once, never twice when nothing crashed.

``targets`` finds ``queues["x"].after(...)`` and ``job.then("x", ...)`` with literal names in a
handler's source, so a chain to an unknown queue is a load-time error.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from qr.runtime.ports import OutgoingJob


@dataclass(frozen=True)
class Step:
    """A job to push once the current one has succeeded (``queues[name].after(payload)``)."""

    job: OutgoingJob

    @property
    def queue(self) -> str:
        return self.job.queue


@runtime_checkable
class StepPort(Protocol):
    def send_steps(self, job_id: str, steps: Sequence[OutgoingJob]) -> list[str]:
        """Push each step once per (job id, index); returns their job ids (``""`` if unknown)."""
        ...


def split(result: Any) -> tuple[Any, list[Step]]:
    """A handler's return value -> ``(the result to keep, the steps it returned)``."""
    if isinstance(result, Step):
        return None, [result]
    if isinstance(result, list | tuple) and result and all(isinstance(s, Step) for s in result):
        return None, list(result)
    return result, []


def step_key(job_id: str, index: int) -> str:
    """The idempotency key of step ``index`` of job ``job_id`` (also a valid SQS dedupe id)."""
    return f"{job_id}-{index}"[-128:]


def targets(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """``(line, queue name)`` of every ``queues["x"].after(...)`` and ``job.then("x", ...)``."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        attribute = node.func
        if attribute.attr == "after":
            owner = attribute.value
            while isinstance(owner, ast.Call) and isinstance(owner.func, ast.Attribute):
                owner = owner.func.value  # queues["x"].group(g).after(...)
            if (
                isinstance(owner, ast.Subscript)
                and isinstance(owner.value, ast.Name)
                and owner.value.id == "queues"
                and isinstance(owner.slice, ast.Constant)
                and isinstance(owner.slice.value, str)
            ):
                yield node.lineno, owner.slice.value
        elif (
            attribute.attr == "then"
            and isinstance(attribute.value, ast.Name)
            and attribute.value.id == "job"
            and node.args
        ):
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                yield node.lineno, first.value

"""Typed queue payloads: ``def handler(payload: Order, job)`` with a pydantic model or a dataclass.

The annotation of a queue handler's ``payload`` parameter decides:

* no annotation, ``Any``, ``object``, a JSON type (``dict``, ``list``, ``str``, ``bytes``,
  numbers) or any non-class annotation (``dict[str, Any]``, unions): untyped, nothing changes;
* a pydantic model (a ``pydantic.BaseModel`` subclass) or a dataclass: a ``PayloadType``.
  ``queues[name].push(...)`` validates the payload (an instance of the model or plain data) and
  sends its JSON form; the consumer validates what it received and hands the handler an
  instance. A payload that fails there is not retried: the platform moves it to the
  dead-letter queue with the validation error (``PayloadError``);
* any other class: a load-time problem (``check``).

pydantic is optional. Dataclasses validate through ``pydantic.TypeAdapter`` when pydantic is
installed; without it a small validator (``_Plain``) checks that the data is an object with the
dataclass's fields (no missing required ones, no unknown ones), checks ``str``/``int``/``float``/
``bool``/``list``/``dict`` fields by type, builds nested dataclasses, and leaves every other
annotation unchecked. pydantic is never imported here: a pydantic model can only exist once its
user imported pydantic, so ``sys.modules`` tells whether to look.

The handler a queue name maps to is found through the module its file loaded as, which the
manifest scan registers (``register``), so pushes validate wherever the project's handlers are
loaded (``qr dev``, the test client, the Lambda bundle). With several projects in one process
(tests), the project scanned last decides, as it does for plain imports.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import sys
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["pydantic", "dataclass"]
_MAX_ERROR = 2000


class PayloadError(ValueError):
    """A payload that does not validate as its queue's model."""

    def __init__(self, model: str, detail: str) -> None:
        super().__init__(f"the payload does not validate as {model}: {detail}")
        self.model = model
        self.detail = detail


class ModelError(TypeError):
    """The ``payload`` annotation is neither untyped nor a pydantic model or dataclass."""


@dataclass(frozen=True)
class PayloadSchema:
    """What the manifest records of a typed queue (``qr routes --json``)."""

    model: str
    """``module.QualName`` of the model."""
    kind: Kind
    schema: Mapping[str, Any]
    """JSON Schema of the payload."""


@dataclass(frozen=True, eq=False)
class PayloadType:
    """A queue's payload model and how to validate, dump and describe it."""

    model: type
    kind: Kind

    @property
    def name(self) -> str:
        return self.model.__qualname__

    def validate(self, data: Any) -> Any:
        """An instance of the model from ``data`` (or ``data`` itself if it is one)."""
        if isinstance(data, self.model):
            return data
        try:
            if self.kind == "pydantic":
                return self.model.model_validate(data)  # type: ignore[attr-defined]
            adapter = _adapter(self.model)
            if adapter is not None:
                return adapter.validate_python(data)
            return _Plain(self.model).build(data, "")
        except PayloadError:
            raise
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            raise PayloadError(self.name, str(exc)[:_MAX_ERROR]) from None

    def dump(self, instance: Any) -> Any:
        """The JSON-ready form of an instance (what travels in the message body)."""
        return jsonable(instance)

    def schema(self) -> dict[str, Any]:
        if self.kind == "pydantic":
            result: dict[str, Any] = self.model.model_json_schema()  # type: ignore[attr-defined]
            return result
        adapter = _adapter(self.model)
        if adapter is not None:
            schema: dict[str, Any] = adapter.json_schema()
            return schema
        return _plain_schema(self.model)

    def describe(self) -> PayloadSchema:
        model = f"{self.model.__module__}.{self.model.__qualname__}"
        return PayloadSchema(model, self.kind, self.schema())


def check(handler: Callable[..., Any]) -> PayloadType | None:
    """The payload model ``handler`` asks for (``None``: untyped); ``ModelError`` if unusable."""
    try:
        parameter = inspect.signature(handler).parameters.get("payload")
    except (TypeError, ValueError):
        return None
    if parameter is None or parameter.annotation is inspect.Parameter.empty:
        return None
    annotation = parameter.annotation
    if isinstance(annotation, str):
        try:
            annotation = eval(annotation, getattr(handler, "__globals__", {}))
        except Exception as exc:
            raise ModelError(
                f"the payload annotation {parameter.annotation!r} cannot be resolved "
                f"({type(exc).__name__}: {exc})"
            ) from None
    if annotation is Any or not isinstance(annotation, type):
        return None  # dict[str, Any], unions, Literal...: left to the handler
    if _is_pydantic(annotation):
        return PayloadType(annotation, "pydantic")
    if dataclasses.is_dataclass(annotation):
        return PayloadType(annotation, "dataclass")
    if annotation.__module__ == "builtins":  # dict, str, bytes, object...
        return None
    raise ModelError(
        f"the payload annotation {annotation.__qualname__} is not a pydantic model or a dataclass"
    )


@functools.lru_cache(maxsize=1024)
def of_handler(handler: Callable[..., Any]) -> PayloadType | None:
    """``check`` cached per handler; an unusable annotation (reported at load) counts as untyped."""
    try:
        return check(handler)
    except ModelError:
        return None


_modules: dict[str, str] = {}
"""Queue name -> the module its handler loaded as (``register``)."""


def register(queue: str, module: str) -> None:
    """Record where queue ``queue``'s handler lives (the manifest scan calls it)."""
    _modules[queue] = module


def for_queue(name: str) -> PayloadType | None:
    """The payload model of queue ``name``'s handler, if its module is loaded."""
    module = sys.modules.get(_modules.get(name, ""))
    handler = getattr(module, "handler", None)
    return of_handler(handler) if callable(handler) else None


def jsonable(value: Any) -> Any:
    """A pydantic model or dataclass instance as JSON-ready data; anything else unchanged."""
    if _is_pydantic(type(value)):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        adapter = _adapter(type(value))
        if adapter is not None:
            return adapter.dump_python(value, mode="json")
        return dataclasses.asdict(value)
    return value


def _is_pydantic(cls: type) -> bool:
    pydantic = sys.modules.get("pydantic")
    base = getattr(pydantic, "BaseModel", None)
    return base is not None and isinstance(cls, type) and issubclass(cls, base)


@functools.lru_cache(maxsize=256)
def _adapter(cls: type) -> Any:
    """``pydantic.TypeAdapter(cls)`` when pydantic is installed, else ``None``."""
    try:
        import pydantic
    except ImportError:
        return None
    return pydantic.TypeAdapter(cls)


_PLAIN_TYPES: Mapping[type, tuple[type, ...]] = {
    str: (str,),
    int: (int,),
    float: (int, float),
    bool: (bool,),
    list: (list,),
    dict: (dict,),
}
_PLAIN_SCHEMA: Mapping[type, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    list: "array",
    dict: "object",
}


class _Plain:
    """Dataclass validation without pydantic (see the module docstring for what it checks)."""

    def __init__(self, cls: type) -> None:
        self.cls = cls
        self.hints = _hints(cls)

    def build(self, data: Any, path: str) -> Any:
        where = f" at {path}" if path else ""
        if not isinstance(data, dict):
            raise PayloadError(
                self.cls.__qualname__, f"expected an object{where}, got {type(data).__name__}"
            )
        fields = {f.name: f for f in dataclasses.fields(self.cls) if f.init}
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise PayloadError(self.cls.__qualname__, f"unknown field(s){where}: {unknown}")
        values: dict[str, Any] = {}
        for name, field in fields.items():
            key = f"{path}.{name}" if path else name
            if name not in data:
                if (
                    field.default is dataclasses.MISSING
                    and field.default_factory is dataclasses.MISSING
                ):
                    raise PayloadError(self.cls.__qualname__, f"missing field {key}")
                continue
            values[name] = self.value(self.hints.get(name, Any), data[name], key)
        return self.cls(**values)

    def value(self, annotation: Any, value: Any, path: str) -> Any:
        if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
            return _Plain(annotation).build(value, path)
        accepted = _PLAIN_TYPES.get(annotation) if isinstance(annotation, type) else None
        if accepted is not None:
            wrong_bool = isinstance(value, bool) and annotation is not bool
            if wrong_bool or not isinstance(value, accepted):
                raise PayloadError(
                    self.cls.__qualname__,
                    f"{path}: expected {annotation.__name__}, got {type(value).__name__}",
                )
        return value


def _plain_schema(cls: type) -> dict[str, Any]:
    hints = _hints(cls)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for field in dataclasses.fields(cls):
        annotation = hints.get(field.name, Any)
        if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
            properties[field.name] = _plain_schema(annotation)
        elif isinstance(annotation, type) and annotation in _PLAIN_SCHEMA:
            properties[field.name] = {"type": _PLAIN_SCHEMA[annotation]}
        else:
            properties[field.name] = {}
        if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            required.append(field.name)
    return {"title": cls.__qualname__, "type": "object", "properties": properties,
            "required": required}  # fmt: skip


def _hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except Exception:  # an annotation that does not resolve is simply not checked
        return {}

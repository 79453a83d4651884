"""Route lookup: a segment trie built from the manifest's routes.

Each node has literal children (a dict), at most one ``[param]`` child and at most one
``[...catch_all]`` route. Matching walks the request's segments trying, at every level, the
literal child first, then the parameter, then the catch-all, backtracking when a branch dead-ends.
That is exactly the manifest's ranking (literal > parameter > catch-all, segment by segment), and a
lookup costs O(depth) dict hits however many routes there are.

Request paths are split on the *raw* path (``scope["raw_path"]``) and each segment is
percent-decoded on its own, so ``%2F`` stays inside one segment (``/files/a%2Fb`` is the single
segment ``a/b``). Decoding is strict UTF-8; a segment that is, or decodes to, ``.`` or ``..`` is
refused (``BadPath`` -> 400) rather than normalised, and so is a segment whose encoded slashes or
backslashes make such a part (``..%2F..%2Fetc``): a handler joining a catch-all's values into a
file path can never climb out of its folder. A trailing slash is ignored (``/items/`` is ``/items``). A catch-all matches one or more
segments and its value is the list of them.

Routes without parameters are also kept in a dict keyed by their raw path (with and without the
trailing slash): ``Router.exact`` answers the most common request in one lookup, before any
splitting. It gives the same answer as the walk, which always prefers the all-literal branch.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Generic, NamedTuple, TypeVar
from urllib.parse import unquote_to_bytes

from qr.runtime.manifest import PARAM_RE, Route

T = TypeVar("T")


class BadPath(ValueError):
    """The request path cannot be a route (bad encoding, ``.``/``..`` segments)."""


@dataclass(frozen=True)
class _Leaf(Generic[T]):
    target: T
    names: tuple[str, ...]
    """Names of the ``[param]`` segments, in path order (the catch-all excluded)."""


@dataclass
class _Node(Generic[T]):
    literals: dict[str, _Node[T]] = field(default_factory=dict)
    param: _Node[T] | None = None
    catch_all: tuple[str, _Leaf[T]] | None = None
    leaf: _Leaf[T] | None = None


class Match(NamedTuple, Generic[T]):
    target: T
    params: dict[str, str | list[str]]


class Router(Generic[T]):
    """Maps request paths to the targets of the routes it was built from."""

    def __init__(self, entries: Iterable[tuple[Route, T]]) -> None:
        self._root: _Node[T] = _Node()
        self._exact: dict[bytes, T] = {}
        for route, target in entries:
            self._add(route, target)

    def exact(self, raw_path: bytes) -> T | None:
        """The target of the parameterless route whose path is exactly ``raw_path`` (no
        percent-encoding, no query), else ``None``: then ``match`` decides."""
        return self._exact.get(raw_path)

    def _add(self, route: Route, target: T) -> None:
        if not route.params and "%" not in route.path:
            path = route.path.encode("utf-8")
            for key in {path, path.rstrip(b"/") + b"/"}:
                self._exact.setdefault(key, target)  # the first route wins, as in the trie
        leaf = _Leaf(target, tuple(p for p in route.params if p != route.catch_all))
        node = self._root
        for segment in route_segments(route.path):
            match = PARAM_RE.match(segment)
            if match is None:
                node = node.literals.setdefault(segment, _Node())
            elif match.group(1):  # the manifest guarantees a catch-all is the last segment
                if node.catch_all is None:
                    node.catch_all = (match.group(2), leaf)
                return
            else:
                # one parameter node per position, whatever each route calls it: the names
                # come from the leaf that matches
                if node.param is None:
                    node.param = _Node()
                node = node.param
        if node.leaf is None:
            node.leaf = leaf

    def match(self, segments: Sequence[str]) -> Match[T] | None:
        values: list[str] = []
        found = self._walk(self._root, segments, 0, values)
        if found is None:
            return None
        leaf, rest = found
        params: dict[str, str | list[str]] = dict(zip(leaf.names, values, strict=True))
        if rest is not None:
            params[rest[0]] = list(segments[rest[1] :])
        return Match(leaf.target, params)

    def _walk(
        self, node: _Node[T], segments: Sequence[str], index: int, values: list[str]
    ) -> tuple[_Leaf[T], tuple[str, int] | None] | None:
        if index == len(segments):
            return None if node.leaf is None else (node.leaf, None)
        segment = segments[index]
        child = node.literals.get(segment)
        if child is not None:
            found = self._walk(child, segments, index + 1, values)
            if found is not None:
                return found
        if node.param is not None and segment:
            values.append(segment)
            found = self._walk(node.param, segments, index + 1, values)
            if found is not None:
                return found
            values.pop()
        if node.catch_all is not None:
            name, leaf = node.catch_all
            return leaf, (name, index)
        return None


def route_segments(path: str) -> list[str]:
    """``/bookmarks/[id]`` -> ``["bookmarks", "[id]"]``; ``/`` -> ``[]``."""
    return [segment for segment in path.strip("/").split("/") if segment]


def split_path(raw_path: bytes) -> list[str]:
    """Split a raw (still percent-encoded) request path into decoded segments."""
    text = raw_path.split(b"?", 1)[0]
    if b"%" not in text:  # the common case: nothing to decode segment by segment
        try:
            segments = text.decode("utf-8").split("/")
        except UnicodeDecodeError as exc:
            raise BadPath("the path is not valid UTF-8") from exc
        if segments[0] == "":
            del segments[0]
        if segments and segments[-1] == "":
            del segments[-1]
        if "." in segments or ".." in segments:
            raise BadPath(f"the path segment {'..' if '..' in segments else '.'!r} is not allowed")
        if b"\\" in text:
            for segment in segments:
                _check_parts(segment)
        return segments
    parts = text.split(b"/")
    if parts[0] == b"":
        del parts[0]
    if parts and parts[-1] == b"":
        del parts[-1]
    decoded: list[str] = []
    for part in parts:
        try:
            segment = unquote_to_bytes(part).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadPath("the path is not valid UTF-8 after percent-decoding") from exc
        _check_parts(segment)
        decoded.append(segment)
    return decoded


_DOTS = frozenset({".", ".."})


def _check_parts(segment: str) -> None:
    """Refuse a segment that is ``.``/``..`` or holds one between (encoded) slashes."""
    if segment in _DOTS:
        raise BadPath(f"the path segment {segment!r} is not allowed")
    if "/" in segment or "\\" in segment:
        parts = segment.replace("\\", "/").split("/")
        if not _DOTS.isdisjoint(parts):
            raise BadPath(f"the path segment {segment!r} holds a '.' or '..' part")

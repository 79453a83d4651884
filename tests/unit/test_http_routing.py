"""Route lookup and path splitting, without IO."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qr.runtime.http.routing import BadPath, Router, split_path
from qr.runtime.manifest import PARAM_RE, Route, RouteConfig


def route(path: str) -> Route:
    params: list[str] = []
    catch_all = None
    for segment in path.strip("/").split("/"):
        match = PARAM_RE.match(segment)
        if match:
            params.append(match.group(2))
            if match.group(1):
                catch_all = match.group(2)
    return Route(
        file=f"api{path}.py",
        module=f"qr_app:api{path}.py",
        path=path,
        pattern=path,
        params=tuple(params),
        catch_all=catch_all,
        methods=("GET", "HEAD"),
        functions={"GET": "get"},
        middleware={},
        config=RouteConfig(),
    )


def router(*paths: str) -> Router[str]:
    ranked = sorted((route(p) for p in paths), key=lambda r: r.rank)
    return Router((r, r.path) for r in ranked)


def lookup(r: Router[str], path: str) -> tuple[str, dict[str, str | list[str]]] | None:
    found = r.match(split_path(path.encode()))
    return None if found is None else (found.target, found.params)


def test_root_and_literals() -> None:
    r = router("/", "/about", "/a/b/c")
    assert lookup(r, "/") == ("/", {})
    assert lookup(r, "/about") == ("/about", {})
    assert lookup(r, "/a/b/c") == ("/a/b/c", {})
    assert lookup(r, "/a/b") is None
    assert lookup(r, "/nope") is None


def test_ranking_literal_then_param_then_catch_all() -> None:
    r = router("/[...rest]", "/[slug]", "/about", "/posts/[id]/edit", "/posts/new")
    assert lookup(r, "/about") == ("/about", {})
    assert lookup(r, "/x") == ("/[slug]", {"slug": "x"})
    assert lookup(r, "/x/y") == ("/[...rest]", {"rest": ["x", "y"]})
    assert lookup(r, "/posts/new") == ("/posts/new", {})
    assert lookup(r, "/posts/7/edit") == ("/posts/[id]/edit", {"id": "7"})


def test_backtracks_from_a_literal_dead_end() -> None:
    r = router("/users/me/settings", "/users/[id]/posts")
    assert lookup(r, "/users/me/posts") == ("/users/[id]/posts", {"id": "me"})
    assert lookup(r, "/users/me/settings") == ("/users/me/settings", {})


def test_parameters_at_the_same_position_keep_their_own_names() -> None:
    r = router("/a/[x]/b", "/a/[y]/c")
    assert lookup(r, "/a/1/b") == ("/a/[x]/b", {"x": "1"})
    assert lookup(r, "/a/2/c") == ("/a/[y]/c", {"y": "2"})


def test_catch_all_needs_at_least_one_segment() -> None:
    r = router("/files/[...path]")
    assert lookup(r, "/files") is None
    assert lookup(r, "/files/a") == ("/files/[...path]", {"path": ["a"]})


def test_catch_all_after_parameters() -> None:
    r = router("/repos/[owner]/[...path]")
    assert lookup(r, "/repos/me/src/main.py") == (
        "/repos/[owner]/[...path]",
        {"owner": "me", "path": ["src", "main.py"]},
    )


def test_empty_segment_is_not_a_parameter() -> None:
    r = router("/a/[x]")
    assert lookup(r, "/a//") is None


def test_split_path_decodes_each_segment() -> None:
    assert split_path(b"/a%2Fb/c%20d/") == ["a/b", "c d"]
    assert split_path(b"/") == []
    assert split_path(b"") == []
    assert split_path(b"/caf%C3%A9?x=1") == ["café"]


@pytest.mark.parametrize(
    "raw",
    [
        b"/a/../b",
        b"/a/%2e%2E",
        b"/./x",
        b"/%2E",
        b"/files/..%2f..%2fetc%2fpasswd",  # encoded slashes making '..' parts in one segment
        b"/files/a%2F..%2Fb",
        b"/files/%2e%2e%2F",
        b"/files/..%5c..%5cwin.ini",  # encoded backslashes
        b"/files/a\\..\\b",
        b"/files/x%2F.%2Fy",
    ],
)
def test_split_path_refuses_dot_segments(raw: bytes) -> None:
    with pytest.raises(BadPath):
        split_path(raw)


def test_split_path_refuses_invalid_utf8() -> None:
    with pytest.raises(BadPath):
        split_path(b"/%C3%28")


def test_many_routes_match_the_right_one() -> None:
    paths = [f"/area{i % 10}/thing{i}/[id]" for i in range(1000)]
    r = router(*paths)
    assert lookup(r, "/area3/thing993/42") == ("/area3/thing993/[id]", {"id": "42"})
    assert lookup(r, "/area4/thing993/42") is None


def test_exact_answers_parameterless_routes_with_or_without_trailing_slash() -> None:
    r = router("/", "/about", "/feed.xml", "/posts/[id]", "/a/b")
    assert r.exact(b"/") == "/"
    assert r.exact(b"/about") == r.exact(b"/about/") == "/about"
    assert r.exact(b"/feed.xml") == "/feed.xml"
    assert r.exact(b"/a/b/") == "/a/b"
    assert r.exact(b"/posts/[id]") is None  # a parameter route is never a literal path
    assert r.exact(b"/posts/7") is None  # left to the walk
    assert r.exact(b"/%61bout") is None  # encoded: the walk decodes it
    assert lookup(r, "/%61bout") == ("/about", {})


_SEGMENTS = st.sampled_from(["a", "b", "[x]", "[...rest]"])
_ROUTE_PATHS = st.lists(_SEGMENTS, min_size=0, max_size=3).map(
    lambda parts: (
        "/" + "/".join(parts[: parts.index("[...rest]") + 1] if "[...rest]" in parts else parts)
    )
)


@given(
    paths=st.lists(_ROUTE_PATHS, min_size=1, max_size=8, unique=True),
    request=st.lists(st.sampled_from(["a", "b", "c", "[x]"]), max_size=4),
    slash=st.booleans(),
)
def test_exact_agrees_with_the_walk(paths: list[str], request: list[str], slash: bool) -> None:
    r = router(*paths)
    raw = ("/" + "/".join(request) + ("/" if slash and request else "")).encode()
    fast = r.exact(raw)
    if fast is not None:
        found = r.match(split_path(raw))
        assert found is not None and found.target == fast and found.params == {}

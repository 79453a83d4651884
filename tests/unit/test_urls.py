"""``url()`` and ``url.self()``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from qr.runtime import ports, urls
from qr.runtime.urls import route_of_file, url


@pytest.fixture(autouse=True)
def _base() -> Iterator[None]:
    previous = urls.set_default_base_url("https://api.example.com")
    yield
    urls.set_default_base_url(previous)


def test_params_fill_segments_and_the_rest_is_the_query() -> None:
    assert url("/bookmarks/[id]", id=5, page=2) == "https://api.example.com/bookmarks/5?page=2"


def test_values_are_encoded_as_one_segment() -> None:
    assert url("/tags/[tag]", tag="a/b c") == "https://api.example.com/tags/a%2Fb%20c"


def test_catch_all_takes_a_list_or_a_string() -> None:
    assert url("/files/[...path]", path=["a", "b c"]) == "https://api.example.com/files/a/b%20c"
    assert url("/files/[...path]", path="a/b") == "https://api.example.com/files/a/b"


def test_query_lists_repeat_and_none_is_left_out() -> None:
    assert (
        url("/", tag=["a", "b"], skip=None, on=True)
        == "https://api.example.com/?tag=a&tag=b&on=true"
    )


def test_missing_parameter_is_an_error_naming_it() -> None:
    with pytest.raises(ValueError, match=r"needs a value for \[id\]"):
        url("/bookmarks/[id]")


def test_route_must_start_with_a_slash() -> None:
    with pytest.raises(ValueError, match="starting with '/'"):
        url("bookmarks")


def test_platform_base_url_wins() -> None:
    class Nothing:
        pass

    platform = ports.Platform(
        "local",
        Nothing(),  # type: ignore[arg-type]
        Nothing(),  # type: ignore[arg-type]
        Nothing(),  # type: ignore[arg-type]
        base_url="http://localhost:9000/",
    )
    previous = ports.set_platform(platform)
    try:
        assert url("/a") == "http://localhost:9000/a"
    finally:
        ports.set_platform(previous)


def test_route_of_file() -> None:
    assert route_of_file("api/index.py") == "/"
    assert route_of_file("api/bookmarks/index.py") == "/bookmarks"
    assert route_of_file("api/bookmarks/[id].py") == "/bookmarks/[id]"
    assert route_of_file("api/feed.xml.py") == "/feed.xml"


def test_self_outside_a_route_file_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="not a route file"):
        url.self()

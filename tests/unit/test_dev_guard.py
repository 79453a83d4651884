from __future__ import annotations

from starlette.types import Scope

from qr.cli.dev.guard import ControlGuard


def _scope(**headers: str) -> Scope:
    return {
        "type": "http",
        "headers": [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()],
    }


def test_loopback_hosts_with_the_port_and_the_token() -> None:
    guard = ControlGuard(token="t0k", port=8123)
    for host in ("localhost:8123", "127.0.0.1:8123", "[::1]:8123"):
        assert guard.refusal(_scope(host=host, x_qr_token="t0k")) is None, host
    assert guard.refusal(_scope(host="localhost:8124", x_qr_token="t0k")) is not None
    assert guard.refusal(_scope(host="localhost", x_qr_token="t0k")) is not None
    assert guard.refusal(_scope(x_qr_token="t0k")) is not None  # no Host at all
    assert "token" in str(guard.refusal(_scope(host="localhost:8123")))
    assert "t0k" not in str(guard.refusal(_scope(host="localhost:8123", x_qr_token="bad")))


def test_origin_must_be_this_server() -> None:
    guard = ControlGuard(token="t", port=80)
    ok = {"host": "localhost", "x_qr_token": "t"}
    assert guard.refusal(_scope(**ok, origin="http://localhost")) is None
    assert guard.refusal(_scope(**ok, origin="http://127.0.0.1:80")) is None
    assert "Origin" in str(guard.refusal(_scope(**ok, origin="http://evil.example")))
    assert guard.refusal(_scope(**ok, origin="null")) is not None
    assert guard.refusal(_scope(**ok, origin="https://localhost")) is not None


def test_bound_host_is_allowed_but_not_any_interface() -> None:
    lan = ControlGuard(token="t", bound_host="192.168.1.5", port=9000)
    assert lan.refusal(_scope(host="192.168.1.5:9000", x_qr_token="t")) is None
    six = ControlGuard(token="t", bound_host="fd00::5", port=9000)
    assert six.refusal(_scope(host="[fd00::5]:9000", x_qr_token="t")) is None
    everywhere = ControlGuard(token="t", bound_host="0.0.0.0", port=9000)
    assert everywhere.refusal(_scope(host="0.0.0.0:9000", x_qr_token="t")) is not None
    assert everywhere.refusal(_scope(host="127.0.0.1:9000", x_qr_token="t")) is None
    unbound = ControlGuard(token="t")
    assert unbound.refusal(_scope(host="127.0.0.1:9000", x_qr_token="t")) is not None

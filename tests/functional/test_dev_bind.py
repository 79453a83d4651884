"""``qr dev`` binds its port itself, before anything starts: errors in qr's words."""

from __future__ import annotations

import socket

import pytest

from qr.cli.dev.server import bind
from qr.cli.errors import QrError


def test_port_in_use_names_the_port_and_the_fix() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(QrError) as info:
            bind("127.0.0.1", port)
    assert info.value.message == (
        f"port {port} is already in use on 127.0.0.1 (another program listens there)"
    )
    assert f"qr dev --port {port + 1}" in info.value.hint and "--port 0" in info.value.hint


def test_an_address_of_another_machine() -> None:
    with pytest.raises(QrError) as info:
        bind("192.0.2.1", 0)  # TEST-NET-1: never an address of this machine
    assert info.value.message.startswith("cannot listen on 192.0.2.1:0:")
    assert "--host must be an address of this machine" in info.value.hint


def test_the_bound_socket_stays_out_of_child_processes() -> None:
    sock = bind("127.0.0.1", 0)
    try:
        assert sock.getsockname()[1] > 0
        assert not sock.get_inheritable()
    finally:
        sock.close()

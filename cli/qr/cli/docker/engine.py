"""Connecting to the Docker engine, with errors that say how to start it.

The docker SDK is imported here and nowhere in ``qr.runtime``. ``connect()`` pings the engine
once so that "not installed" and "not running" are told apart before any build starts. The ping
has a short timeout of its own: an engine that accepts the connection and never answers (a hung
daemon, a stale socket forwarded from a VM) would otherwise keep ``qr dev --docker`` silent for
the SDK's two minutes.
"""

from __future__ import annotations

import os
import shutil
import socket as sockets
from pathlib import Path
from typing import Any

from qr.cli.errors import QrError

DEFAULT_SOCKET = Path("/var/run/docker.sock")
API_VERSION = "1.41"
"""Docker 20.10's API; newer engines serve it too."""
PING_TIMEOUT = 5.0
"""Seconds the engine has to answer the first ping (a running engine answers in milliseconds)."""
CALL_TIMEOUT = 120
"""Seconds for each later call (image builds and imports are slow)."""


def connect(
    environment: dict[str, str] | None = None,
    socket: Path = DEFAULT_SOCKET,
    *,
    ping_timeout: float = PING_TIMEOUT,
) -> Any:
    """A ``docker.DockerClient`` for the engine of ``DOCKER_HOST`` (or the default socket)."""
    import docker
    import docker.errors
    import requests

    env = dict(os.environ if environment is None else environment)
    host = env.get("DOCKER_HOST", f"unix://{DEFAULT_SOCKET}")
    if host.startswith("unix://") and not Path(host.removeprefix("unix://")).exists():
        # Checked here: the SDK leaks a socket when it fails to connect.
        raise not_running_error(host, env, "no socket there", socket)
    client = None
    try:
        # A fixed API version (one every current engine serves) spares a version probe.
        client = docker.from_env(environment=env, timeout=ping_timeout, version=API_VERSION)
        client.ping()
    except requests.Timeout:
        if client is not None:
            client.close()
        detail = f"it did not answer within {ping_timeout:g} s"
        raise not_running_error(host, env, detail, socket) from None
    except (docker.errors.DockerException, requests.RequestException) as exc:
        if client is not None:
            client.close()
        raise not_running_error(host, env, str(exc), socket) from None
    client.api.timeout = CALL_TIMEOUT
    return client


def not_running_error(
    host: str, env: dict[str, str], detail: str, socket: Path = DEFAULT_SOCKET
) -> QrError:
    """``Docker is not installed`` or ``not running``: whichever fits, with how to fix it."""
    installed = (
        shutil.which("docker", path=env.get("PATH")) is not None
        or shutil.which("dockerd", path=env.get("PATH")) is not None
        or "DOCKER_HOST" in env
        or socket.exists()
    )
    if not installed:
        return QrError(
            "Docker is not installed: `qr dev --docker` runs handlers in Docker containers",
            "Install Docker Desktop (macOS, Windows) or Docker Engine (Linux: "
            "`apt-get install docker.io`), start it, and run the command again; "
            "or run `qr dev` without --docker to run handlers in-process.",
        )
    return QrError(
        f"Docker is not running: cannot reach the engine at {host} ({detail.strip()})",
        "Start Docker: open Docker Desktop, or on Linux `sudo systemctl start docker` "
        "(or `sudo dockerd &`); set DOCKER_HOST if your engine listens elsewhere. "
        "Check with `docker info`, then run the command again.",
    )


def container_start_error(exc: BaseException, task_dir: Path | None = None) -> QrError:
    """The engine refused to create or start the function's containers (at ``qr dev`` start)."""
    explanation = str(getattr(exc, "explanation", None) or exc).strip()
    hint = (
        "Docker refused to create or start a container. Check that the engine runs containers "
        "(`docker run --rm hello-world`) and has room (`docker system df`); on Docker Desktop, "
        "that the project's folder is shared with it (Settings > Resources > File sharing). "
        "Or run `qr dev` without --docker to run handlers in-process."
    )
    if task_dir is not None and ":" in str(task_dir.resolve()):
        hint = (
            f"The project's path contains ':' ({task_dir.resolve()}), which a Docker bind "
            "mount cannot name: move the project to a path without ':', or run `qr dev` "
            "without --docker."
        )
    return QrError(f"the function's containers did not start: {explanation}", hint)


def listen_address(client: Any, network: str) -> str:
    """Where the endpoints qr serves to the containers (Runtime API, local AWS) listen.

    Host networking: loopback. Bridge networking: the default bridge's gateway when it is an
    address of this machine (Linux, where ``host.docker.internal`` is that gateway), so the
    endpoints, which serve the dev environment's values, are not open to the whole network;
    otherwise (Docker Desktop, whose engine runs in a VM, or an engine without a default bridge)
    every interface, where the containers' connections can arrive from.
    """
    if network == "host":
        return "127.0.0.1"
    try:
        configs = client.networks.get("bridge").attrs["IPAM"]["Config"] or []
        gateways = [str(c.get("Gateway") or "") for c in configs]
    except Exception:  # no default bridge (--bridge=none) or an engine that hides it
        return "0.0.0.0"
    ipv4 = [address for address in gateways if address and ":" not in address]
    return next((address for address in ipv4 if _is_local(address)), "0.0.0.0")


def _is_local(address: str) -> bool:
    with sockets.socket() as probe:
        try:
            probe.bind((address, 0))
        except OSError:
            return False
    return True

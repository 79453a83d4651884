"""``qr dev --docker`` with bridge networking, the default for users, on a real bridge.

The engine of ``scripts/docker-bridge-up`` puts containers on its own bridge; they reach qr's
Runtime API and local AWS endpoints through ``host.docker.internal`` (the host's gateway
address on that bridge), not through the host's loopback as the host-networking tests do. One
HTTP request and one queued job (pushed from the container through the SQS endpoint, run by the
container through the Runtime API) cover both directions.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from qr.cli.docker.engine import listen_address
from qr.cli.docker.pool import PROJECT_LABEL
from tests.integration.docker.conftest import BRIDGE_DOCKER_HOST
from tests.integration.docker.test_dev_docker import WAIT, serve_docker_dev
from tests.integration.test_dev_server import DevProcess

# The module's server starts in its first test's setup and may build the bundle and the function
# image from a cold engine first: serve_docker_dev allows that 300 s, so the limit is above it.
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(360)]


@pytest.fixture(scope="module")
def dev(
    bridge_docker_client: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DevProcess]:
    base = tmp_path_factory.mktemp("docker-bridge")
    environment = {"DOCKER_HOST": BRIDGE_DOCKER_HOST, "QR_DOCKER_NETWORK": "bridge"}
    with serve_docker_dev(bridge_docker_client, base, environment) as server:
        yield server


def test_containers_on_the_bridge_reach_qr_through_host_docker_internal(
    dev: DevProcess, bridge_docker_client: Any
) -> None:
    label = f"{PROJECT_LABEL}={dev.root.resolve()}"
    containers = bridge_docker_client.containers.list(filters={"label": label})
    assert containers
    for container in containers:
        assert container.attrs["HostConfig"]["NetworkMode"] == "bridge"
        runtime_api = [v for v in container.attrs["Config"]["Env"] if "RUNTIME_API=" in v]
        assert runtime_api and runtime_api[0].startswith(
            "AWS_LAMBDA_RUNTIME_API=host.docker.internal:"
        )
    # qr's endpoints for the containers listen on the bridge's gateway, not on every interface
    endpoint = next(v for v in containers[0].attrs["Config"]["Env"] if "URL_SQS=" in v)
    port = int(endpoint.rsplit(":", 1)[1].split("/", 1)[0])
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=5):
        pass
    response = httpx.get(dev.url + "/", timeout=WAIT)
    assert response.status_code == 200
    assert response.json() == {"message": "Hi from qr"}  # .env, through the SSM endpoint


def test_a_job_pushed_from_the_container_runs_in_a_container(dev: DevProcess) -> None:
    response = httpx.post(dev.url + "/push", json={"user": "u1", "n": 1}, timeout=WAIT)
    assert response.status_code == 200, response.text
    job_id = response.json()["job_id"]
    dev.until(lambda: f"notify job {job_id} ok" in dev.output(), "the job's log line", WAIT)
    dev.until(lambda: f"notifying u1 of job {job_id}" in dev.output(), "the job's output", WAIT)


def test_endpoints_listen_on_the_bridge_gateway_where_it_is_local(
    bridge_docker_client: Any, docker_client: Any
) -> None:
    configs = bridge_docker_client.networks.get("bridge").attrs["IPAM"]["Config"]
    assert listen_address(bridge_docker_client, "bridge") == configs[0]["Gateway"]
    assert listen_address(bridge_docker_client, "host") == "127.0.0.1"
    # the main test engine runs with --bridge=none: no gateway to pick, every interface
    assert listen_address(docker_client, "bridge") == "0.0.0.0"

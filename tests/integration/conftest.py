"""A real hub: JupyterHub with the docker profile, on the real engine and the real env images.

The hub runs as a subprocess with its own data root and ports, exactly as
``ws up`` runs it.  Tests drive it through its REST API with an admin service
token, and look inside workspaces with ``docker exec``.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import docker
import pytest
import requests

from workspace_hub.catalog import REPO_ROOT

ARTIFACTS = REPO_ROOT / "tests" / "artifacts"
HUB_PORT = 18000


class Hub:
    """A JupyterHub subprocess and a REST client for it."""

    def __init__(self, data_root: Path, port: int = HUB_PORT, extra_env: dict | None = None):
        self.data_root = data_root
        self.url = f"http://127.0.0.1:{port}"
        self.token = secrets.token_hex(16)
        self.admin_password = "admin-" + secrets.token_hex(8)
        self.env = dict(
            os.environ,
            WSHUB_DATA_ROOT=str(data_root),
            WSHUB_PORT=str(port),
            WSHUB_HUB_PORT=str(port + 81),
            WSHUB_SERVICE_TOKEN=self.token,
            WSHUB_ADMIN_PASSWORD=self.admin_password,
            **(extra_env or {}),
        )
        self.process: subprocess.Popen | None = None
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"token {self.token}"

    def start(self) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        log = open(ARTIFACTS / "hub.log", "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(REPO_ROOT / "hub_config/jupyterhub_config.py")],
            env=self.env, cwd=self.data_root, stdout=log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"the hub exited; see {ARTIFACTS / 'hub.log'}"
            try:
                if self.session.get(f"{self.url}/hub/api/", timeout=2).ok:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.3)
        raise TimeoutError("the hub did not answer within 60 s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=30)

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        return self.session.request(method, f"{self.url}/hub/api{path}", timeout=30, **kwargs)

    def server(self, user: str, name: str) -> dict | None:
        return self.api("GET", f"/users/{user}").json()["servers"].get(name)

    def wait_ready(self, user: str, name: str, timeout: float = 120) -> dict:
        """Poll until the server is ready; fail at once if its spawn failed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            server = self.server(user, name)
            if server and server["ready"]:
                return server
            if not (server and server["pending"]):
                raise AssertionError(f"{user}/{name} is neither ready nor starting: {server}; see hub.log")
            time.sleep(0.2)
        raise TimeoutError(f"{user}/{name} was not ready within {timeout} s")

    def start_project(self, user: str, name: str, **options) -> dict:
        r = self.api("POST", f"/users/{user}/servers/{name}", json={"user_options": options})
        assert r.status_code in (201, 202), r.text
        return self.wait_ready(user, name)

    def stop_project(self, user: str, name: str) -> None:
        r = self.api("DELETE", f"/users/{user}/servers/{name}")
        assert r.status_code in (202, 204), r.text
        deadline = time.monotonic() + 60
        while (s := self.server(user, name)) and (s["pending"] or s["ready"]):
            assert time.monotonic() < deadline, f"{user}/{name} did not stop"
            time.sleep(0.3)

    def user_token(self, user: str) -> str:
        r = self.api("POST", f"/users/{user}/tokens", json={"note": "tests"})
        assert r.status_code == 201, r.text
        return r.json()["token"]


@pytest.fixture(scope="session")
def engine() -> docker.DockerClient:
    """The real Docker engine; CI starts it, a laptop without one skips these tests."""
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as e:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no Docker engine: {e}")
    return client


def remove_workspaces(engine: docker.DockerClient) -> None:
    for container in engine.containers.list(all=True, filters={"name": "workspace-"}):
        container.remove(force=True)


@pytest.fixture(scope="module")
def hub(engine, tmp_path_factory):
    """A running hub with the docker profile; every workspace is removed afterwards."""
    data_root = tmp_path_factory.mktemp("hub") / "data"
    data_root.mkdir()
    (data_root / "datasets" / "digits").mkdir(parents=True)
    (data_root / "datasets" / "digits" / "labels.csv").write_text("image,label\n0.png,0\n")
    hub = Hub(data_root)
    hub.start()
    try:
        yield hub
    finally:
        hub.stop()
        remove_workspaces(engine)


@pytest.fixture
def container_of(engine):
    """Factory: the running container of a user's project."""
    return lambda user, project: engine.containers.get(f"workspace-{user}--{project}")

"""A real hub: JupyterHub with the docker profile, on the real engine and the real env images.

The hub runs as a subprocess with its own data root and ports, exactly as
``ws up`` runs it.  Tests drive it through its REST API with an admin service
token, and look inside workspaces with ``docker exec``.
"""

from __future__ import annotations

import os

import docker
import pytest

from workspace_hub.catalog import REPO_ROOT
from workspace_hub.hubprocess import HubProcess

ARTIFACTS = REPO_ROOT / "tests" / "artifacts"


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
    # the env exports `ws envs build` wrote for in-workspace image builds
    if (REPO_ROOT / "data" / "base-images").is_dir():
        (data_root / "base-images").symlink_to(REPO_ROOT / "data" / "base-images")
    hub = HubProcess(data_root, port=18000, log_path=ARTIFACTS / "hub.log")
    hub.start()
    try:
        yield hub
    finally:
        hub.stop()
        remove_workspaces(engine)


@pytest.fixture
def remove_workspaces_after(engine):
    """Remove every workspace container when the test ends."""
    yield
    remove_workspaces(engine)


@pytest.fixture(scope="session")
def container_of(engine):
    """Factory: the running container of a user's project (names escaped as DockerSpawner does)."""
    from dockerspawner import DockerSpawner

    escape = DockerSpawner._escape
    return lambda user, project: engine.containers.get(f"workspace-{escape(user)}--{escape(project)}")

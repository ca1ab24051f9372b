"""Shared fixtures: a catalog, a data root, and spawners for each profile."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

# KubeSpawner loads a kube config on construction; this one points nowhere and is never used.
os.environ.setdefault("KUBECONFIG", str(Path(__file__).with_name("kubeconfig.yaml")))

from workspace_hub.projects import DatasetMount
from workspace_hub.spawner import DockerWorkspaceSpawner, KubeWorkspaceSpawner, LocalWorkspaceSpawner

FLOWERS = DatasetMount(key="flowers", label="flowers 1 (dir)", mounts={"train": "library/trees/f1"})

SPAWNERS = {
    "docker": DockerWorkspaceSpawner,
    "local": LocalWorkspaceSpawner,
    "kubernetes": KubeWorkspaceSpawner,
}


@pytest.fixture
def catalog_dir(tmp_path) -> Path:
    """A catalog with a CPU env and a GPU env."""
    root = tmp_path / "base-envs"
    for env_id, device in (("python", "cpu"), ("pytorch-gpu", "gpu")):
        (root / env_id).mkdir(parents=True)
        (root / env_id / "env.yaml").write_text(textwrap.dedent(f"""\
            id: {env_id}
            display_name: {env_id} env
            framework: {'python' if device == 'cpu' else 'pytorch'}
            device: {device}
            limits: {{mem: 2G, cpu: 1.5}}
            """))
    return root


@pytest.fixture
def data_root(tmp_path) -> Path:
    """A data root with one dataset tree (the library's 'flowers', key ``flowers``)."""
    root = tmp_path / "data"
    (root / FLOWERS.mounts["train"]).mkdir(parents=True)
    (root / "help_doc").mkdir()
    return root


@pytest.fixture(params=list(SPAWNERS))
def profile(request) -> str:
    return request.param


def make_spawner(kind, data_root, catalog_dir, name="demo", gpu=False, unbuilt=(), **traits):
    """A spawner of *kind* for user alice's project *name*, without a hub."""
    user = SimpleNamespace(name="alice", id=1, url="/user/alice/", escaped_name="alice")
    hub = SimpleNamespace(public_host="", url="http://127.0.0.1:8081/hub/", base_url="/hub/",
                          api_url="http://127.0.0.1:8081/hub/api")
    extra = {"_mock": True} if kind == "kubernetes" else {}
    spawner = SPAWNERS[kind](
        user=user, hub=hub, orm_spawner=SimpleNamespace(name=name, display_name=name, server=None),
        data_root=str(data_root), catalog_dir=str(catalog_dir),
        gpu_available=gpu, **traits, **extra,
    )

    async def version(env):  # no engine in unit tests: every image counts as built unless a test says not
        return None if env.id in unbuilt else ""

    async def datasets():  # the library's answer for alice: one online dataset
        return [FLOWERS]

    spawner.env_version = version
    spawner.library_datasets = datasets
    return spawner


@pytest.fixture
def spawner_for(data_root, catalog_dir):
    """Factory: ``spawner_for("docker", name="demo", gpu=True)``."""
    return lambda kind, **kw: make_spawner(kind, data_root, catalog_dir, **kw)

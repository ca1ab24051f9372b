"""A real hub: JupyterHub with the docker profile, on the real engine and the real env images.

The hub runs as a subprocess with its own data root and ports, exactly as
``ws up`` runs it.  Tests drive it through its REST API with an admin service
token, and look inside workspaces with ``docker exec``.
"""

from __future__ import annotations

import hashlib

import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import docker
import pytest

from workspace_hub.catalog import REPO_ROOT
from harness.envs import preset_algorithms
from harness.hubprocess import HubProcess
from harness.waiting import answers, free_port, wait_until

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


@contextmanager
def running_hub(engine, tmp_path_factory, port: int = 18000, log: str = "hub.log", library_config: str = "",
                presets: bool = False):
    """A hub with the docker profile in a data root of its own (with *library_config* as its library's
    ``library_config.py``, and with *presets* the preset algorithms `ws up` builds); every workspace, run,
    replica and library tag it made is removed afterwards."""
    data_root = tmp_path_factory.mktemp("hub") / "data"
    data_root.mkdir()
    # the env exports `ws envs build` wrote for in-workspace image builds
    if (REPO_ROOT / "data" / "base-images").is_dir():
        (data_root / "base-images").symlink_to(REPO_ROOT / "data" / "base-images")
    if presets:
        (data_root / "preset-algorithms").symlink_to(preset_algorithms())
    if library_config:
        (data_root / "library_config.py").write_text(library_config)
    hub = HubProcess(data_root, port=port, log_path=ARTIFACTS / log)
    before = library_tags(engine)
    hub.start()
    try:
        yield hub
    finally:
        hub.stop()
        remove_workspaces(engine)
        remove_library_containers(engine, data_root)  # runs and service replicas outlive a library by design
        for tag in library_tags(engine) - before:  # this hub's library is gone with its data root
            engine.images.remove(tag)


@pytest.fixture(scope="module")
def hub(engine, tmp_path_factory):
    """A running hub with the docker profile; every workspace is removed afterwards."""
    with running_hub(engine, tmp_path_factory) as hub:
        yield hub


def remove_library_containers(engine, data_root: Path) -> None:
    owner = "library-" + hashlib.sha256(str(data_root.resolve()).encode()).hexdigest()[:12]
    for container in engine.containers.list(all=True, filters={"label": f"ai.workspace-hub.owner={owner}"}):
        container.remove(force=True)


def library_tags(engine) -> set[str]:
    return {tag for image in engine.images.list() for tag in image.tags if tag.startswith(("algorithms/", "envs/"))}


@pytest.fixture
def remove_workspaces_after(engine):
    """Remove every workspace container when the test ends."""
    yield
    remove_workspaces(engine)


@pytest.fixture(scope="module")
def image_tar(engine, tmp_path_factory):
    """Factory: a tiny image on the bootstrapped Debian that runs *script* with python3, as `docker save`
    wrote it: ``image_tar(kind, name, script, labels="")`` returns the path of ``<kind>-<name>-cpu.tar``."""
    import subprocess

    from workspace_hub.envbuild import OS_IMAGE

    engine.images.get(OS_IMAGE)  # built by `ws envs build`
    tmp = tmp_path_factory.mktemp("images")

    def build(kind: str, name: str, script: str, labels: str = "") -> str:
        context = tmp / name
        context.mkdir()
        (context / "main.py").write_text(script)
        (context / "Dockerfile").write_text(
            f"FROM {OS_IMAGE}\nCOPY main.py /app/main.py\nUSER 1000\n"
            f'LABEL ai.platform.kind={kind} ai.platform.device=cpu {labels}\n'
            'CMD ["python3", "/app/main.py"]\n')
        tag = f"ws-test-image/{name}:1"
        subprocess.run(["docker", "build", "-q", "-t", tag, str(context)], check=True, capture_output=True)
        path = tmp / f"{kind}-{name}-cpu.tar"
        subprocess.run(["docker", "save", "-o", str(path), tag], check=True)
        engine.images.remove(tag, force=True)
        return str(path)

    return build


@pytest.fixture(scope="session")
def container_of(engine):
    """Factory: the running container of a user's project (names escaped as DockerSpawner does)."""
    from dockerspawner import DockerSpawner

    escape = DockerSpawner._escape
    return lambda user, project: engine.containers.get(f"workspace-{escape(user)}--{escape(project)}")


@pytest.fixture(scope="session")
def registry(tmp_path_factory):
    """Debian's docker-registry (the real `distribution` server) on a loopback port; yields host:port."""
    import subprocess

    binary = shutil.which("docker-registry")
    if binary is None:
        if os.environ.get("CI"):
            raise RuntimeError("docker-registry is not installed; scripts/install.sh installs it with WSHUB_EXTRAS=test")
        pytest.skip("no docker-registry")
    port = free_port()
    root = tmp_path_factory.mktemp("registry")
    config = root / "config.yml"
    config.write_text(f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n"
                      f"http:\n  addr: 127.0.0.1:{port}\nlog:\n  level: warn\n")
    process = subprocess.Popen([binary, "serve", str(config)], stdout=subprocess.DEVNULL,
                               stderr=open(ARTIFACTS / "registry.log", "wb"))
    wait_until(lambda: answers(f"http://127.0.0.1:{port}/v2/") or process.poll() is not None, 30, 0.2,
               "docker-registry to start")
    assert process.poll() is None, "docker-registry exited"
    try:
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.set_default_timeout(60_000)
        yield page
        browser.close()


def shot(page, name):
    """Save a screenshot as tests/artifacts/<name>.png."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def login(page, hub):
    """Log in as the hub's first admin."""
    page.goto(f"{hub.url}/hub/login")
    page.fill("#username_input", "admin")
    page.fill("#password_input", hub.admin_password)
    shot(page, "01-login")
    page.click("#login_submit")
    page.wait_for_url("**/hub/home")

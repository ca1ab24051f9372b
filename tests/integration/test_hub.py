"""End to end: a real hub spawns projects as containers on the real Docker engine.

These tests share one hub and run in order: bob's two projects are created
first, then used by the later tests.
"""

import pytest
import requests

from workspace_hub.catalog import load_catalog

pytestmark = pytest.mark.docker

USER = "bob"


def sh(container, script: str) -> tuple[int, str]:
    """Run *script* in the workspace as its own user (what a terminal in JupyterLab does)."""
    code, out = container.exec_run(["bash", "-c", script])
    return code, out.decode()


@pytest.fixture(scope="module")
def projects(hub):
    """bob with two running projects: 'alpha' (no dataset) and 'beta' (the preset dataset 'digits')."""
    assert hub.api("POST", f"/users/{USER}").status_code == 201
    hub.start_project(USER, "alpha", env="python")
    hub.start_project(USER, "beta", env="python", dataset=hub.dataset_key("digits"))
    return hub


def test_projects_are_named_servers(projects):
    servers = projects.api("GET", f"/users/{USER}").json()["servers"]
    assert {name for name, s in servers.items() if s["ready"]} == {"alpha", "beta"}
    assert servers["beta"]["user_options"] == {"env": "python", "dataset": projects.dataset_key("digits")}


def test_jupyter_api_through_the_proxy_lists_the_project(projects):
    token = projects.user_token(USER)
    r = requests.get(f"{projects.url}/user/{USER}/beta/api/contents/",
                     headers={"Authorization": f"token {token}"}, timeout=10)
    assert r.status_code == 200
    assert {item["name"] for item in r.json()["content"]} >= {
        "code", "model", "docker_image", "dataset", "help_doc"}
    r = requests.get(f"{projects.url}/user/{USER}/alpha/api/contents/",
                     headers={"Authorization": f"token {token}"}, timeout=10)
    assert "dataset" not in {item["name"] for item in r.json()["content"]}


def test_read_only_mounts_refuse_writes(projects, container_of):
    container = container_of(USER, "beta")
    for path in ("/project/help_doc/x", "/project/dataset/x"):
        code, out = sh(container, f"touch {path}")
        assert code != 0 and "Read-only file system" in out
    assert sh(container, "ls /project/dataset")[1].split() == [str(d) for d in range(10)]
    assert "handbook" in sh(container, "cat /project/help_doc/README.md")[1]


def test_project_folders_are_writable_and_owned_by_uid_1000(projects, container_of):
    container = container_of(USER, "alpha")
    code, out = sh(container, "for d in code model docker_image; do echo hi > /project/$d/f.txt || exit 1; done")
    assert code == 0, out
    root = projects.data_root / "users" / USER / "alpha"
    for d in ("code", "model", "docker_image"):
        stat = (root / d / "f.txt").stat()
        assert (stat.st_uid, stat.st_gid) == (1000, 1000)


def test_the_workspace_is_unprivileged(projects, container_of):
    container = container_of(USER, "alpha")
    assert sh(container, "id -u")[1].strip() == "1000"
    assert sh(container, "test -e /var/run/docker.sock")[0] != 0
    assert sh(container, "pwd")[1].strip() == "/project"
    host = container.attrs["HostConfig"]
    assert host["Privileged"] is False and host["NetworkMode"] == "host"
    assert not any("docker.sock" in b for b in host["Binds"])


def test_files_and_user_packages_survive_stop_and_start(projects, container_of):
    site = "$(python -c 'import site; print(site.getusersitepackages())')"
    code, out = sh(container_of(USER, "alpha"),
                   f"mkdir -p {site} && echo 'ANSWER = 42' > {site}/ws_probe.py && echo kept > /project/code/kept.txt")
    assert code == 0, out
    projects.stop_project(USER, "alpha")
    # no options: the project restarts with the env and dataset it was made with
    r = projects.api("POST", f"/users/{USER}/servers/alpha", json={})
    assert r.status_code in (201, 202), r.text
    projects.wait_ready(USER, "alpha")
    container = container_of(USER, "alpha")
    assert sh(container, "cat /project/code/kept.txt")[1].strip() == "kept"
    assert sh(container, "python -c 'import ws_probe; print(ws_probe.ANSWER)'")[1].strip() == "42"


def test_hub_restart_keeps_servers_running(projects, container_of):
    before = container_of(USER, "beta").id
    projects.stop()
    projects.start()
    assert projects.server(USER, "beta")["ready"]
    assert container_of(USER, "beta").id == before
    token = projects.user_token(USER)
    r = requests.get(f"{projects.url}/user/{USER}/beta/api/status",
                     headers={"Authorization": f"token {token}"}, timeout=10)
    assert r.status_code == 200


@pytest.mark.parametrize(
    "name, options, message",
    [
        ("Bad-Name", {"env": "python"}, "Invalid server_name"),
        ("a" * 31, {"env": "python"}, "Invalid server_name"),
        ("gamma", {"env": "cobol"}, "Unknown base env 'cobol'"),
        ("gamma", {"env": "python", "dataset": "../users"}, "not an online dataset you may use"),
        ("gamma", {"env": "python", "dataset": "missing"}, "not an online dataset you may use"),
        ("alpha", {"env": "python"}, "already running"),
    ],
)
def test_bad_requests_get_400_with_a_clear_message(projects, name, options, message):
    r = projects.api("POST", f"/users/{USER}/servers/{name}", json={"user_options": options})
    assert r.status_code == 400
    assert message in r.json()["message"]


@pytest.mark.parametrize("env", [e.id for e in load_catalog().values() if not e.gpu])
def test_each_env_opens_with_its_kernel(projects, env):
    """A project of every CPU env reaches ready JupyterLab with the env's kernel as the only one."""
    name = f"env-{env}"
    projects.start_project(USER, name, env=env)
    token = projects.user_token(USER)
    headers = {"Authorization": f"token {token}"}
    specs = requests.get(f"{projects.url}/user/{USER}/{name}/api/kernelspecs", headers=headers, timeout=10).json()
    assert list(specs["kernelspecs"]) == [env] and specs["default"] == env
    lab = requests.get(f"{projects.url}/user/{USER}/{name}/lab", headers=headers, timeout=10)
    assert lab.status_code == 200 and "JupyterLab" in lab.text
    projects.stop_project(USER, name)


def test_the_hub_keeps_answering_while_a_stopped_library_holds_a_spawn(projects):
    """The spawn and the form ask the library without blocking the hub's loop, and fall back visibly.

    The library is frozen with SIGSTOP; a spawn then waits on it (until the spawner's library
    timeout), and meanwhile the hub's own API must keep answering (the hang guard on each request
    is far below that timeout)."""
    import os
    import signal
    import threading
    import time

    hub = projects
    pid = hub.service_pid()
    os.kill(pid, signal.SIGSTOP)
    try:
        outcome = {}
        spawn = threading.Thread(target=lambda: outcome.update(r=hub.api(
            "POST", f"/users/{USER}/servers/loop-check", json={"user_options": {"env": "cobol"}})))
        spawn.start()
        answered = 0
        while spawn.is_alive():
            assert requests.get(f"{hub.url}/hub/api/", timeout=1).ok
            answered += 1
            time.sleep(0.1)
        assert answered >= 5, "the spawn never waited on the library"
        assert outcome["r"].status_code == 400 and "Unknown base env 'cobol'" in outcome["r"].text
        form = hub.login("admin", hub.admin_password).get(f"{hub.url}/hub/spawn/admin/loop-form", timeout=30)
        assert form.status_code == 200 and "The library did not answer" in form.text
        assert 'name="env"' in form.text and 'value="python"' in form.text
    finally:
        os.kill(pid, signal.SIGCONT)

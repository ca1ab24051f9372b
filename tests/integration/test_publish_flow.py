"""The library end to end: a real hub runs the library, a real workspace publishes to it.

pia bakes the bayes sample in her workspace, packs it with `ws build` (`make
build`), publishes it with `ws publish` and brings it online with `ws
algorithms online`, all inside the workspace with its own $JUPYTERHUB_API_TOKEN.
quinn, another user, sees it only once it is public, and calls the running
predict container through the online test.  Then the service is killed with
SIGKILL in the middle of a validation and the hub restarts it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import urllib.request
from pathlib import Path

import docker
import pytest

from harness.library import Client

from .conftest import login, shot
from harness.waiting import status_of, wait_until
from workspace_hub.executor import LABEL_KEY, LABEL_RUN
from workspace_hub.projects import user_dir_name

pytestmark = pytest.mark.docker

PUBLISHER, OTHER, PROJECT = "pia", "quinn", "lib-demo"
NAME = "text-classify-bayes"


def sh(container, script: str, expect: int = 0) -> str:
    code, out = container.exec_run(["bash", "-lc", script], user="1000")
    assert code == expect, out.decode()[-3000:]
    return out.decode()


def wait_status(client: Client, item_id: int, kind: str = "algorithms") -> dict:
    """The item once validation is over."""
    return wait_until(lambda: (item := client("GET", f"{kind}/{item_id}").json())["status"] != "validating" and item,
                      timeout=600, interval=0.5, what=f"validation of {kind}/{item_id}")


@pytest.fixture(scope="module")
def library(hub):
    """Clients of the library for pia, quinn and the hub's first admin."""
    for user in (PUBLISHER, OTHER):
        hub.api("POST", f"/users/{user}")
    base = f"{hub.url}/services/library/"
    return {user: Client(base, hub.user_token(user)) for user in (PUBLISHER, OTHER, "admin")} | {"base": base}


@pytest.fixture(scope="module")
def workspace(hub, library, container_of):
    hub.start_project(PUBLISHER, PROJECT, env="python")
    container = container_of(PUBLISHER, PROJECT)
    sh(container, f"cd /project/code && ws new sample {NAME} && cd {NAME}-train-demo && make build_cpu")
    return container


def engine_tags(engine) -> set[str]:
    return {tag for image in engine.images.list() for tag in image.tags}


@pytest.fixture(scope="module")
def tags_before_publish(workspace, engine):
    return engine_tags(engine)


@pytest.fixture(scope="module")
def published(workspace, library, tags_before_publish):
    """The README's path, in two steps: `ws publish` the train folder, then build the api folder and
    `ws publish` again, which adds its image to the same version.  No login: the workspace's token."""
    first = sh(workspace, f"cd /project/code/{NAME}-train-demo && ws publish")  # the README's quick path
    assert "ready. Bring it online with: ws algorithms online" in first, first
    algorithm_id = int(re.search(r"\(id (\d+)\)", first).group(1))
    out = sh(workspace, f"cd /project/code/{NAME}-api-demo && make build && ws publish")
    assert "ready. Bring it online with: ws algorithms online" in out, out
    assert int(re.search(r"\(id (\d+)\)", out).group(1)) == algorithm_id
    return algorithm_id, out


def test_publishing_leaves_only_the_images_the_library_keeps(published, tags_before_publish, library, engine):
    algorithm_id, _ = published
    kept = {i["tag"] for i in library[PUBLISHER]("GET", f"algorithms/{algorithm_id}").json()["images"]}
    assert engine_tags(engine) - tags_before_publish == kept


def test_the_library_is_a_displayed_hub_service(hub, library):
    services = hub.api("GET", "/services").json()
    assert services["library"]["display"] is True
    assert library[PUBLISHER]("GET", "me").json() == {"name": PUBLISHER, "admin": False, "kind": "user"}


def test_ws_publish_takes_the_project_to_ready_with_its_metadata(published, library):
    algorithm_id, out = published
    assert "smoke run of train-text-classify-bayes-cpu.tar" in out  # progress shows as it happens
    item = library[PUBLISHER]("GET", f"algorithms/{algorithm_id}").json()
    assert item["status"] == "ready" and item["owner"] == PUBLISHER and item["visibility"] == "private"
    assert item["purpose"] == {"first": "text", "second": "classification"}
    assert item["train"]["command"] == ["python", "src/train.py"] and "EPOCHS" in item["train"]["env_vars"]
    assert item["predict"]["interface"]["params"][0]["name"] == "text"
    # one never-reused key per item names its images: owners whose names slug alike never collide
    key = item["images"][0]["tag"].split("/")[1]
    assert re.fullmatch(r"[0-9a-f]{32}", key)
    assert {i["tag"] for i in item["images"]} == {f"algorithms/{key}/{NAME}:1.0-train",
                                                 f"algorithms/{key}/{NAME}:1.0-predict"}


def test_online_then_public_then_another_user_tests_it(published, workspace, library, engine):
    algorithm_id, _ = published
    assert library[OTHER]("GET", f"algorithms/{algorithm_id}").status_code == 404
    assert "[online]" in sh(workspace, f"ws algorithms online {algorithm_id}")
    assert library[OTHER]("GET", f"algorithms?name={NAME}").json()["total"] == 0
    assert library[PUBLISHER]("PATCH", f"algorithms/{algorithm_id}", json={"visibility": "public"}).ok
    assert library[OTHER]("GET", f"algorithms?name={NAME}").json()["total"] == 1
    answer = library[OTHER]("POST", f"algorithms/{algorithm_id}/test", json={}).json()
    assert answer["status"] == 200 and answer["response"]["label"] == "sports", answer
    key = library[OTHER]("GET", f"algorithms/{algorithm_id}").json()["images"][0]["tag"].split("/")[1]
    [replica] = engine.containers.list(filters={"label": [f"{LABEL_RUN}=test", f"{LABEL_KEY}={key}"]})
    assert replica.attrs["HostConfig"]["NetworkMode"] == "none"
    assert library[OTHER]("POST", f"algorithms/{algorithm_id}/offline").status_code == 403


def test_publishing_the_same_version_again_is_a_clear_409(published, workspace):
    out = sh(workspace, f"ws publish --name {NAME}", expect=1)
    assert f"{PUBLISHER}/{NAME} version 1.0 exists and has been online, so it is frozen; publish a new version. " \
           "[exists, HTTP 409]" in out


def test_the_service_reads_only_the_callers_own_project(published, workspace, library, hub):
    images = hub.data_root / "users" / PUBLISHER / PROJECT / "docker_image"
    other_project = hub.data_root / "users" / OTHER / "theirs" / "docker_image"
    other_project.mkdir(parents=True, exist_ok=True)
    (other_project / "train-stolen-cpu.tar").write_bytes(b"x")
    (images / "train-stolen-cpu.tar").symlink_to(other_project / "train-stolen-cpu.tar")
    try:
        r = library[PUBLISHER]("POST", "algorithms/from-project", json={"project": PROJECT, "name": "stolen"})
        assert r.status_code == 400 and r.json()["error"]["code"] == "symlink"
        r = library[PUBLISHER]("POST", "algorithms/from-project", json={"project": "theirs"})
        assert r.status_code == 404 and r.json()["error"]["code"] == "no-project"
        r = library[PUBLISHER]("POST", "algorithms/from-project", json={"project": "../quinn/theirs"})
        assert r.status_code == 400 and r.json()["error"]["field"] == "project"
    finally:
        (images / "train-stolen-cpu.tar").unlink()


def test_the_hub_offers_only_the_envs_the_library_has_online(hub, library, workspace):
    admin = library["admin"]
    keras = admin("GET", "envs?name=keras").json()["items"][0]
    assert admin("POST", f"envs/{keras['id']}/offline").ok
    try:
        r = hub.api("POST", f"/users/{OTHER}/servers/kerasproj", json={"user_options": {"env": "keras"}})
        assert r.status_code == 400 and "Unknown base env 'keras'" in r.text
    finally:
        assert admin("POST", f"envs/{keras['id']}/online").ok


def test_an_env_used_by_a_running_server_cannot_be_deleted(hub, library, workspace):
    admin = library["admin"]
    python = admin("GET", "envs?name=python").json()["items"][0]
    assert admin("POST", f"envs/{python['id']}/offline").ok
    try:
        r = admin("DELETE", f"envs/{python['id']}")
        assert r.status_code == 409 and f"{PUBLISHER}/{PROJECT}" in r.json()["error"]["message"]
    finally:
        admin("POST", f"envs/{python['id']}/online")


def test_a_killed_service_leaves_nothing_stuck_in_validating(published, workspace, library, hub):
    sh(workspace, f"cd /project/code && sed -i 's/^version: .*/version: \"2.0\"/' {NAME}-*-demo/algorithm.yaml "
                  f"&& make -C {NAME}-train-demo build_cpu && make -C {NAME}-api-demo build")
    out = sh(workspace, f"ws publish --name {NAME} --no-wait")
    algorithm_id = int(re.search(r"\(id (\d+)\)", out).group(1))
    pid = hub.service_pid()
    wait_until(lambda: library[PUBLISHER]("GET", f"algorithms/{algorithm_id}").json()["progress"]
               not in ("queued", ""), interval=0.05, what="validation to start")
    os.kill(pid, signal.SIGKILL)
    # the hub restarts its managed services; until then its proxy answers 503 for the library
    wait_until(lambda: status_of(library["base"] + "api/me") == 401, timeout=120, interval=0.5,
               what="the hub restarting the library")
    assert hub.service_pid() not in (None, pid)
    item = wait_status(library[PUBLISHER], algorithm_id)
    assert item["status"] == "ready", item["errors"]
    assert list((hub.data_root / "library" / "incoming").iterdir()) == []


@pytest.mark.browser
def test_an_image_is_pulled_from_a_registry_on_the_publish_page(registry, library, engine, tmp_path, page, hub):
    algorithm = {"name": "tiny", "kind": "train", "version": "1.0", "command": ["python3"]}
    (tmp_path / "Dockerfile").write_text(
        "FROM workspace-hub/os:bookworm\n"
        "LABEL ai.platform.kind=train ai.platform.device=cpu\n"
        f"LABEL ai.platform.algorithm='{json.dumps(algorithm)}'\n"
        "USER 1000\n"
        "CMD [\"python3\", \"-c\", \"open('/project/model/model.txt', 'w').write('ok')\"]\n")
    reference = f"{registry}/team/tiny:1.0"
    engine.images.build(path=str(tmp_path), tag=reference, network_mode="host", rm=True)
    for line in engine.images.push(f"{registry}/team/tiny", "1.0", stream=True, decode=True):
        assert "error" not in line, line
    engine.images.remove(reference)

    login(page, hub)
    page.goto(f"{library['base']}publish")
    page.fill("#name", "tiny")
    page.fill("#train-reference", reference)
    page.click("#publish button[type=submit]")
    page.wait_for_url(re.compile(r".*/algorithms/\d+$"))
    item_id = int(page.url.rsplit("/", 1)[1])
    item = wait_status(library["admin"], item_id)
    assert item["status"] == "ready", item["errors"]
    page.reload()
    page.wait_for_selector("#images tbody tr:has-text('valid')")
    shot(page, "publish-02-pulled")
    assert engine.images.get(item["images"][0]["tag"])
    with pytest.raises(docker.errors.ImageNotFound):  # the pulled name is not left behind
        engine.images.get(reference)
    r = library["admin"]("POST", f"algorithms/{item['id']}/pull", json={"reference": f"{registry}/team/none:1",
                                                                        "role": "train"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "pull-failed"


HAND_MODEL = """
def load(folder):
    return "carried"  # this image carries its own model: none is mounted


def predict(model, params):
    return {"label": "LABEL", "text": params.get("text")}
"""


def hand_made_image(hub, workspace, label: str, into: Path) -> Path:
    """A predict image that needs no model of the registry, built with `ws build` in pia's workspace, copied
    under its own name (``predict-hand-cpu.tar``) into *into*."""
    model = HAND_MODEL.replace("LABEL", label)
    sh(workspace, "cd /project/code && { [ -d hand-api ] || ws new api --prefix hand --interface classify "
                  f"--framework sklearn; }} && cd hand-api && cat > src/model.py <<'EOF'\n{model}\nEOF\n"
                  "rm -f /project/docker_image/predict-hand-cpu.tar && ws build")
    built = hub.data_root / "users" / user_dir_name(PUBLISHER) / PROJECT / "docker_image" / "predict-hand-cpu.tar"
    into.mkdir()
    return Path(shutil.copy(built, into))


def settled(page, done: str) -> None:
    """Wait until *done* (a JavaScript condition) holds, or the page says why it cannot."""
    page.wait_for_function(f"({done}) || !document.querySelector('#flash').classList.contains('d-none')",
                           timeout=600_000)
    assert page.locator("#flash").is_hidden(), page.inner_text("#flash")


def test_a_service_made_by_hand_serves_an_uploaded_image_and_is_redone_from_another(hub, workspace, library, page,
                                                                                   tmp_path):
    """Manual 2.7.1-2.7.3 and 2.7.10: a service's information, then its predict image as a tar; its interface
    comes from the image's labels; it is kept as a version of the algorithm it was built for; an online test
    calls it; a redo uploads the next image."""
    first = hand_made_image(hub, workspace, "hand-made", tmp_path / "first")
    login(page, hub)
    page.goto(f"{library['base']}services")
    page.click("#new-service")
    page.wait_for_url("**/services/new")
    page.fill("#name", "by-hand")
    page.fill("#description", "served from an uploaded predict image")
    page.set_input_files("#predict", str(first))
    shot(page, "services-01-new-by-hand")
    page.click("#create")
    settled(page, "/services\\/\\d+$/.test(location.pathname)")
    page.wait_for_selector("#status:has-text('running')", timeout=180_000)
    page.click("#test")
    page.wait_for_selector("#test-result:has-text('hand-made')", timeout=60_000)
    assert "HTTP 200" in page.inner_text("#test-result")
    shot(page, "services-02-by-hand-running")
    assert page.is_visible("#redo-image") and not page.is_visible("#redo")  # no model to take a newer version of

    second = hand_made_image(hub, workspace, "hand-made-2", tmp_path / "second")
    page.set_input_files("#predict", str(second))
    page.click("#redo-from-image")
    settled(page, "document.querySelector('#fields').textContent.includes('Revision2')")  # the service's revision
    page.wait_for_selector("#status:has-text('running')", timeout=180_000)
    page.click("#test")
    page.wait_for_selector("#test-result:has-text('hand-made-2')", timeout=60_000)
    shot(page, "services-03-by-hand-redone")
    service_id = int(page.url.rsplit("/", 1)[1])
    assert library["admin"]("DELETE", f"services/{service_id}").status_code == 204


def test_a_registered_env_is_offered_to_its_owner_and_starts_a_workspace(hub, library, engine, container_of,
                                                                       tmp_path):
    tar = tmp_path / "env.tar"
    with open(tar, "wb") as f:
        for chunk in engine.images.get("workspace-hub/python:latest").save(named=True):
            f.write(chunk)
    env = library[PUBLISHER]("POST", "envs", json={"name": "pia-env", "version": "1.0", "framework": "python",
                                                   "description": "python with pia's tools"}).json()
    r = library[PUBLISHER]("POST", f"envs/{env['id']}/images", files={"env": ("env.tar", tar.open("rb"))})
    assert r.status_code == 202, r.text
    env = wait_status(library[PUBLISHER], env["id"], "envs")
    assert env["status"] == "ready" and re.fullmatch(r"envs/[0-9a-f]{32}/pia-env:1\.0", env["image"]), env["errors"]
    assert library[PUBLISHER]("POST", f"envs/{env['id']}/online").ok

    r = hub.api("POST", f"/users/{OTHER}/servers/notmine", json={"user_options": {"env": "pia-env"}})
    assert r.status_code == 400 and "Unknown base env 'pia-env'" in r.text  # private to pia
    server = hub.start_project(PUBLISHER, "own-env", env="pia-env")
    assert server["ready"]
    container = container_of(PUBLISHER, "own-env")
    assert env["image"] in container.image.tags
    # an env outside the catalog gets the registered-env limits, not whatever its owner wished
    assert container.attrs["HostConfig"]["Memory"] == 4 * 1024**3
    hub.stop_project(PUBLISHER, "own-env")

    # once public, others see it on their form, labelled with its owner (an admin opens quinn's form)
    assert library[PUBLISHER]("PATCH", f"envs/{env['id']}", json={"visibility": "public"}).ok
    form = hub.login("admin", hub.admin_password).get(f"{hub.url}/hub/spawn/{OTHER}/form-check", timeout=60)
    assert form.status_code == 200 and f"pia-env 1.0, by {PUBLISHER}" in form.text


def test_with_a_registry_configured_validated_images_are_pushed_there(registry, engine, tmp_path):
    from harness.imagetars import minimal_image
    from harness.library import running_service

    with running_service(tmp_path / "data", registry=registry) as (_, base):
        admin = Client(base, "admin-token")
        item = admin("POST", "algorithms", json={"name": "pushed", "version": "1.0", "smoke": False}).json()
        tar = minimal_image(tmp_path / "train-pushed-cpu.tar", algorithm={"name": "pushed", "kind": "train"})
        assert admin("POST", f"algorithms/{item['id']}/images", files={"train": (tar.name, tar.open("rb"))}).ok
        item = wait_status(admin, item["id"])
    assert item["status"] == "ready", item["errors"]
    tag = item["images"][0]["tag"]
    key = tag.split("/")[2]
    assert tag.startswith(f"{registry}/algorithms/{key}/pushed@sha256:")  # by digest: what nodes pull is what was checked
    assert engine.images.get(tag).id == engine.images.get(f"{registry}/algorithms/{key}/pushed:1.0-train").id
    tags = json.loads(urllib.request.urlopen(f"http://{registry}/v2/algorithms/{key}/pushed/tags/list").read())
    assert tags["tags"] == ["1.0-train"]

"""A hostile but approved user attacks the real hub, library and engine; every attack fails.

mallory is an ordinary user of a running hub.  Each test is one hole from the
security review, tried as she would try it, then checked two ways: the attack
gets a clear refusal (a 4xx or a validation error that names the rule), and
nothing changed that she should not change (tags keep their image IDs, no host
file was copied, no folder is shared, no private item was listed, memory stays
bounded).
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from harness.imagetars import get, member, put, read_members, write_members
from harness.library import Client
from harness.waiting import wait_until
from workspace_hub.executor import LABEL_KEY, LABEL_RUN

pytestmark = pytest.mark.docker

MALLORY, VICTIM = "mallory", "victor"
TRAIN = "import os; open('/project/model/model.txt', 'w').write('w=1')"
TRAIN_LINKS = ("import os; open('/project/model/model.txt', 'w').write('w=1'); "
               "os.symlink('/proc/self/environ', '/project/model/environ'); "
               "os.symlink('/etc/shadow', '/project/model/shadow'); "
               "os.symlink('/dev/zero', '/project/model/zero'); os.mkfifo('/project/model/fifo')")
TRAIN_FAILS = "raise SystemExit(3)"


@pytest.fixture(scope="module")
def users(hub):
    for user in (MALLORY, VICTIM):
        hub.api("POST", f"/users/{user}")
    base = f"{hub.url}/services/library/"
    return {user: Client(base, hub.user_token(user)) for user in (MALLORY, VICTIM)} | {"base": base}


@pytest.fixture(scope="module")
def image(image_tar):
    """Factory: the members of a tiny image running *script* (see the ``image`` fixture)."""
    return lambda name, script, kind="train", labels="": read_members(image_tar(kind, name, script, labels))


def protected_tags(engine) -> dict[str, str]:
    """Every platform tag in the engine and the image it names."""
    return {tag: image.id for image in engine.images.list() for tag in image.tags
            if tag.startswith(("workspace-hub/", "algorithms/", "envs/"))}


def publish(client: Client, tmp_path, name: str, members, version: str = "1.0", role: str = "train") -> dict:
    """Create an algorithm record and upload *members* as its *role* tar; wait for the verdict."""
    r = client("POST", "algorithms", json={"name": name, "version": version})
    assert r.status_code == 201, r.text
    item = r.json()["id"]
    path = write_members(tmp_path / f"{role}-{name}-cpu.tar", members)
    r = client("POST", f"algorithms/{item}/images", files={role: (path.name, path.open("rb"))})
    assert r.status_code == 202, r.text
    return wait_until(lambda: (data := client("GET", f"algorithms/{item}").json())["status"] != "validating" and data,
                      timeout=300, interval=0.5, what="validation")


def with_repo_tags(members, tags: list[str]):
    manifest = json.loads(get(members, "manifest.json"))
    manifest[0]["RepoTags"] = tags
    return put(members, "manifest.json", json.dumps(manifest).encode())


def test_1_an_upload_cannot_name_or_move_a_platform_tag(users, image, engine, tmp_path):
    before = protected_tags(engine)
    assert "workspace-hub/python:latest" in before
    hostile = ["workspace-hub/python:latest", "workspace-hub/pytorch:latest", "algorithms/victor/x:1.0-train"]
    passing = publish(users[MALLORY], tmp_path, "tagger", with_repo_tags(image("tagger", TRAIN), hostile))
    failing = publish(users[MALLORY], tmp_path, "breaker", with_repo_tags(image("breaker", TRAIN_FAILS), hostile))
    assert passing["status"] == "ready", passing["errors"]
    assert failing["status"] == "failed" and [e["code"] for e in failing["errors"]] == ["smoke-exit"]
    after = protected_tags(engine)
    assert {tag: after.get(tag) for tag in before} == before, "a platform tag moved or vanished"
    assert set(after) - set(before) == {i["tag"] for i in passing["images"]}, "the upload created another tag"
    assert not [t for image in engine.images.list() for t in image.tags if t.startswith("ws-smoke")]


def test_1_the_platform_namespaces_are_refused_as_pull_sources(users):
    for index, reference in enumerate(("workspace-hub/python:latest", "docker.io/workspace-hub/python",
                                       "algorithms/x/y:1", "index.docker.io/library/envs/z:1")):
        item = users[MALLORY]("POST", "algorithms", json={"name": "puller", "version": f"0.{index}"}).json()["id"]
        r = users[MALLORY]("POST", f"algorithms/{item}/pull", json={"reference": reference, "role": "train"})
        assert r.status_code == 400 and r.json()["error"]["code"] == "platform-name", r.text


def test_2_the_smoke_run_copies_no_host_file_through_links(users, image, hub, tmp_path):
    data = publish(users[MALLORY], tmp_path, "linker", image("linker", TRAIN_LINKS))
    assert data["status"] == "ready", data["errors"]
    models = hub.data_root / "library" / "models"
    files = {p.name for p in models.rglob("*") if p.is_file() or p.is_symlink()}
    assert "model.txt" in files
    assert not {"environ", "shadow", "zero", "fifo"} & files
    assert not [p for p in models.rglob("*") if p.is_symlink()]
    codes = {w["code"] for i in data["images"] for w in i["warnings"]}
    assert "model-skipped" in codes


def test_3_two_users_never_share_a_data_folder(hub, container_of, remove_workspaces_after):
    """`a.b` used to map to `a-b-2e7336dc`, which is also a valid user name of its own."""
    for user in ("a.b", "a-b-2e7336dc"):
        hub.api("POST", f"/users/{user}")
        hub.start_project(user, "shared", env="python")
    first, second = container_of("a.b", "shared"), container_of("a-b-2e7336dc", "shared")
    code, _ = first.exec_run(["sh", "-c", "echo secret > /project/code/mine.txt"], user="1000")
    assert code == 0
    code, out = second.exec_run(["ls", "/project/code"], user="1000")
    assert code == 0 and b"mine.txt" not in out
    folders = {m["Source"] for c in (first, second) for m in c.attrs["Mounts"] if m["Destination"] == "/project/code"}
    assert len(folders) == 2


def test_4_owners_whose_names_slug_alike_get_their_own_images_and_models(hub, image, engine, tmp_path):
    base = f"{hub.url}/services/library/"
    clients = {}
    for user in ("a@b", "a:b"):
        hub.api("POST", f"/users/{user}")
        clients[user] = Client(base, hub.user_token(user))
    first = publish(clients["a@b"], tmp_path, "twin", image("twin-one", TRAIN))
    second = publish(clients["a:b"], tmp_path, "twin", image("twin-two", "open('/project/model/m', 'w')"))
    assert first["status"] == second["status"] == "ready"
    tags = [first["images"][0]["tag"], second["images"][0]["tag"]]
    assert tags[0] != tags[1]
    assert engine.images.get(tags[0]).id != engine.images.get(tags[1]).id
    # a deleted item's model folder goes with it; the next item never inherits it
    models = hub.data_root / "library" / "models"
    before = set(models.iterdir())
    assert clients["a@b"]("DELETE", f"algorithms/{first['id']}").status_code == 204
    assert len(set(models.iterdir())) == len(before) - 1
    assert tags[0] not in protected_tags(engine)
    remaining = set(models.iterdir())
    third = publish(clients["a:b"], tmp_path, "heir", image("heir", "open('/project/model/own', 'w')"))
    assert third["status"] == "ready"
    [new] = set(models.iterdir()) - remaining
    assert [p.name for p in new.iterdir()] == ["own"]


def test_5_a_user_named_like_the_hub_service_cannot_list_for_others(hub, users):
    hub.api("POST", "/users/service:library")
    impostor = Client(users["base"], hub.user_token("service:library"))
    r = impostor("GET", f"envs?for_user={VICTIM}")
    assert r.status_code == 403 and r.json()["error"]["code"] == "for-user"
    r = impostor("GET", f"algorithms?for_user={VICTIM}")
    assert r.status_code == 403


def service_rss_kib(hub) -> int:
    status = (Path("/proc") / str(hub.service_pid()) / "status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS")).split()[1])


def test_6_an_anonymous_large_body_is_refused_without_growing_the_service(hub, users):
    import requests

    before = service_rss_kib(hub)
    chunk = b"x" * (1024 * 1024)

    def body():
        for _ in range(300):
            yield chunk

    for path in ("api/me", "api/algorithms", "api/algorithms/1/images"):
        try:
            r = requests.post(users["base"] + path, data=body(), timeout=60,
                              headers={"Content-Type": "application/json"})
            # 503: the service closed the connection at its body limit, and the hub's proxy says so
            assert r.status_code in (400, 401, 403, 413, 503), r.status_code
        except requests.ConnectionError:
            pass  # refused at once: the server closed the connection
    assert service_rss_kib(hub) - before < 64 * 1024, "the service buffered the body"
    assert users[MALLORY]("GET", "me").status_code == 200, "the service did not survive"


def test_7_an_archive_docker_would_read_differently_is_refused(users, image, tmp_path):
    members = image("alias", TRAIN)
    aliased = members + [member("././manifest.json", get(members, "manifest.json"))]
    data = publish(users[MALLORY], tmp_path, "alias", aliased)
    assert data["status"] == "failed" and "outer-duplicate" in {e["code"] for e in data["errors"]}


SERVE = textwrap.dedent("""
    import http.server, json, os
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == '/health' else 404); self.end_headers()
        def do_POST(self):
            self.rfile.read(int(self.headers['Content-Length']))
            self.send_response(200); self.send_header('Content-Type', 'application/json')
            self.end_headers(); self.wfile.write(b'{"label": "sports"}')
    http.server.HTTPServer((os.environ['HOST'], int(os.environ['PORT'])), H).serve_forever()
""")
INTERFACE = {"name": "classify", "method": "POST", "params": [{"name": "text", "type": "String", "test_value": "x"}]}


def test_online_test_replicas_run_off_the_host_network(users, image, engine, tmp_path):
    """A workspace shares the host network, so a predict container there would answer anyone: none is."""
    doc = {"name": "echo", "kind": "predict", "interface": INTERFACE}
    labels = (f"ai.platform.port=8080 ai.platform.interface={json.dumps(json.dumps(INTERFACE))} "
              f"ai.platform.algorithm={json.dumps(json.dumps(doc))}")
    data = publish(users[MALLORY], tmp_path, "echo", image("echo", SERVE, "predict", labels), role="predict")
    assert data["status"] == "ready", data["errors"]
    answer = users[MALLORY]("POST", f"algorithms/{data['id']}/test", json={}).json()
    assert answer == {"status": 200, "response": {"label": "sports"}}
    serving = {"label": [f"{LABEL_RUN}=test", f"{LABEL_KEY}={data['images'][0]['tag'].split('/')[1]}"]}  # its key
    [replica] = engine.containers.list(filters=serving)
    assert replica.attrs["HostConfig"]["NetworkMode"] == "none"
    assert replica.attrs["NetworkSettings"]["Ports"] in ({}, None)
    assert users[MALLORY]("DELETE", f"algorithms/{data['id']}").status_code == 204
    assert not engine.containers.list(all=True, filters=serving)


def test_1_a_name_in_an_upload_never_reaches_the_engine(users, image, engine, tmp_path):
    """The engine gets the library's own manifest, without the upload's RepoTags (or OCI ref.name)."""
    members = image("annotated", TRAIN)
    members = with_repo_tags(members, ["annotated-by-mallory:latest"])
    data = publish(users[MALLORY], tmp_path, "annotated", members)
    assert data["status"] == "ready"
    with pytest.raises(Exception):
        engine.images.get("annotated-by-mallory:latest")


def test_7_a_sparse_header_that_renames_a_member_is_refused(users, image, tmp_path):
    members = image("sparse", TRAIN)
    info, data = member("innocent.json", b"{}")
    info.pax_headers = {"GNU.sparse.name": "manifest.json"}
    result = publish(users[MALLORY], tmp_path, "sparse", members + [(info, data)])
    assert result["status"] == "failed" and "outer-sparse" in {e["code"] for e in result["errors"]}


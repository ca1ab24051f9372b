"""The library's REST API: who may do what, how bad input is refused, how status moves.

The service runs in-process with its real handlers, database (SQLite, and
Postgres when CI provides one), store and jobs; only the hub's identity check
is a stand-in (harness/library.py) and the engine load is skipped.  The real
hub, engine and browser are in tests/integration/test_publish_*.py.
"""

from __future__ import annotations

import re
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from harness.imagetars import minimal_image
from harness.waiting import wait_until
from harness.library import Client
from workspace_library.models import Algorithm, BaseEnv, Status, Visibility

def add(service, model=Algorithm, owner="olive", visibility=Visibility.private, status=Status.ready, **fields):
    """A row straight in the database, in the given state."""
    with service.sessions() as db:
        item = model(name=fields.pop("name", f"x{uuid.uuid4().hex[:10]}"), version="1.0", owner=owner,
                     visibility=visibility, status=status, errors=[], progress="", **fields)
        db.add(item)
        db.commit()
        return item.id


def reload(service, model, item_id):
    with service.sessions() as db:
        return db.get(model, item_id)


# ---- the authorization matrix: every endpoint x {anonymous, other user, owner, admin}

ROLES = ["anonymous", "other", "owner", "admin"]
ALGORITHM_CALLS = [
    ("GET", "", None),
    ("PATCH", "", {"description": "changed"}),
    ("POST", "/offline", None),
    ("POST", "/online", None),
    ("POST", "/test", {}),
    ("POST", "/pull", {"reference": "127.0.0.1:9/none:1", "role": "train"}),
    ("DELETE", "", None),
]
# expected status per role, for an item of each visibility (owner olive; preset items: admins only)
EXPECTED = {
    "private": {"anonymous": 401, "other": 404, "owner": "ok", "admin": "ok"},
    "public": {"anonymous": 401, "other": 403, "owner": "ok", "admin": "ok"},
    "preset": {"anonymous": 401, "other": 403, "owner": 403, "admin": "ok"},
}


def allowed(code: int) -> bool:
    """Past the authorization check: success, or a refusal about state or input, never 401/403/404."""
    return code not in (401, 403, 404, 500)


@pytest.mark.parametrize("visibility", list(EXPECTED))
@pytest.mark.parametrize("method,suffix,body", ALGORITHM_CALLS, ids=lambda v: v if isinstance(v, str) else "")
@pytest.mark.parametrize("role", ROLES)
def test_algorithm_authorization(library, as_, role, visibility, method, suffix, body):
    service, _ = library
    item = add(service, visibility=Visibility(visibility), status=Status.online if suffix == "/offline" else Status.ready)
    expected = EXPECTED[visibility][role]
    if (method == "GET" or suffix == "/test") and visibility != "private" and role != "anonymous":
        expected = "ok"  # public and preset items are visible to every user, and every user may test them
    r = as_[role](method, f"algorithms/{item}{suffix}", **({"json": body} if body is not None else {}))
    if expected == "ok":
        assert allowed(r.status_code), r.text
    else:
        assert r.status_code == expected, r.text
        assert r.json()["error"]["code"] and r.json()["error"]["message"]


@pytest.mark.parametrize("visibility", list(EXPECTED))
@pytest.mark.parametrize("method,suffix,body", [c for c in ALGORITHM_CALLS if c[1] not in ("/test",)],
                         ids=lambda v: v if isinstance(v, str) else "")
@pytest.mark.parametrize("role", ROLES)
def test_env_authorization(library, as_, role, visibility, method, suffix, body):
    service, _ = library
    if body and "role" in body:
        body = {"reference": body["reference"]}
    item = add(service, BaseEnv, visibility=Visibility(visibility), status=Status.online if suffix == "/offline" else Status.ready)
    expected = EXPECTED[visibility][role]
    if method == "GET" and visibility != "private" and role != "anonymous":
        expected = "ok"
    r = as_[role](method, f"envs/{item}{suffix}", **({"json": body} if body is not None else {}))
    if expected == "ok":
        assert allowed(r.status_code), r.text
    else:
        assert r.status_code == expected, r.text


@pytest.mark.parametrize("kind", ["algorithms", "envs"])
@pytest.mark.parametrize("visibility", list(EXPECTED))
@pytest.mark.parametrize("role", ROLES)
def test_upload_authorization(library, as_, tmp_path, kind, visibility, role):
    service, _ = library
    item = add(service, Algorithm if kind == "algorithms" else BaseEnv, visibility=Visibility(visibility),
               status=Status.draft)
    part = "train" if kind == "algorithms" else "env"
    tar = minimal_image(tmp_path / "train-x-cpu.tar")
    r = as_[role]("POST", f"{kind}/{item}/images", files={part: tar.open("rb")})
    expected = EXPECTED[visibility][role]
    assert allowed(r.status_code) if expected == "ok" else r.status_code == expected, r.text


@pytest.mark.parametrize("kind", ["algorithms", "envs"])
def test_lists_show_private_items_to_their_owner_and_admins_only(library, as_, kind):
    service, _ = library
    model = Algorithm if kind == "algorithms" else BaseEnv
    name = f"secret{uuid.uuid4().hex[:6]}"
    add(service, model, name=name)
    seen = {role: as_[role]("GET", f"{kind}?q={name}").json()["total"] for role in ("other", "owner", "admin")}
    assert seen == {"other": 0, "owner": 1, "admin": 1}
    assert as_["anonymous"]("GET", kind).status_code == 401


@pytest.mark.parametrize("kind", ["algorithms", "envs"])
@pytest.mark.parametrize("role,expected", [("owner", 403), ("admin", 201)])
def test_only_admins_publish_presets(as_, kind, role, expected):
    r = as_[role]("POST", kind, json={"name": f"p{uuid.uuid4().hex[:8]}", "version": "1", "visibility": "preset"})
    assert r.status_code == expected, r.text


def test_only_admins_skip_the_smoke_run(as_):
    body = {"name": f"s{uuid.uuid4().hex[:8]}", "version": "1", "smoke": False}
    assert as_["owner"]("POST", "algorithms", json=body).json()["error"]["code"] == "smoke-admin"
    assert as_["admin"]("POST", "algorithms", json=body).status_code == 201


def test_only_the_hub_lists_envs_on_behalf_of_a_user(library, as_):
    service, _ = library
    private = add(service, BaseEnv, name=f"mine{uuid.uuid4().hex[:6]}", status=Status.online)
    assert as_["other"]("GET", "envs?for_user=olive").status_code == 403
    names = {e["id"] for e in as_["hub"]("GET", "envs?for_user=olive&status=online&per_page=100").json()["items"]}
    assert private in names
    names = {e["id"] for e in as_["hub"]("GET", "envs?for_user=oscar&status=online&per_page=100").json()["items"]}
    assert private not in names


def test_the_static_catalog_is_seeded_as_online_presets(as_):
    envs = as_["other"]("GET", "envs?owner=workspace-hub&per_page=100").json()["items"]
    assert {"python", "pytorch", "tensorflow", "keras"} <= {e["name"] for e in envs}
    assert {e["status"] for e in envs} == {"online"} and {e["image"] for e in envs} >= {"workspace-hub/python:latest"}


# ---- input rules: 4xx naming the field, never a 500

BAD_ALGORITHMS = [
    ({"name": "Bad Name", "version": "1"}, "name"),
    ({"name": "ok", "version": "1 0"}, "version"),
    ({"name": "ok"}, "(top level)"),
    ({"name": "ok", "version": "1", "colour": "red"}, "(top level)"),
    ({"name": "ok", "version": "1", "visibility": "secret"}, "visibility"),
    ({"name": "ok", "version": "1", "purpose": {"first": "smell", "second": "x"}}, "purpose.first"),
    ({"name": "ok", "version": "1", "description": "x" * 2001}, "description"),
    ({"name": "ok", "version": "1", "train": {"env_vars": {"epochs": {"default": 1}}}}, "train.env_vars"),
    ({"name": "ok", "version": "1", "train": {"env_vars": {"EPOCHS": {"type": "Int", "default": 1}}}},
     "train.env_vars.EPOCHS.type"),
    ({"name": "ok", "version": "1", "predict": {"interface": {"name": "x", "method": "PUT", "params": []}}},
     "predict.interface.method"),
    ({"name": "ok", "version": "1", "predict": {"port": 70000}}, "predict.port"),
]


@pytest.mark.parametrize("body,field", BAD_ALGORITHMS)
def test_bad_fields_are_refused_by_name(as_, body, field):
    r = as_["owner"]("POST", "algorithms", json=body)
    assert r.status_code == 400
    assert r.json()["error"]["field"] == field and r.json()["error"]["message"].startswith(field)


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", "\udcff".encode("utf-8", "surrogatepass")])
def test_a_body_that_is_not_a_json_object_is_a_400(as_, body):
    r = as_["owner"]("POST", "algorithms", data=body)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid-json"


@pytest.mark.parametrize("query", ["page=0", "per_page=101", "page=x", "status=sleeping", "sort=colour",
                                   "q=" + "x" * 201, "visibility=everyone"])
def test_bad_list_queries_are_a_400(as_, query):
    r = as_["owner"]("GET", f"algorithms?{query}")
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid-query"


def test_unknown_paths_are_a_json_404(as_):
    r = as_["owner"]("GET", "nothing-here")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not-found"


# ---- status and versions

def test_a_version_is_published_once_and_the_loser_gets_a_clean_409(as_):
    body = {"name": f"race{uuid.uuid4().hex[:6]}", "version": "1.0"}
    barrier = threading.Barrier(2)

    def publish(_):
        barrier.wait()
        return as_["owner"]("POST", "algorithms", json=body)

    with ThreadPoolExecutor(2) as pool:
        codes = sorted(r.status_code for r in pool.map(publish, range(2)))
    assert codes == [201, 409]
    r = as_["owner"]("POST", "algorithms", json=body)
    assert r.json()["error"] == {"status": 409, "code": "exists", "field": "version",
                                 "message": f"olive/{body['name']} version 1.0 exists; publish a new version."}


def test_once_online_a_version_is_frozen_and_cannot_be_deleted(library, as_):
    service, _ = library
    item = add(service, status=Status.ready)
    assert as_["owner"]("POST", f"algorithms/{item}/online").json()["status"] == "online"
    r = as_["owner"]("PATCH", f"algorithms/{item}", json={"train": {"args": ["--fast"]}})
    assert r.status_code == 409 and r.json()["error"]["code"] == "immutable"
    assert as_["owner"]("PATCH", f"algorithms/{item}", json={"visibility": "public"}).status_code == 200
    assert as_["owner"]("DELETE", f"algorithms/{item}").json()["error"]["code"] == "in-use"
    assert as_["owner"]("POST", f"algorithms/{item}/offline").json()["status"] == "offline"
    assert as_["owner"]("DELETE", f"algorithms/{item}").status_code == 204


@pytest.mark.parametrize("status", [Status.draft, Status.validating, Status.failed])
def test_only_ready_or_offline_items_go_online(library, as_, status):
    service, _ = library
    item = add(service, status=status)
    r = as_["owner"]("POST", f"algorithms/{item}/online")
    assert r.status_code == 409 and r.json()["error"]["code"] == "status"


# ---- uploads

def upload(client, item, tar, part="train"):
    return client("POST", f"algorithms/{item}/images", files={part: (tar.name, tar.open("rb"))})


def wait_final(client, item, kind="algorithms"):
    return wait_until(lambda: (data := client("GET", f"{kind}/{item}").json())["status"] not in
                      ("validating", "draft") and data, interval=0.1, what=f"a final status of {kind}/{item}")


def test_an_uploaded_image_is_validated_and_its_labels_fill_the_record(as_, tmp_path):
    algorithm = {"name": "digits", "version": "1.0", "kind": "train", "purpose": {"first": "image", "second":
                 "classification"}, "command": ["python", "train.py"], "device": "cpu", "framework": "pytorch",
                 "env_vars": {"EPOCHS": {"type": "Integer", "default": 5}}, "transfer_training": True}
    item = as_["owner"]("POST", "algorithms", json={"name": "digits", "version": uuid.uuid4().hex[:8]}).json()["id"]
    r = upload(as_["owner"], item, minimal_image(tmp_path / "train-digits-cpu.tar", algorithm=algorithm))
    assert r.status_code == 202 and r.json()["status"] == "validating"
    data = wait_final(as_["owner"], item)
    assert data["status"] == "ready", data["errors"]
    assert data["train"]["env_vars"]["EPOCHS"]["default"] == 5 and data["train"]["command"] == ["python", "train.py"]
    assert data["purpose"] == {"first": "image", "second": "classification"} and data["transfer_training"]
    assert re.fullmatch(rf"algorithms/[0-9a-f]{{32}}/digits:{data['version']}-train", data["images"][0]["tag"])


def test_a_bad_tar_fails_with_the_validators_messages(as_, tmp_path):
    item = as_["owner"]("POST", "algorithms", json={"name": "junk", "version": uuid.uuid4().hex[:8]}).json()["id"]
    bad = tmp_path / "train-junk-cpu.tar"
    bad.write_bytes(b"this is not a tar" * 100)
    assert upload(as_["owner"], item, bad).status_code == 202
    data = wait_final(as_["owner"], item)
    assert data["status"] == "failed"
    assert [(e["image"], e["code"]) for e in data["errors"]] == [("train", "not-a-tar")]


def test_an_image_built_for_another_algorithm_is_refused(as_, tmp_path):
    item = as_["owner"]("POST", "algorithms", json={"name": "mine", "version": uuid.uuid4().hex[:8]}).json()["id"]
    tar = minimal_image(tmp_path / "train-theirs-cpu.tar", algorithm={"name": "theirs", "kind": "train"})
    upload(as_["owner"], item, tar)
    assert [e["code"] for e in wait_final(as_["owner"], item)["errors"]] == ["label-name"]


def test_uploads_must_be_multipart_with_a_named_part(library, as_, tmp_path):
    service, _ = library
    item = add(service, status=Status.draft)
    r = as_["owner"]("POST", f"algorithms/{item}/images", data=b"raw", headers={"Content-Type": "application/x-tar"})
    assert r.status_code == 415 and "multipart/form-data" in r.json()["error"]["message"]
    r = as_["owner"]("POST", f"algorithms/{item}/images", files={"weights": ("w.tar", b"x")})
    assert r.status_code == 400 and r.json()["error"]["code"] == "part-name"


def test_an_upload_over_the_limit_is_refused_and_leaves_nothing(library, as_, tmp_path):
    service, _ = library
    item = add(service, status=Status.draft)
    limit, service.max_upload_bytes = service.max_upload_bytes, 1000
    try:
        r = as_["owner"]("POST", f"algorithms/{item}/images", files={"train": ("t.tar", b"x" * 5000)})
    finally:
        service.max_upload_bytes = limit
    assert r.status_code == 413 and r.json()["error"]["code"] == "too-large"
    assert reload(service, Algorithm, item).status == Status.draft
    assert list((service.store.root / "incoming").iterdir()) == []


def test_an_interrupted_upload_never_becomes_a_record(library, tmp_path):
    import socket

    service, base = library
    item = add(service, status=Status.draft)
    host, port = base.split("//")[1].split("/")[0].split(":")
    body = b"--B\r\nContent-Disposition: form-data; name=\"train\"; filename=\"t.tar\"\r\n\r\n" + b"x" * 200_000
    with socket.create_connection((host, int(port))) as s:
        s.sendall(f"POST /services/library/api/algorithms/{item}/images HTTP/1.1\r\nHost: x\r\n"
                  "Authorization: token owner-token\r\nContent-Type: multipart/form-data; boundary=B\r\n"
                  f"Content-Length: {len(body) + 1_000_000}\r\n\r\n".encode() + body)
        wait_until(lambda: list((service.store.root / "incoming").iterdir()), 10, 0.05, "the upload to start")
    wait_until(lambda: not list((service.store.root / "incoming").iterdir()), 10, 0.05,
               "the partial upload to be removed")
    algorithm = Client(base, "owner-token")("GET", f"algorithms/{item}").json()
    assert algorithm["status"] == "draft" and algorithm["images"] == []


def test_twenty_parallel_publishes_all_end_in_a_final_state(as_, tmp_path):
    tar = minimal_image(tmp_path / "train-many-cpu.tar", algorithm={"name": "many", "kind": "train"})

    def publish(i):
        item = as_["owner"]("POST", "algorithms", json={"name": "many", "version": f"{uuid.uuid4().hex[:6]}.{i}"})
        assert item.status_code == 201, item.text
        assert upload(as_["owner"], item.json()["id"], tar).status_code == 202
        return wait_final(as_["owner"], item.json()["id"])["status"]

    with ThreadPoolExecutor(20) as pool:
        assert list(pool.map(publish, range(20))) == ["ready"] * 20


# ---- recovery after a crash

def test_validating_items_are_resumed_or_failed_when_the_service_restarts(library, tmp_path):
    service, _ = library
    tar = minimal_image(tmp_path / "train-r-cpu.tar", algorithm={"name": "r", "kind": "train"})
    with tar.open("rb") as f:
        digest, size = service.store.copy_in(f, 10**9)
    from workspace_library.models import Image

    with service.sessions() as db:
        kept = Algorithm(name="r", version=uuid.uuid4().hex[:6], owner="olive", status=Status.validating, errors=[],
                         smoke=False, progress="checking", images=[Image(role="train", filename="train-r-cpu.tar",
                                                            sha256=digest, size=size)])
        lost = Algorithm(name="r", version=uuid.uuid4().hex[:6], owner="olive", status=Status.validating, errors=[],
                         smoke=False, progress="checking", images=[Image(role="train", filename="train-r-cpu.tar",
                                                            sha256="0" * 64, size=1)])
        db.add_all([kept, lost])
        db.commit()
    (service.store.root / "incoming" / "crashed.part").write_bytes(b"half")
    assert kept.id in service.validations.recover()
    assert service.store.clean_incoming() and not list((service.store.root / "incoming").iterdir())
    service.validations.pool.submit(lambda: None).result()
    wait_until(lambda: reload(service, Algorithm, kept.id).status != Status.validating, 30, 0.1, "the resumed job")
    resumed = reload(service, Algorithm, kept.id)
    assert resumed.status == Status.ready, resumed.errors
    failed = reload(service, Algorithm, lost.id)
    assert failed.status == Status.failed and failed.errors[0]["code"] == "lost"


@pytest.mark.parametrize("page,model,action", [("algorithms/{}", Algorithm, 'id="delete"'),
                                               ("algorithms/{}/edit", Algorithm, 'id="edit-form"'),
                                               ("envs/{}", BaseEnv, 'id="delete"')])
def test_the_page_of_an_item_you_cannot_see_is_the_error_alone(library, page, model, action):
    """Issue 25, bug 12: the page of another user's private item used to render every action (online,
    offline, edit, delete) under the error.  Now it is the refusal alone, as a page, not JSON."""
    service, base = library
    hidden = add(service, model)  # olive's, private
    for token, status in (("other-token", 404), ("owner-token", 200)):
        r = requests.get(base + page.format(hidden), headers={"Authorization": f"token {token}"}, timeout=30)
        assert r.status_code == status and r.headers["Content-Type"].startswith("text/html"), r.text
        assert (action in r.text) == (status == 200)
        assert ('id="page-error"' in r.text) == (status == 404)
    if page.endswith("/edit"):  # seeing a public algorithm is not editing it: the edit page is the owner's
        add_public = add(service, model, visibility=Visibility.public)
        r = requests.get(base + page.format(add_public), headers={"Authorization": "token other-token"}, timeout=30)
        assert r.status_code == 403 and action not in r.text and 'id="page-error"' in r.text
    r = requests.get(base + page.format(999_999_999), headers={"Authorization": "token owner-token"}, timeout=30)
    assert r.status_code == 404 and 'id="page-error"' in r.text and '{"error": {' not in r.text


def test_an_env_this_host_cannot_start_says_why_and_how_to_build_it(library, as_, monkeypatch):
    """Issue 25, bug 8: the Base envs page showed pytorch and the GPU envs as online on a host where they were
    not built and that has no GPU.  They stay online (an admin's choice), and each says why no workspace can
    start from it here."""
    service, _ = library
    monkeypatch.setattr(service.executor, "has_image", lambda image: image == "workspace-hub/python:latest")
    monkeypatch.setattr(service, "gpu", False)
    listed = as_["owner"]("GET", "envs", params={"per_page": 100, "version": "catalog"}).json()["items"]
    envs = {e["name"]: e for e in listed}
    assert envs["python"]["unavailable"] == ""
    assert envs["pytorch"]["unavailable"] == "not built on this host: run `ws envs build pytorch`"
    assert envs["pytorch-gpu"]["unavailable"] == "needs a GPU: this host's engine has no GPU runtime"
    assert envs["pytorch"]["status"] == "online"
    one = as_["owner"]("GET", f"envs/{envs['pytorch']['id']}").json()
    assert one["unavailable"] == envs["pytorch"]["unavailable"]

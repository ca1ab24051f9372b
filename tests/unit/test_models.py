"""The model registry on the real service (in-process, no engine): registration, aliases and their history,
sharing, downloads with Range, deletion that frees only unreferenced objects, transfer training, authorization."""

import io
import os
import tarfile
import uuid
import zipfile

import pytest

from workspace_library.models import (Algorithm, Dataset, Image, ImageStatus, Model, Run, RunStatus, Service,
                                      ServiceStatus, Status, Visibility)
from workspace_library.registry.rules import register

from .test_library_api import EXPECTED, ROLES, allowed


def trained(service, tmp_path, files: dict, name="news", owner="olive", transfer=False) -> int:
    """A succeeded run of an online algorithm whose model folder holds *files*, registered; the model's id."""
    folder = tmp_path / uuid.uuid4().hex
    folder.mkdir()
    for path, data in files.items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_bytes(data)
    with service.sessions() as db:
        algorithm = Algorithm(name=f"a{uuid.uuid4().hex[:8]}", version="1", owner=owner, visibility=Visibility.public,
                              status=Status.online, errors=[], progress="", transfer_training=transfer,
                              train={"command": ["python3"], "env_vars": {"EPOCHS": {"type": "Integer", "default": 1}}})
        algorithm.images.append(Image(role="train", filename="train-a-cpu.tar", sha256="0" * 64, size=1,
                                      tag="algorithms/x/a:1-train", status=ImageStatus.valid))
        dataset = Dataset(name="d", version=uuid.uuid4().hex[:8], owner=owner, visibility=Visibility.public,
                          status=Status.online, errors=[], progress="", format="dir", test_mode="ratio", uploads={},
                          size=0, manifests={"train": "b" * 64}, report={})
        db.add_all([algorithm, dataset])
        db.flush()
        run = Run(name=name, owner=owner, status=RunStatus.succeeded, algorithm_id=algorithm.id, dataset_id=dataset.id,
                  algorithm_label="a", dataset_label="d", image="algorithms/x/a:1-train",
                  dataset_manifests={}, hyperparameters={"EPOCHS": "3"}, resources={"device": "cpu"},
                  metrics={"accuracy": 0.9}, seed=1)
        db.add(run)
        db.flush()
        model = register(db, service.imports.objects, run, folder)
        db.commit()
        return model.id


def test_a_run_registers_regular_files_only_as_the_next_version(library, tmp_path):
    service, _ = library
    first = trained(service, tmp_path, {"model.pkl": b"weights"}, name="linked")
    folder = tmp_path / "hostile"
    folder.mkdir()
    (folder / "model.pkl").write_bytes(b"weights 2")
    os.symlink("/etc/shadow", folder / "shadow")
    os.symlink("/etc", folder / "etc")
    os.mkfifo(folder / "fifo")
    with service.sessions() as db:
        run = db.get(Run, db.get(Model, first).run_id)
        model = register(db, service.imports.objects, run, folder)
        db.commit()
        assert model.version == "2" and model.files == 1
        assert service.imports.objects.manifest(model.manifest) == [
            ("model.pkl", __import__("hashlib").sha256(b"weights 2").hexdigest(), 9)]
        assert (service.imports.objects.tree(model.manifest) / "model.pkl").read_bytes() == b"weights 2"


def test_aliases_move_and_keep_their_history(library, as_, tmp_path):
    service, _ = library
    v1 = trained(service, tmp_path, {"m": b"1"}, name="aliased")
    v2 = trained(service, tmp_path, {"m": b"2"}, name="aliased")
    owner = as_["owner"]
    assert owner("PUT", f"models/{v1}/aliases/production").json()["aliases"] == ["production"]
    assert owner("PUT", f"models/{v2}/aliases/production").json()["aliases"] == ["production"]
    assert owner("GET", f"models/{v1}").json()["aliases"] == []
    history = owner("DELETE", f"models/{v2}/aliases/production").json()["alias_history"]
    assert [(e["alias"], e["version"]) for e in history] == [("production", None), ("production", "2"),
                                                            ("production", "1")]
    bad = owner("PUT", f"models/{v1}/aliases/Prod!")
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "alias"


def test_sharing_a_private_model_with_one_user(library, as_, tmp_path):
    service, _ = library
    model = trained(service, tmp_path, {"m": b"secret"}, name="shared")
    assert as_["other"]("GET", f"models/{model}").status_code == 404
    assert model not in [m["id"] for m in as_["other"]("GET", "models").json()["items"]]
    as_["owner"]("POST", f"models/{model}/share", json={"user": "oscar"})
    assert as_["other"]("GET", f"models/{model}").status_code == 200
    assert model in [m["id"] for m in as_["other"]("GET", "models").json()["items"]]
    assert as_["other"]("PUT", f"models/{model}/aliases/mine").status_code == 403  # seeing is not owning
    as_["owner"]("DELETE", f"models/{model}/share/oscar")
    assert as_["other"]("GET", f"models/{model}").status_code == 404


def test_downloads_and_ranges(library, as_, tmp_path):
    service, _ = library
    files = {"model.pkl": bytes(range(256)) * 40, "config/labels.txt": b"cats\ndogs\n"}
    model = trained(service, tmp_path, files, name="downloaded")
    owner = as_["owner"]
    with zipfile.ZipFile(io.BytesIO(owner("GET", f"models/{model}/download").content)) as z:
        assert {n: z.read(n) for n in z.namelist()} == files
    with tarfile.open(fileobj=io.BytesIO(owner("GET", f"models/{model}/download",
                                               params={"format": "tar.gz"}).content)) as t:
        assert {m.name: t.extractfile(m).read() for m in t.getmembers()} == files
    part = owner("GET", f"models/{model}/files/model.pkl", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == files["model.pkl"][100:200]
    assert part.headers["Content-Range"] == f"bytes 100-199/{len(files['model.pkl'])}"
    tail = owner("GET", f"models/{model}/files/model.pkl", headers={"Range": "bytes=-10"})
    assert tail.content == files["model.pkl"][-10:]
    assert owner("GET", f"models/{model}/files/model.pkl", headers={"Range": "bytes=99999-"}).status_code == 416


def test_deleting_frees_exactly_what_nothing_else_uses(library, as_, tmp_path):
    service, _ = library
    objects = service.imports.objects
    shared, mine = b"shared weights", b"only in v2"
    v1 = trained(service, tmp_path, {"a": shared}, name="collected")
    v2 = trained(service, tmp_path, {"a": shared, "b": mine}, name="collected")
    with service.sessions() as db:
        manifest = db.get(Model, v2).manifest
    expected = sorted([manifest, __import__("hashlib").sha256(mine).hexdigest()])
    releases = {"bytes": len(shared) + len(mine), "files": 2}
    # the owner is told their own usage the delete releases, never which stored objects go
    dry = as_["owner"]("DELETE", f"models/{v2}", params={"dry_run": "1"}).json()
    assert dry == {"dry_run": True, "releases": releases}
    assert as_["owner"]("GET", f"models/{v2}").status_code == 200  # a dry run deletes nothing
    # an admin's dry run also lists the objects freed, which the owner's never does
    assert as_["admin"]("DELETE", f"models/{v2}", params={"dry_run": "1"}).json()["freed"] == expected
    assert as_["owner"]("DELETE", f"models/{v2}").json() == {"dry_run": False, "releases": releases}
    assert all(not objects.path(d).exists() for d in expected)
    with zipfile.ZipFile(io.BytesIO(as_["owner"]("GET", f"models/{v1}/download").content)) as z:
        assert z.read("a") == shared


def test_transfer_training_needs_an_algorithm_that_supports_it(library, as_, tmp_path):
    service, _ = library
    refused = trained(service, tmp_path, {"m": b"x"}, name="plain", transfer=False)
    r = as_["owner"]("POST", f"models/{refused}/transfer", json={})
    assert r.status_code == 409 and r.json()["error"]["code"] == "no-transfer"
    model = trained(service, tmp_path, {"m": b"x"}, name="transferable", transfer=True)
    run = as_["owner"]("POST", f"models/{model}/transfer", json={}).json()
    assert (run["status"], run["parent_model"], run["hyperparameters"]) == ("queued", model, {"EPOCHS": "3"})
    with service.sessions() as db:
        assert db.get(Run, run["id"]).parent_manifest == db.get(Model, model).manifest


MODEL_CALLS = [
    ("GET", "", None), ("PATCH", "", {"description": "changed"}), ("DELETE", "", None),
    ("PUT", "/aliases/production", None), ("POST", "/share", {"user": "someone"}),
    ("GET", "/download", None), ("GET", "/files/m", None), ("POST", "/transfer", {}),
]


@pytest.mark.parametrize("visibility", list(EXPECTED))
@pytest.mark.parametrize("method,suffix,body", MODEL_CALLS, ids=lambda v: v if isinstance(v, str) else "")
@pytest.mark.parametrize("role", ROLES)
def test_model_authorization(library, as_, tmp_path, role, visibility, method, suffix, body):
    service, _ = library
    model = trained(service, tmp_path, {"m": b"x"}, name=f"m{uuid.uuid4().hex[:6]}", transfer=True)
    with service.sessions() as db:
        db.get(Model, model).visibility = Visibility(visibility)
        db.commit()
    expected = EXPECTED[visibility][role]
    if (method == "GET" or suffix == "/transfer") and visibility != "private" and role != "anonymous":
        expected = "ok"  # anyone may read, download and train from a public or preset model
    r = as_[role](method, f"models/{model}{suffix}", **({"json": body} if body is not None else {}))
    if expected == "ok":
        assert allowed(r.status_code), r.text
    else:
        assert r.status_code == expected, r.text
        with service.sessions() as db:
            assert db.get(Model, model) is not None and db.get(Model, model).description == ""


def test_a_model_a_service_serves_is_not_deleted(library, as_, tmp_path):
    service, _ = library
    model = trained(service, tmp_path, {"m": b"served"}, name="served")
    with service.sessions() as db:
        db.add(Service(name="uses-it", version="1", owner="olive", visibility=Visibility.private,
                       status=Status.online, errors=[], progress="", model_id=model, image="i", interface={},
                       replicas=0, state=ServiceStatus.stopped, message="", revision=1))
        db.commit()
    r = as_["owner"]("DELETE", f"models/{model}")
    assert r.status_code == 409 and r.json()["error"]["code"] == "in-use" and "uses-it" in r.json()["error"]["message"]


def test_a_model_folder_is_uploaded_by_hand_under_the_dataset_rules(library, as_, tmp_path):
    files = {"model.pkl": b"weights", "config/labels.txt": b"cats\ndogs\n"}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    r = as_["owner"]("POST", "models/upload", params={"name": "by-hand", "version": "1"}, data=buffer.getvalue())
    assert r.status_code == 201, r.text
    model = r.json()
    assert (model["files"], model["lineage"]) == (2, {"uploaded_by": "olive"})
    with zipfile.ZipFile(io.BytesIO(as_["owner"]("GET", f"models/{model['id']}/download").content)) as z:
        assert {n: z.read(n) for n in z.namelist()} == files
    again = as_["owner"]("POST", "models/upload", params={"name": "by-hand", "version": "1"}, data=buffer.getvalue())
    assert again.status_code == 409
    slip = io.BytesIO()
    with zipfile.ZipFile(slip, "w") as z:
        z.writestr("../../etc/cron.d/evil", "x")
    refused = as_["owner"]("POST", "models/upload", params={"name": "slip"}, data=slip.getvalue())
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "archive-name"
    assert as_["anonymous"]("POST", "models/upload", params={"name": "anon"}, data=b"x").status_code == 401


def test_the_model_a_run_registered_is_found_by_its_run(library, as_, tmp_path):
    """The run page links the model by name and version (issue 25, bug 10: it showed a storage path)."""
    service, _ = library
    model_id = trained(service, tmp_path, {"model.pkl": b"w"}, name=f"by-run-{uuid.uuid4().hex[:6]}")
    with service.sessions() as db:
        run_id = db.get(Model, model_id).run_id
    found = as_["owner"]("GET", "models", params={"run": run_id}).json()["items"]
    assert [m["id"] for m in found] == [model_id]
    assert as_["other"]("GET", "models", params={"run": run_id}).json()["items"] == []  # private stays private
    assert as_["owner"]("GET", "models", params={"run": "x"}).json()["error"]["code"] == "invalid-query"


def test_the_shared_model_center_lists_what_others_shared_and_mine_lists_my_own(library, as_, tmp_path):
    """Manual 2.4: a shared list from which others download or deploy; the owner's own models apart."""
    service, _ = library
    name = f"m{uuid.uuid4().hex[:8]}"
    mine = trained(service, tmp_path, {"model.pkl": b"1"}, name=name)
    shared = trained(service, tmp_path, {"model.pkl": b"2"}, name=name, owner="oscar")
    hidden = trained(service, tmp_path, {"model.pkl": b"3"}, name=name, owner="oscar")
    assert as_["other"]("PATCH", f"models/{shared}", json={"visibility": "public"}).status_code == 200

    def listed(scope):
        return {m["id"] for m in as_["owner"]("GET", "models", params={"scope": scope, "name": name}).json()["items"]}
    assert listed("mine") == {mine}
    assert listed("shared") == {shared}  # oscar's private one stays his
    assert hidden not in listed("")
    refused = as_["owner"]("GET", "models", params={"scope": "everything"})
    assert refused.status_code == 400 and refused.json()["error"]["field"] == "scope"

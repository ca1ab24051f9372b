"""The dataset endpoints on the real service (in-process, stand-in hub identity): rules, uploads, authorization."""

import io
import zipfile

import pytest

from harness.archives import zip_archive
from harness.waiting import wait_until
from workspace_library.models import Dataset, Status, Visibility

from .test_library_api import EXPECTED, ROLES, allowed

OCTETS = {"Content-Type": "application/offset+octet-stream"}


def create(client, name, data: bytes, **fields):
    r = client("POST", "datasets", json={"name": name, "version": "1", "format": "dir",
                                         "archives": {"train": {"size": len(data)}}, **fields})
    assert r.status_code == 201, r.text
    return r.json()


def send(client, dataset_id, data: bytes, offset: int = 0, split: str = "train"):
    return client("PATCH", f"datasets/{dataset_id}/archives/{split}", data=data[offset:],
                  headers={**OCTETS, "Upload-Offset": str(offset)})


def wait_final(client, dataset_id):
    return wait_until(lambda: (d := client("GET", f"datasets/{dataset_id}").json())["status"]
                      not in ("uploading", "validating") and d, timeout=120, what="the import")


def archive(tmp_path, name="a.zip", files=None) -> bytes:
    files = files or [("cats/1.txt", b"a cat"), ("dogs/1.txt", b"a dog")]
    return zip_archive(tmp_path / name, files).read_bytes()


def test_an_upload_that_drops_resumes_from_the_last_byte(as_, tmp_path):
    data = archive(tmp_path)
    dataset = create(as_["owner"], "resumed", data)
    assert send(as_["owner"], dataset["id"], data[:100]).status_code == 204
    head = as_["owner"]("HEAD", f"datasets/{dataset['id']}/archives/train")
    assert (head.headers["Upload-Offset"], head.headers["Upload-Length"]) == ("100", str(len(data)))
    wrong = send(as_["owner"], dataset["id"], data, offset=50)
    assert wrong.status_code == 409 and wrong.headers["Upload-Offset"] == "100"
    assert wrong.json()["error"]["code"] == "offset"
    assert send(as_["owner"], dataset["id"], data, offset=100).status_code == 204
    done = wait_final(as_["owner"], dataset["id"])
    assert done["status"] == "ready" and done["report"]["train"]["counts"] == {"cats": 1, "dogs": 1}
    assert done["uploads"]["train"]["sha256"] == __import__("hashlib").sha256(data).hexdigest()


def test_more_bytes_than_declared_are_refused(as_, tmp_path):
    data = archive(tmp_path)
    dataset = create(as_["owner"], "overflow", data)
    r = send(as_["owner"], dataset["id"], data + b"x" * 10)
    assert r.status_code == 413 and r.json()["error"]["code"] == "too-large"


def test_a_refused_archive_fails_with_its_code_and_takes_a_new_upload(library, as_, tmp_path):
    service, _ = library
    bad = archive(tmp_path, "bad.zip", [("cats/1.txt", b"x"), ("../evil", b"x")])
    dataset = create(as_["owner"], "retried", bad)
    send(as_["owner"], dataset["id"], bad)
    failed = wait_final(as_["owner"], dataset["id"])
    assert failed["status"] == "failed" and failed["errors"][0]["code"] == "archive-name"
    assert not (service.imports.root / "uploads" / dataset["key"]).exists()  # nothing left behind
    good = archive(tmp_path)
    r = as_["owner"]("PATCH", f"datasets/{dataset['id']}/archives/train", data=good,
                     headers={**OCTETS, "Upload-Offset": "0", "Upload-Length": str(len(good))})
    assert r.status_code == 204, r.text
    assert wait_final(as_["owner"], dataset["id"])["status"] == "ready"


def test_the_same_content_is_stored_once_and_a_changed_file_adds_one_object(library, as_, tmp_path):
    service, _ = library
    files = [(f"c{i % 2}/{i}.txt", f"sample {i}".encode()) for i in range(20)]
    first = archive(tmp_path, "v1.zip", files)
    d1 = create(as_["owner"], "versions", first)
    send(as_["owner"], d1["id"], first)
    wait_final(as_["owner"], d1["id"])
    before = service.imports.objects.stored_bytes()
    second = archive(tmp_path, "v2.zip", files[:-1] + [("c1/19.txt", b"changed")])
    d2 = as_["owner"]("POST", "datasets", json={"name": "versions", "version": "2", "format": "dir",
                                                "archives": {"train": {"size": len(second)}}}).json()
    send(as_["owner"], d2["id"], second)
    d2 = wait_final(as_["owner"], d2["id"])
    manifest = service.imports.objects.path(d2["manifests"]["train"]).stat().st_size
    assert service.imports.objects.stored_bytes() - before == len(b"changed") + manifest


def test_download_gives_back_the_files(as_, tmp_path):
    files = [("cats/1.txt", b"a cat"), ("dogs/1.txt", b"a dog")]
    data = archive(tmp_path, files=files)
    dataset = create(as_["owner"], "roundtrip", data)
    send(as_["owner"], dataset["id"], data)
    wait_final(as_["owner"], dataset["id"])
    r = as_["owner"]("GET", f"datasets/{dataset['id']}/download")
    with zipfile.ZipFile(io.BytesIO(r.content)) as z:
        assert sorted((n, z.read(n)) for n in z.namelist()) == files


def test_an_uploaded_file_is_never_served_as_html(as_, tmp_path):
    files = [("cats/x.html", b"<script>alert(document.cookie)</script>"), ("dogs/1.txt", b"a dog")]
    data = archive(tmp_path, files=files)
    dataset = create(as_["owner"], "inert", data)
    send(as_["owner"], dataset["id"], data)
    wait_final(as_["owner"], dataset["id"])
    r = as_["owner"]("GET", f"datasets/{dataset['id']}/files/train/cats/x.html")
    assert r.headers["Content-Type"].startswith("text/plain")
    assert "sandbox" in r.headers["Content-Security-Policy"] and r.headers["X-Content-Type-Options"] == "nosniff"


def test_format_and_mode_are_fixed_once_validated(library, as_):
    service, _ = library
    item = add_dataset(service)
    r = as_["owner"]("PATCH", f"datasets/{item}", json={"format": "json"})
    assert r.status_code == 409 and r.json()["error"]["field"] == "format"
    assert as_["owner"]("PATCH", f"datasets/{item}", json={"visibility": "public"}).status_code == 200


def test_the_hub_lists_online_datasets_for_a_user_with_their_trees(library, as_):
    service, _ = library
    item = add_dataset(service, status=Status.online, visibility=Visibility.private)
    mine = as_["hub"]("GET", "datasets", params={"for_user": "olive", "status": "online"}).json()["items"]
    theirs = as_["hub"]("GET", "datasets", params={"for_user": "oscar", "status": "online"}).json()["items"]
    assert item in [i["id"] for i in mine] and item not in [i["id"] for i in theirs]
    mounts = next(i for i in mine if i["id"] == item)["mounts"]
    assert list(mounts) == ["train"] and mounts["train"].startswith("library/trees/")
    assert as_["other"]("GET", "datasets", params={"for_user": "olive"}).status_code == 403


def add_dataset(service, owner="olive", visibility=Visibility.private, status=Status.ready):
    """A row straight in the database, with one stored file, in the given state."""
    objects = service.imports.objects
    manifest = objects.add_manifest([("cats/1.txt", objects.add_bytes(b"a cat"), 5)])
    with service.sessions() as db:
        dataset = Dataset(name=f"d{__import__('uuid').uuid4().hex[:8]}", version="1", owner=owner,
                          visibility=visibility, status=status, errors=[], progress="", format="dir",
                          test_mode="ratio", uploads={"train": {"size": 10, "filename": "", "sha256": None}},
                          size=10, manifests={"train": manifest}, report={})
        db.add(dataset)
        db.commit()
        return dataset.id


# ---- the authorization matrix: every dataset endpoint x {anonymous, other user, owner, admin}

DATASET_CALLS = [
    ("GET", "", None),
    ("PATCH", "", {"description": "changed"}),
    ("POST", "/offline", None),
    ("POST", "/online", None),
    ("HEAD", "/archives/train", None),
    ("PATCH", "/archives/train", b"bytes"),
    ("GET", "/download", None),
    ("GET", "/files/train/cats/1.txt", None),
    ("GET", "/users", None),
    ("DELETE", "", None),
]
READS = ("", "/archives/train", "/download", "/files/train/cats/1.txt", "/users")


@pytest.mark.parametrize("visibility", list(EXPECTED))
@pytest.mark.parametrize("method,suffix,body", DATASET_CALLS, ids=lambda v: v if isinstance(v, str) else "")
@pytest.mark.parametrize("role", ROLES)
def test_dataset_authorization(library, as_, role, visibility, method, suffix, body):
    service, _ = library
    item = add_dataset(service, visibility=Visibility(visibility),
                       status=Status.online if suffix == "/offline" else Status.ready)
    expected = EXPECTED[visibility][role]
    if method in ("GET", "HEAD") and suffix in READS and visibility != "private" and role != "anonymous":
        expected = "ok"  # public and preset datasets are readable by every user
    kwargs = {"data": body, "headers": {**OCTETS, "Upload-Offset": "0"}} if isinstance(body, bytes) \
        else {"json": body} if body is not None else {}
    r = as_[role](method, f"datasets/{item}{suffix}", **kwargs)
    if expected == "ok":
        assert allowed(r.status_code), r.text
    else:
        assert r.status_code == expected, r.text
        if method != "HEAD":
            assert r.json()["error"]["code"] and r.json()["error"]["message"]
    with service.sessions() as db:
        if role in ("anonymous", "other") and method != "GET":  # a refused call changed nothing
            dataset = db.get(Dataset, item)
            assert dataset is not None and dataset.description == ""


def test_every_format_has_a_preset_dataset_that_its_sample_reads(as_):
    """A new install can train every sample at once: news-texts and digits (dir), shapes (json), ner-news (brat)."""
    presets = wait_until(lambda: (items := as_["other"]("GET", "datasets", params={"owner": "workspace-hub"}).json()[
        "items"]) and all(i["status"] == "online" for i in items) and len(items) == 4 and items, timeout=120)
    assert {(i["name"], i["format"]) for i in presets} == {
        ("news-texts", "dir"), ("digits", "dir"), ("shapes", "json"), ("ner-news", "brat_ann")}


def test_a_restart_removes_upload_folders_nothing_needs(library, as_, tmp_path):
    service, _ = library
    uploading = create(as_["owner"], "half-sent", archive(tmp_path))
    send(as_["owner"], uploading["id"], archive(tmp_path)[:10])
    orphan = service.imports.root / "uploads" / ("f" * 32)
    (orphan / "staging").mkdir(parents=True)
    service.imports.recover()
    assert not orphan.exists()
    assert service.imports.offset(reload_dataset(service, uploading["id"]), "train") == 10  # still resumable


def reload_dataset(service, dataset_id):
    with service.sessions() as db:
        return db.get(Dataset, dataset_id)

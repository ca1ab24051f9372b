"""Datasets through the real hub, library, engine and browser.

The acceptance path: the admin uploads a zip on the upload page, sees it
validated, brings it online, starts a project with it mounted read-only,
shares it, and another user then sees it.  Then the service is killed with
SIGKILL mid-upload and mid-import: the hub restarts it, the upload resumes
from the last byte, the import runs again, and nothing partial is left.
"""

import os
import signal
import zipfile

import pytest
import requests

from harness.archives import zip_archive
from harness.library import Client
from harness.waiting import wait_until
from workspace_hub.algorithm import ANNOTATIONS, PURPOSE_TASKS

from .conftest import login, shot

pytestmark = [pytest.mark.docker, pytest.mark.browser]
OCTETS = {"Content-Type": "application/offset+octet-stream"}


def sh(container, command: str) -> tuple[int, str]:
    code, out = container.exec_run(["sh", "-c", command])
    return code, out.decode()


def test_upload_validate_online_mount_and_share_in_the_browser(hub, page, tmp_path, container_of):
    hub.api("POST", "/users/viola")
    viola = Client(f"{hub.url}/services/library/", hub.user_token("viola"))
    archive = zip_archive(tmp_path / "pets.zip", [(f"{kind}/{i}.txt", f"a {kind} number {i}".encode())
                                                  for kind in ("cats", "dogs") for i in range(3)])
    login(page, hub)
    page.goto(f"{hub.url}/services/library/datasets/new")
    page.fill("#name", "pets")
    page.select_option("#purpose-first", "text")  # the task list follows the purpose (manual 2.1.1)
    assert page.locator("#purpose-second option").all_inner_texts() == PURPOSE_TASKS["text"]
    assert page.locator("#annotation option").count() == len(ANNOTATIONS)  # a choice, not free text
    page.set_input_files("#file-train", str(archive))
    page.click("#create")
    page.wait_for_url("**/services/library/datasets/*")
    page.wait_for_selector("#status:has-text('ready')")
    assert page.inner_text("#split-train h2").startswith("train: 6 files")
    assert page.locator("#split-train .class-bar").count() == 2
    shot(page, "datasets-01-validated")
    assert page.locator("#split-train .samples pre").first.inner_text() in {f"a {k} number {i}" for k in ("cats", "dogs")
                                                                            for i in range(3)}
    with page.expect_download() as download:
        page.click("text=Download the train set (zip)")
    with zipfile.ZipFile(download.value.path()) as z:
        assert sorted(z.namelist()) == sorted(f"{k}/{i}.txt" for k in ("cats", "dogs") for i in range(3))
    page.click("#online")
    page.wait_for_selector("#status:has-text('online')")
    dataset_id = page.url.rsplit("/", 1)[1]
    assert viola("GET", f"datasets/{dataset_id}").status_code == 404  # private until shared

    page.goto(f"{hub.url}/hub/home")
    page.fill("#new-project-name", "with-pets")
    page.select_option("#new-project-env", "python")
    page.select_option("#new-project-dataset", label="pets 1 (dir)")
    page.click("#new-project-create")
    page.wait_for_url("**/user/admin/with-pets/**", timeout=180_000)
    container = container_of("admin", "with-pets")
    assert sh(container, "cat /project/dataset/cats/1.txt")[1] == "a cats number 1"
    code, out = sh(container, "touch /project/dataset/cats/new.txt")
    assert code != 0 and "Read-only file system" in out

    page.goto(f"{hub.url}/services/library/datasets/{dataset_id}")
    page.wait_for_selector("#users:has-text('admin/with-pets')")
    page.fill("#description", "cats and dogs, in words")  # the basic information, edited (manual 2.1.3)
    assert not page.is_visible("#purpose-second")  # it has been online: its purpose is fixed, so not offered
    page.select_option("#share-visibility", "public")
    page.click("#share-save")
    wait_until(lambda: viola("GET", f"datasets/{dataset_id}").status_code == 200, what="the dataset to be shared")
    edited = viola("GET", f"datasets/{dataset_id}").json()
    assert (edited["description"], edited["purpose"]) == ("cats and dogs, in words",
                                                          {"first": "text", "second": "classification"})
    shot(page, "datasets-02-shared")
    shared = viola("GET", "datasets", params={"name": "pets"}).json()["items"]
    assert [(d["owner"], d["visibility"]) for d in shared] == [("admin", "public")]
    hub.stop_project("admin", "with-pets")


def test_the_upload_page_lists_a_refusal_with_its_code(hub, page, tmp_path):
    login(page, hub)
    archive = zip_archive(tmp_path / "slip.zip", [("cats/1.txt", b"x"), ("../../escape.txt", b"x")])
    page.goto(f"{hub.url}/services/library/datasets/new")
    page.fill("#name", "slip")
    page.set_input_files("#file-train", str(archive))
    page.click("#create")
    page.wait_for_selector("#status:has-text('failed')")
    assert "archive-name" in page.inner_text("#errors")
    shot(page, "datasets-03-refused")


def restart_library(hub) -> None:
    pid = hub.service_pid()
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: (new := hub.service_pid()) and new != pid, timeout=120, what="the hub to restart the library")
    me = f"{hub.url}/services/library/api/me"  # the proxy answers 503 until the new library listens
    wait_until(lambda: requests.get(me, timeout=5).status_code == 401, timeout=120, what="the library to answer")


def test_kill_9_mid_upload_and_mid_import_leaves_nothing_stuck_or_partial(hub, tmp_path):
    client = Client(f"{hub.url}/services/library/", hub.user_token("admin"))
    files = [(f"c{i % 4}/{i}.txt", os.urandom(32 << 10).hex().encode()) for i in range(3000)]  # 190 MiB
    data = zip_archive(tmp_path / "big.zip", files).read_bytes()
    r = client("POST", "datasets", json={"name": "crash", "version": "1", "format": "dir",
                                         "archives": {"train": {"size": len(data)}}})
    assert r.status_code == 201, r.text
    dataset = r.json()
    path = f"datasets/{dataset['id']}/archives/train"
    half = len(data) // 2
    assert client("PATCH", path, data=data[:half], headers={**OCTETS, "Upload-Offset": "0"}).status_code == 204

    restart_library(hub)  # mid-upload
    offset = int(client("HEAD", path).headers["Upload-Offset"])
    assert offset == half
    assert client("PATCH", path, data=data[offset:], headers={**OCTETS, "Upload-Offset": str(offset)}).status_code == 204
    wait_until(lambda: client("GET", f"datasets/{dataset['id']}").json()["status"] == "validating", interval=0.02)

    restart_library(hub)  # mid-import
    done = wait_until(lambda: (d := client("GET", f"datasets/{dataset['id']}").json())["status"]
                      not in ("validating",) and d, timeout=300, what="the import to end")
    assert done["status"] == "ready", done["errors"]
    assert done["report"]["train"]["files"] == 3000
    library = hub.data_root / "library"
    # the import removes the upload's folder just after it records "ready"
    wait_until(lambda: not (library / "uploads" / dataset["key"]).exists(), timeout=30, what="the upload's cleanup")
    assert not list((library / "trees").glob(".building-*"))
    tree = hub.data_root / done["mounts"]["train"]
    assert sorted(p.name for p in tree.iterdir()) == ["c0", "c1", "c2", "c3"]
    assert (tree / "c1" / "1.txt").read_bytes() == files[1][1]

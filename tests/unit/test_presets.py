"""Preset algorithms: `ws up` builds the samples whose env is exported; the library seeds them, online.

The builder runs against a tiny synthetic python export (the real envs are built
and trained in tests/integration/test_presets_flow.py); the seed runs in the real
service with tiny tars and no engine.
"""

import hashlib
import json
import shutil
import tarfile

import pytest
import requests

from harness.imagetars import make_layer, minimal_image
from harness.library import Client, running_service
from harness.waiting import wait_until
from workspace_hub.presets import FOLDER, PRESETS, build_presets, preset_tars
from workspace_hub.scaffold import templates_dir
from workspace_hub.smoke import sample_dataset
from workspace_hub.validate import check_tar
from workspace_library.models import SYSTEM_OWNER, Algorithm, Image, Status, Visibility

from .test_library_api import reload


def tiny_export(folder):
    """A `docker save` folder with one layer, as `ws envs build` exports an env."""
    (folder / "l1").mkdir(parents=True)
    layer = make_layer(("opt/venv/bin/python", b"", tarfile.REGTYPE, ""))
    (folder / "l1" / "layer.tar").write_bytes(layer)
    config = json.dumps({"architecture": "amd64", "os": "linux", "created": "2026-01-01T00:00:00Z",
                         "config": {"Env": ["VENV=/opt/venv"]},
                         "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]}})
    name = hashlib.sha256(config.encode()).hexdigest() + ".json"
    (folder / name).write_text(config)
    (folder / "manifest.json").write_text(json.dumps([{"Config": name, "Layers": ["l1/layer.tar"]}]))


def test_ws_up_builds_the_presets_whose_env_is_exported_and_names_the_command_for_the_others(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    tiny_export(tmp_path / "base-images" / "python" / "current")
    said = []
    assert build_presets(tmp_path, log=said.append) == ["text-classify-bayes"]
    tars = preset_tars(tmp_path, PRESETS[0])
    assert sorted(tars) == ["predict", "train"]
    for role, path in tars.items():
        report = check_tar(path, filename=path.name)
        assert report.valid, report.errors
        assert json.loads(report.image["labels"]["ai.platform.algorithm"])["name"] == "text-classify-bayes"
    assert "preset algorithm image-classify-torch: the pytorch env is not built (`ws up --envs python,pytorch`)" in said
    assert not list((tmp_path / FOLDER).glob(".*"))  # no partial folder is left
    assert build_presets(tmp_path, log=said.append) == []  # built once


def test_a_preset_is_built_again_when_its_templates_change(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    shutil.copytree(templates_dir(), tmp_path / "templates")
    monkeypatch.setenv("WSHUB_TEMPLATES_DIR", str(tmp_path / "templates"))
    tiny_export(tmp_path / "base-images" / "python" / "current")
    assert build_presets(tmp_path, log=lambda _: None) == ["text-classify-bayes"]
    (tmp_path / "templates" / "README.md").write_text("changed")
    assert build_presets(tmp_path, log=lambda _: None) == ["text-classify-bayes"]


def test_a_half_built_preset_is_not_a_preset(tmp_path):
    folder = tmp_path / FOLDER / "text-classify-bayes"
    folder.mkdir(parents=True)
    minimal_image(folder / "train-text-classify-bayes-cpu.tar")
    assert preset_tars(tmp_path, PRESETS[0]) == {}


def test_the_library_seeds_built_presets_online_and_lists_the_others_with_their_command(tmp_path, db_url):
    data_root = tmp_path / "data"
    folder = data_root / FOLDER / "text-classify-bayes"
    folder.mkdir(parents=True)
    doc = {"name": "text-classify-bayes", "framework": "sklearn"}
    minimal_image(folder / "train-text-classify-bayes-cpu.tar", "train", {**doc, "kind": "train"})
    minimal_image(folder / "predict-text-classify-bayes-cpu.tar", "predict",
                  {**doc, "kind": "predict", "interface": {"name": "predict", "method": "POST", "params": []}})
    with running_service(data_root, db_url, smoke_by_default=False) as (service, base):
        service.validations._load = lambda path, report, tag, loaded=False: tag  # no engine in unit tests
        other = Client(base, "other-token")
        preset = wait_until(lambda: next((a for a in other("GET", "algorithms").json()["items"]
                                          if a["name"] == "text-classify-bayes" and a["status"] == "online"), None),
                            what="the preset online")
        assert (preset["owner"], preset["visibility"]) == ("workspace-hub", "preset")
        page = requests.get(base, headers={"Authorization": "token other-token"}, timeout=30).text
        assert "Preset algorithms not available on this host" in page
        assert "image-classify-torch" in page and "run `ws up --envs python,pytorch`" in page
        assert "text-classify-bayes</b>" not in page  # seeded, so not missing
        service.seed_presets()  # every start seeds again: nothing new
        service.validations.pool.submit(lambda: None).result()
        names = [a["name"] for a in other("GET", "algorithms", params={"owner": "workspace-hub"}).json()["items"]]
        assert names.count("text-classify-bayes") == 1
        shutil.rmtree(folder)  # the built tars may go: the store holds its own link to them
        item = other("GET", f"algorithms/{preset['id']}").json()
        assert all(service.store.path(i["sha256"]).is_file() for i in item["images"])


def test_a_preset_validation_cut_short_by_a_restart_still_ends_online(library, tmp_path):
    service, _ = library
    tar = minimal_image(tmp_path / "train-p-cpu.tar", algorithm={"name": "p", "kind": "train"})
    digest, size = service.store.link_in(tar)
    with service.sessions() as db:
        cut = Algorithm(name="p", version="1.0", owner=SYSTEM_OWNER, visibility=Visibility.preset, smoke=False,
                        status=Status.validating, errors=[], progress="checking",
                        images=[Image(role="train", filename=tar.name, sha256=digest, size=size)])
        db.add(cut)
        db.commit()
    assert cut.id in service.validations.recover()
    wait_until(lambda: reload(service, Algorithm, cut.id).status != Status.validating, 30, 0.1, "the resumed job")
    resumed = reload(service, Algorithm, cut.id)
    assert (resumed.status, resumed.was_online) == (Status.online, True), resumed.errors


@pytest.mark.parametrize("doc, folder", [
    ({"purpose": {"first": "image", "second": "object_detection"}, "dataset_format": "json"}, "data-shapes"),
    ({"purpose": {"first": "text", "second": "named_entity_recognition"}, "dataset_format": "brat_ann"}, "data-ner"),
    ({"purpose": {"first": "image", "second": "classification"}, "dataset_format": "dir"}, "data-digits"),
    ({"purpose": {"first": "text", "second": "classification"}}, "data-text"),
])
def test_a_smoke_training_gets_the_sample_data_in_its_own_format(doc, folder):
    """The detection preset reads boxes (COCO json): the digits' folders would fail its smoke run."""
    assert sample_dataset({"ai.platform.algorithm": json.dumps(doc)}).name == folder

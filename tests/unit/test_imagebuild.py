"""`ws build` against a tiny synthetic base export: reproducibility, layering and every bad input.

The same builder runs inside a real workspace in tests/integration/test_build.py.
"""

import hashlib
import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from harness.imagetars import make_layer
from workspace_hub.imagebuild import ImageBuildError, build_image
from workspace_hub.scaffold import new_algorithm_folder
from workspace_hub.validate import check_tar


@pytest.fixture
def base_export(tmp_path, monkeypatch):
    """A `docker save` folder with one layer, as `ws envs build` exports it."""
    folder = tmp_path / "base"
    (folder / "l1").mkdir(parents=True)
    layer = make_layer(("opt/venv/bin/python", b"", tarfile.REGTYPE, ""))
    (folder / "l1" / "layer.tar").write_bytes(layer)
    config = json.dumps({"architecture": "amd64", "os": "linux", "created": "2026-01-01T00:00:00Z",
                         "config": {"Env": ["VENV=/opt/venv", "PATH=/opt/venv/bin:/usr/bin"]},
                         "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]}})
    name = hashlib.sha256(config.encode()).hexdigest() + ".json"
    (folder / name).write_text(config)
    (folder / "manifest.json").write_text(json.dumps([{"Config": name, "Layers": ["l1/layer.tar"]}]))
    monkeypatch.setenv("WSHUB_BASE_IMAGE_DIR", str(folder))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return folder


@pytest.fixture
def project(tmp_path):
    """A baked train project in <root>/code/, with an empty requirements.txt (nothing to install)."""
    (tmp_path / "project" / "code").mkdir(parents=True)
    path = new_algorithm_folder("train", "demo", "predict", "sklearn", output_dir=tmp_path / "project" / "code")
    (path / "requirements.txt").write_text("")
    return path


def build(project, **kwargs):
    return build_image(project, log=lambda m: None, **kwargs)


def members(tar_path: Path) -> dict:
    with tarfile.open(tar_path) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))[0]
        config = json.load(tar.extractfile(manifest["Config"]))
        return {"manifest": manifest, "config": config}


def test_the_image_is_valid_and_carries_the_algorithm(base_export, project):
    tar = build(project)
    assert tar == project.parent.parent / "docker_image" / "train-demo-cpu.tar"
    report = check_tar(tar)
    assert report.valid, report.errors
    config = members(tar)["config"]["config"]
    assert config["Cmd"] == ["python", "src/train.py"]
    assert config["WorkingDir"] == "/project/code/demo-train" and config["User"] == "1000:1000"
    assert "EPOCHS=5" in config["Env"] and "VENV=/opt/venv" in config["Env"]
    labels = config["Labels"]
    assert (labels["ai.platform.kind"], labels["ai.platform.device"], labels["ai.platform.framework"]) == (
        "train", "cpu", "sklearn")
    assert json.loads(labels["ai.platform.algorithm"])["name"] == "demo"


def test_a_predict_image_declares_its_port_and_interface(base_export, tmp_path):
    (tmp_path / "p" / "code").mkdir(parents=True)
    api = new_algorithm_folder("api", "demo", "classify", "pytorch", output_dir=tmp_path / "p" / "code")
    (api / "requirements.txt").write_text("")
    config = members(build(api))["config"]["config"]
    assert config["ExposedPorts"] == {"8080/tcp": {}}
    assert config["Labels"]["ai.platform.port"] == "8080"
    assert json.loads(config["Labels"]["ai.platform.interface"])["name"] == "classify"
    assert check_tar(project_tar := api.parent.parent / "docker_image" / "predict-demo-cpu.tar").valid, project_tar


def test_the_same_inputs_give_the_same_image(base_export, project):
    first = build(project).read_bytes()
    os.utime(project / "src" / "train.py", (1, 1))  # mtimes never reach the image
    assert hashlib.sha256(build(project).read_bytes()).digest() == hashlib.sha256(first).digest()


def test_changing_one_file_changes_only_the_code_layer(base_export, project):
    before = members(build(project))["config"]["rootfs"]["diff_ids"]
    (project / "src" / "train.py").write_text((project / "src" / "train.py").read_text() + "\n# tweak\n")
    after = members(build(project))["config"]["rootfs"]["diff_ids"]
    assert before[:-1] == after[:-1] and before[-1] != after[-1]


def test_excludes_and_dockerignore(base_export, project):
    for path in (".git/HEAD", "src/__pycache__/x.pyc", ".ipynb_checkpoints/a.ipynb", "secret.env", "notes/keep.md"):
        (project / path).parent.mkdir(parents=True, exist_ok=True)
        (project / path).write_text("x")
    (project / ".dockerignore").write_text("secret.env\n")
    with tarfile.open(build(project)) as tar:
        code_layer = tar.extractfile(members(tar.name)["manifest"]["Layers"][-1])
        names = tarfile.open(fileobj=code_layer).getnames()
    prefix = "project/code/demo-train/"
    assert f"{prefix}notes/keep.md" in names and f"{prefix}src/train.py" in names
    assert not [n for n in names if any(s in n for s in (".git/", "__pycache__", "checkpoints", "secret", "/data/"))]


def test_the_dependency_layer_is_reused_while_requirements_are_unchanged(base_export, project, tmp_path):
    (project / "requirements.txt").write_text("# nothing yet\n")
    first = members(build(project))["config"]["rootfs"]["diff_ids"][-2]
    cache = list((tmp_path / "home" / ".cache" / "ws-build").glob("deps-*.tar"))
    assert len(cache) == 1
    assert members(build(project))["config"]["rootfs"]["diff_ids"][-2] == first


# -- bad input: a clear error and no tar, partial or whole ---------------------------------


def no_tars(project):
    return list((project.parent.parent / "docker_image").glob("*")) if (
        project.parent.parent / "docker_image").exists() else []


@pytest.mark.parametrize("change, message", [
    (lambda p: (p / "algorithm.yaml").unlink(), "every project needs an algorithm.yaml"),
    (lambda p: (p / "algorithm.yaml").write_text("name: [unclosed\n"), "not valid YAML"),
    (lambda p: (p / "algorithm.yaml").write_text((p / "algorithm.yaml").read_text().replace(
        "kind: train", "kind: serve")), "kind: 'serve' is not one of"),
])
def test_bad_algorithm_yaml(base_export, project, change, message):
    change(project)
    with pytest.raises(ImageBuildError, match=message):
        build(project)
    assert no_tars(project) == []


def test_a_bad_name(base_export, project):
    with pytest.raises(ImageBuildError, match="breaks the naming rule"):
        build(project, name="Bad Name")
    assert no_tars(project) == []


def test_a_requirement_that_cannot_be_installed_offline(base_export, project, monkeypatch):
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    (project / "requirements.txt").write_text("surely-not-a-real-package-ws==1.0\n")
    with pytest.raises(ImageBuildError, match="pip could not install requirements.txt"):
        build(project)
    assert no_tars(project) == []


def test_outside_a_workspace_without_a_base_export(project, monkeypatch, tmp_path):
    monkeypatch.setenv("WSHUB_BASE_IMAGE_DIR", str(tmp_path / "nothing"))
    with pytest.raises(ImageBuildError, match="no base image export"):
        build(project)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tiny tmpfs needs root (CI runs as root)")
def test_a_full_disk_leaves_no_partial_tar(base_export, project, tmp_path):
    full = tmp_path / "full"
    full.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8k", "tmpfs", str(full)], check=True)
    try:
        with pytest.raises(ImageBuildError, match="free space"):
            build(project, output_dir=full)
        assert list(full.iterdir()) == []
    finally:
        subprocess.run(["umount", str(full)], check=True)

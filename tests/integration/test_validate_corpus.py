"""`ws validate` against a corpus made from real `docker save` output.

Tiny images are built on the real engine; each invalid tar changes one thing
in a valid one.  Every verdict must be clean: the right code, exit 1, no
traceback, and nothing written to the working directory.
"""

import gzip
import json
import os
import subprocess
import sys
import tarfile

import pytest

from harness.imagetars import (
    add_layer, edit_config, get, make_layer, manifest, member, put, read_members, write_members,
)

pytestmark = pytest.mark.docker


def docker_image_tar(engine, tmp, name, labels, cmd='["/bin/true"]', expose=None):
    """`docker import` a one-file rootfs with labels and a command, then `docker save` it."""
    rootfs = tmp / f"{name}-rootfs.tar"
    write_members(rootfs, [member("app/", None, tarfile.DIRTYPE), member("app/main.py", b"print('hi')\n")])
    changes = [f"CMD {cmd}"] + [f"LABEL {k}={v}" for k, v in labels.items()]
    if expose:
        changes.append(f"EXPOSE {expose}")
    tag = f"ws-corpus/{name}:1"
    subprocess.run(["docker", "import", *sum((["--change", c] for c in changes), []), str(rootfs), tag],
                   check=True, capture_output=True)
    out = tmp / f"saved-{name}.tar"
    subprocess.run(["docker", "save", "-o", str(out), tag], check=True)
    engine.images.remove(tag, force=True)
    return out


@pytest.fixture(scope="module")
def corpus(engine, tmp_path_factory):
    """Valid tars: a train image and a predict image, straight from `docker save`."""
    tmp = tmp_path_factory.mktemp("corpus")
    return {
        "tmp": tmp,
        "train": docker_image_tar(engine, tmp, "train", {"ai.platform.kind": "train", "ai.platform.device": "cpu"}),
        "predict": docker_image_tar(engine, tmp, "predict", {"ai.platform.kind": "predict",
                                                             "ai.platform.device": "cpu",
                                                             "ai.platform.port": "8080"}),
    }


def validate(path, *args, cwd):
    """Run the real CLI in an empty working directory; return (exit code, JSON, stderr)."""
    r = subprocess.run([sys.executable, "-m", "workspace_hub.cli", "validate", "--json", str(path), *args],
                       capture_output=True, text=True, cwd=cwd, timeout=120)
    assert "Traceback" not in r.stderr
    assert os.listdir(cwd) == [], "ws validate wrote to the working directory"
    return r.returncode, (json.loads(r.stdout) if r.stdout else None), r.stderr


@pytest.fixture
def cwd(tmp_path):
    path = tmp_path / "cwd"
    path.mkdir()
    return path


def named(corpus, name, members, compress=False):
    return write_members(corpus["tmp"] / name, members, compress)


# -- valid tars ---------------------------------------------------------------------


def test_docker_save_train_tar_is_valid(corpus, cwd):
    path = named(corpus, "train-tiny-cpu.tar", read_members(corpus["train"]))
    code, report, _ = validate(path, cwd=cwd)
    assert (code, report["valid"], report["errors"]) == (0, True, [])
    assert (report["kind"], report["name"], report["device"]) == ("train", "tiny", "cpu")
    image = report["image"]
    assert image["cmd"] == ["/bin/true"] and image["repo_tags"] == ["ws-corpus/train:1"]
    assert image["labels"]["ai.platform.kind"] == "train"
    assert len(image["layers"]) == 1 and image["layers"][0]["diff_id"].startswith("sha256:")


def test_docker_save_predict_tar_is_valid(corpus, cwd):
    path = named(corpus, "predict-tiny_api-cpu.tar", read_members(corpus["predict"]))
    assert validate(path, cwd=cwd)[:2][0] == 0


def test_gzip_layers_and_a_gzip_archive_are_valid(corpus, cwd):
    members = read_members(corpus["train"])
    layer = manifest(members)["Layers"][0]
    members = put(members, layer, gzip.compress(get(members, layer)))
    code, report, _ = validate(named(corpus, "train-gz-cpu.tar", members, compress=True), cwd=cwd)
    assert code == 0, report["errors"]
    assert report["image"]["layers"][0]["compression"] == "gzip"


def test_skopeo_oci_archive_is_valid(corpus, cwd):
    """An independent writer: skopeo's OCI layout (index.json, blobs/sha256/...)."""
    path = corpus["tmp"] / "train-oci-cpu.tar"
    subprocess.run(["skopeo", "copy", f"docker-archive:{corpus['train']}", f"oci-archive:{path}"],
                   check=True, capture_output=True)
    code, report, _ = validate(path, cwd=cwd)
    assert code == 0, report["errors"]
    inspect = json.loads(subprocess.run(["skopeo", "inspect", "--config", f"oci-archive:{path}"],
                                        check=True, capture_output=True, text=True).stdout)
    assert [layer["diff_id"] for layer in report["image"]["layers"]] == inspect["rootfs"]["diff_ids"]


def test_skopeo_docker_archive_is_valid(corpus, cwd):
    path = corpus["tmp"] / "train-skopeo-cpu.tar"
    subprocess.run(["skopeo", "copy", f"docker-archive:{corpus['train']}", f"docker-archive:{path}"],
                   check=True, capture_output=True)
    assert validate(path, cwd=cwd)[0] == 0


# -- one broken rule each ---------------------------------------------------------------


def broken(corpus):
    """name -> (members or raw bytes, expected error code, extra CLI args)."""
    base = read_members(corpus["train"])
    predict = read_members(corpus["predict"])
    image = manifest(base)
    layer = image["Layers"][0]
    two_images = json.dumps([image, image]).encode()
    return {
        "filename": ("Train_Tiny.tar", base, "filename", ()),
        "config altered": ("train-a-cpu.tar", put(base, image["Config"], get(base, image["Config"]) + b" "),
                           "config-digest", ()),
        "layer altered": ("train-a-cpu.tar", put(base, layer, make_layer(("x", b"1", tarfile.REGTYPE, ""))),
                          "layer-digest", ()),
        "layer count": ("train-a-cpu.tar", edit_config(base, lambda c: c["rootfs"]["diff_ids"].append(
            "sha256:" + "0" * 64)), "layer-count", ()),
        "dotdot entry": ("train-a-cpu.tar", add_layer(base, make_layer(("../escape", b"x", tarfile.REGTYPE, ""))),
                         "layer-unsafe-path", ()),
        "absolute entry": ("train-a-cpu.tar", add_layer(base, make_layer(("/etc/x", b"x", tarfile.REGTYPE, ""))),
                           "layer-unsafe-path", ()),
        "hardlink escape": ("train-a-cpu.tar", add_layer(base, make_layer(
            ("etc/p", None, tarfile.LNKTYPE, "../../etc/passwd"))), "layer-hardlink-escape", ()),
        "fifo outside dev": ("train-a-cpu.tar", add_layer(base, make_layer(("tmp/f", None, tarfile.FIFOTYPE, ""))),
                             "layer-device", ()),
        "no command": ("train-a-cpu.tar", edit_config(base, lambda c: c["config"].pop("Cmd")),
                       "config-no-command", ()),
        "label mismatch": ("train-a-gpu.tar", base, "label-mismatch", ()),
        "label missing": ("train-a-cpu.tar", edit_config(base, lambda c: c["config"]["Labels"].pop(
            "ai.platform.device")), "label-missing", ()),
        "predict without port": ("predict-a-cpu.tar", edit_config(predict, lambda c: c["config"]["Labels"].pop(
            "ai.platform.port")), "port-missing", ()),
        "windows": ("train-a-cpu.tar", edit_config(base, lambda c: c.update(os="windows")), "config-os", ()),
        "arm64": ("train-a-cpu.tar", edit_config(base, lambda c: c.update(architecture="arm64")), "config-arch", ()),
        "outer dotdot": ("train-a-cpu.tar", base + [member("../evil", b"x")], "outer-unsafe-path", ()),
        "outer absolute": ("train-a-cpu.tar", base + [member("/evil", b"x")], "outer-unsafe-path", ()),
        "duplicate": ("train-a-cpu.tar", base + [member("manifest.json", get(base, "manifest.json"))],
                      "outer-duplicate", ()),
        "no manifest": ("train-a-cpu.tar", [m for m in base if m[0].name != "manifest.json"],
                        "manifest-missing", ()),
        "two images": ("train-a-cpu.tar", put(base, "manifest.json", two_images), "manifest-image-count", ()),
        "missing layer": ("train-a-cpu.tar", [m for m in base if m[0].name != layer], "missing-path", ()),
        "huge manifest": ("train-a-cpu.tar", put(base, "manifest.json", get(base, "manifest.json")
                                                 + b" " * (1024**2 + 1)), "manifest-too-large", ()),
        "symlink out": ("train-a-cpu.tar", [m for m in base if m[0].name != layer]
                        + [member(layer, None, tarfile.SYMTYPE, "../../etc/passwd")], "outer-bad-symlink", ()),
        "device in outer": ("train-a-cpu.tar", base + [member("dev0", None, tarfile.CHRTYPE)],
                            "outer-member-type", ()),
        "size limit": ("train-a-cpu.tar", base, "size-limit", ("--max-uncompressed-size", "1000")),
        "not a tar": ("train-a-cpu.tar", b"this is not an image\n" * 100, "not-a-tar", ()),
        # parser differentials: what the validator reads must be what `docker load` reads
        "dot alias": ("train-a-cpu.tar", base + [member("././manifest.json", get(base, "manifest.json"))],
                      "outer-duplicate", ()),
        "slash alias": ("train-a-cpu.tar", base + [member(layer.replace("/", "//"), get(base, layer))],
                        "outer-duplicate", ()),
        "second gzip member": ("train-a-cpu.tar", gzip.compress(tar_bytes(base))
                               + gzip.compress(tar_bytes([member("extra", b"x")])), "not-a-tar", ()),
        "sparse rename": ("train-a-cpu.tar", base + [sparse_member("innocent", "manifest.json", b"[]")],
                          "outer-sparse", ()),
        "deep manifest": ("train-a-cpu.tar", put(base, "manifest.json", b"[" * 200_000 + b"]" * 200_000),
                          "manifest-invalid", ()),
        "deep label": ("train-a-cpu.tar", put(base, "manifest.json", json.dumps(
            [{**image, "Junk": json.loads("[" * 100 + "]" * 100)}]).encode()), "manifest-invalid", ()),
    }


def tar_bytes(members) -> bytes:
    import io

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def sparse_member(name, real_name, data):
    """A member whose pax header carries GNU.sparse.name: Go's reader (docker load) renames it."""
    info, data = member(name, data)
    info.pax_headers = {"GNU.sparse.name": real_name}
    return info, data


CASES = ["filename", "config altered", "layer altered", "layer count", "dotdot entry", "absolute entry",
         "hardlink escape", "fifo outside dev", "no command", "label mismatch", "label missing",
         "predict without port", "windows", "arm64", "outer dotdot", "outer absolute", "duplicate",
         "no manifest", "two images", "missing layer", "huge manifest", "symlink out", "device in outer",
         "size limit", "not a tar", "dot alias", "slash alias", "second gzip member", "sparse rename",
         "deep manifest", "deep label"]


@pytest.mark.parametrize("case", CASES)
def test_each_broken_rule_is_reported_with_its_code(corpus, cwd, case):
    filename, content, code, args = broken(corpus)[case]
    path = corpus["tmp"] / case.replace(" ", "_") / filename
    path.parent.mkdir(exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        write_members(path, content)
    exit_code, report, _ = validate(path, *args, cwd=cwd)
    assert exit_code == 1 and report["valid"] is False
    assert code in {e["code"] for e in report["errors"]}, report["errors"]
    assert all(e["message"] for e in report["errors"])


def test_a_truncated_tar_is_rejected(corpus, cwd):
    path = corpus["tmp"] / "train-cut-cpu.tar"
    path.write_bytes(corpus["train"].read_bytes()[:5000])
    code, report, _ = validate(path, cwd=cwd)
    assert code == 1 and report["errors"]


def test_all_violations_are_reported_not_only_the_first(corpus, cwd):
    members = edit_config(read_members(corpus["train"]), lambda c: (c["config"].pop("Cmd"), c.update(os="plan9")))
    path = write_members(corpus["tmp"] / "Bad Name.tar", members)
    codes = {e["code"] for e in validate(path, cwd=cwd)[1]["errors"]}
    assert {"filename", "config-no-command", "config-os"} <= codes


def test_unreadable_path_exits_2(cwd):
    r = subprocess.run([sys.executable, "-m", "workspace_hub.cli", "validate", "/nonexistent/train-a-cpu.tar"],
                       capture_output=True, text=True, cwd=cwd)
    assert r.returncode == 2 and "cannot read" in r.stderr

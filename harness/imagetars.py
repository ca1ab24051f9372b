"""Helpers that take real `docker save` archives apart and put them back together.

The corpus of invalid tars starts from real engine output and changes one thing
at a time, keeping everything else consistent (digests, manifest, diff_ids), so
each tar breaks exactly one rule.  Test inputs are trusted, so tarfile is fine here.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

Members = list[tuple[tarfile.TarInfo, bytes | None]]


def read_members(path: Path) -> Members:
    with tarfile.open(path) as tar:
        return [(m, tar.extractfile(m).read() if m.isfile() else None) for m in tar.getmembers()]


def write_members(path: Path, members: Members, compress: bool = False) -> Path:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            info = _copy(info)
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    raw = buffer.getvalue()
    path.write_bytes(gzip.compress(raw) if compress else raw)
    return path


def _copy(info: tarfile.TarInfo) -> tarfile.TarInfo:
    new = tarfile.TarInfo(info.name)
    for attr in ("size", "mode", "type", "linkname", "mtime", "uid", "gid", "uname", "gname", "pax_headers"):
        setattr(new, attr, getattr(info, attr))
    return new


def member(name: str, data: bytes | None = None, type=tarfile.REGTYPE, linkname: str = "") -> tuple:
    info = tarfile.TarInfo(name)
    info.type = type
    info.linkname = linkname
    info.size = len(data) if data is not None else 0
    return info, data


def get(members: Members, name: str) -> bytes:
    return next(data for info, data in members if info.name == name)


def put(members: Members, name: str, data: bytes) -> Members:
    return [(info, data if info.name == name else d) for info, d in members]


def manifest(members: Members) -> dict:
    return json.loads(get(members, "manifest.json"))[0]


def edit_config(members: Members, edit) -> Members:
    """Apply *edit* to the config dict; rename the config blob to its new digest."""
    image = manifest(members)
    config = json.loads(get(members, image["Config"]))
    edit(config)
    data = json.dumps(config).encode()
    new_name = hashlib.sha256(data).hexdigest() + ".json"
    out = []
    for info, d in members:
        if info.name == image["Config"]:
            info = _copy(info)
            info.name, d = new_name, data
        out.append((info, d))
    image["Config"] = new_name
    return put(out, "manifest.json", json.dumps([image]).encode())


def make_layer(*entries) -> bytes:
    """A layer tar from (name, data, type, linkname) entries; any name is allowed."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data, type, linkname in entries:
            info, d = member(name, data, type, linkname)
            tar.addfile(info, io.BytesIO(d) if d is not None else None)
    return buffer.getvalue()


def add_layer(members: Members, layer: bytes) -> Members:
    """Append *layer* as a new, correctly digested layer."""
    digest = hashlib.sha256(layer).hexdigest()
    name = f"{digest}/layer.tar"
    members = members + [member(f"{digest}/", None, tarfile.DIRTYPE), member(name, layer)]
    image = manifest(members)
    image["Layers"].append(name)
    members = put(members, "manifest.json", json.dumps([image]).encode())
    return edit_config(members, lambda c: c["rootfs"]["diff_ids"].append(f"sha256:{digest}"))


def image_members(layer: bytes, labels=None, cmd=("/bin/true",)) -> Members:
    """A minimal legacy docker-save archive around *layer*."""
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = json.dumps({
        "os": "linux", "architecture": "amd64", "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "config": {"Cmd": list(cmd), "Labels": labels or {"ai.platform.kind": "train",
                                                          "ai.platform.device": "cpu"}},
    }).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": ["t:1"], "Layers": ["l1/layer.tar"]}]).encode()
    return [member("l1/layer.tar", layer), member(config_name, config), member("manifest.json", manifest)]


def minimal_image(path: Path, kind: str = "train", algorithm: dict | None = None) -> Path:
    """A tiny valid image tar of *kind*, labelled as `ws build` labels it."""
    labels = {"ai.platform.kind": kind, "ai.platform.device": "cpu"}
    if algorithm is not None:
        labels["ai.platform.algorithm"] = json.dumps(algorithm)
    if kind == "predict":
        labels["ai.platform.port"] = "8080"
    layer = make_layer(("app/", None, tarfile.DIRTYPE, ""), ("app/run", b"#!/bin/sh\n", tarfile.REGTYPE, ""))
    return write_members(path, image_members(layer, labels))

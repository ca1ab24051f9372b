"""`ws validate` throughput and memory against raw hashing and `docker load`, in one run.

Generates valid image tars of 1 GiB and 2 GiB (incompressible layers, so the
numbers are not flattered by sparse data), then times on each:

- raw ``hashlib.sha256`` over the file, 1 MiB reads: the physical limit here;
- ``ws validate --json`` as a subprocess, with its peak RSS;
- ``docker load -i`` of the same file (the image is removed afterwards).

    .venv/bin/python benchmarks/validate.py [--sizes-gib 1 2]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

LAYER_FILE = 256 * 1024**2


def write_image_tar(path: Path, size: int) -> None:
    """A docker-save archive with 256 MiB-file layers of random bytes, about *size* bytes."""
    layers, diff_ids = [], []
    with tarfile.open(path, "w") as out:
        for index in range(max(1, size // LAYER_FILE)):
            layer_path = path.with_suffix(f".layer{index}")
            with tarfile.open(layer_path, "w") as layer:
                info = tarfile.TarInfo(f"data/blob{index}.bin")
                info.size = LAYER_FILE
                layer.addfile(info, _RandomReader(LAYER_FILE))
            digest = hashlib.sha256(layer_path.read_bytes()).hexdigest()
            out.add(layer_path, f"{digest}/layer.tar")
            layer_path.unlink()
            layers.append(f"{digest}/layer.tar")
            diff_ids.append(f"sha256:{digest}")
        config = json.dumps({
            "architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "config": {"Cmd": ["/bin/true"], "Labels": {"ai.platform.kind": "train", "ai.platform.device": "cpu"}},
        }).encode()
        config_name = hashlib.sha256(config).hexdigest() + ".json"
        manifest = json.dumps([{"Config": config_name, "RepoTags": ["ws-bench/validate:1"], "Layers": layers}])
        for name, data in ((config_name, config), ("manifest.json", manifest.encode())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))


class _RandomReader:
    def __init__(self, size):
        self.left = size

    def read(self, n=-1):
        n = self.left if n < 0 else min(n, self.left)
        self.left -= n
        return os.urandom(n)


def timed(fn, *args) -> float:
    started = time.perf_counter()
    fn(*args)
    return time.perf_counter() - started


def raw_hash(path: Path) -> None:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)


def ws_validate(path: Path) -> tuple[float, int]:
    """Seconds and peak RSS (bytes) of `ws validate --json` in a fresh process."""
    code = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
            "r = subprocess.run([sys.executable, '-m', 'workspace_hub.cli', 'validate', '--json', sys.argv[1]], "
            "stdout=subprocess.DEVNULL); "
            "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, r.returncode)")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    seconds, rss_kib, returncode = out.stdout.split()
    assert returncode == "0", "the benchmark tar must be valid"
    return float(seconds), int(rss_kib) * 1024


def docker_load(path: Path) -> None:
    subprocess.run(["docker", "load", "-q", "-i", str(path)], check=True, capture_output=True)
    subprocess.run(["docker", "rmi", "-f", "ws-bench/validate:1"], check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes-gib", type=float, nargs="+", default=[1, 2])
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="ws-bench-validate-") as tmp:
        for gib in args.sizes_gib:
            path = Path(tmp) / f"train-bench{int(gib)}-cpu.tar"
            write_image_tar(path, int(gib * 1024**3))
            size = path.stat().st_size
            raw_hash(path)  # warm the page cache for every contender alike
            hashing = timed(raw_hash, path)
            validate, rss = ws_validate(path)
            load = timed(docker_load, path)
            rows.append((size, hashing, validate, rss, load))
            path.unlink()
    print("| tar size | raw sha256 | ws validate | throughput vs raw | peak RSS | docker load | validate / load |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for size, hashing, validate, rss, load in rows:
        print(f"| {size / 1024**3:.2f} GiB | {hashing:.2f} s ({size / hashing / 1e9:.2f} GB/s) "
              f"| {validate:.2f} s ({size / validate / 1e9:.2f} GB/s) | {hashing / validate:.2f}x "
              f"| {rss / 1024**2:.0f} MiB | {load:.2f} s | {validate / load:.2f} |")


if __name__ == "__main__":
    main()

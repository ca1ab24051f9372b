"""Datasets, in one run, each against a baseline taken in the same run.

1. Import to ``ready`` (extraction, format check, store, tree) of a zip of
   20,000 files, 1 GiB and 2 GiB, against ``unzip -q`` of the same archive;
   and the importer child's peak resident memory for each.
2. Validation of 10,000 brat pairs, against merely reading the same files.
3. A new version with one changed file: bytes the store grew by, against that
   file plus the new manifest.
4. A spawn through a real hub with a 100,000-file dataset mounted, against the
   same spawn without one (alternating, the median of each).

    .venv/bin/python benchmarks/datasets.py
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness.library import Client, running_service  # noqa: E402
from harness.waiting import wait_until  # noqa: E402
from workspace_hub.catalog import REPO_ROOT  # noqa: E402
from workspace_library.datasets.archive import Member  # noqa: E402
from workspace_library.datasets.formats import validate  # noqa: E402

FILES = 20_000
OCTETS = {"Content-Type": "application/offset+octet-stream"}


def make_zip(path: Path, total: int, files: int = FILES) -> Path:
    """*files* distinct text files (the dir format's text classes) of *total* bytes in all, stored."""
    size = total // files
    block = os.urandom(1 << 19).hex().encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for i in range(files):
            start = (i * 7919) % ((1 << 20) - size)
            archive.writestr(f"class{i % 10}/{i}.txt", block[start:start + size - 8] + b"%08d" % i)
    return path


def import_to_ready(client: Client, service, archive: Path, name: str) -> tuple[float, int]:
    size = archive.stat().st_size
    dataset = client("POST", "datasets", json={"name": name, "version": "1", "format": "dir",
                                               "archives": {"train": {"size": size}}}).json()
    path = f"datasets/{dataset['id']}/archives/train"
    chunk, offset = 256 << 20, 0
    with open(archive, "rb") as f:
        while offset < size:
            data = f.read(chunk)
            if offset + len(data) == size:
                start = time.perf_counter()  # the last byte: the import starts now
            r = client("PATCH", path, data=data, headers={**OCTETS, "Upload-Offset": str(offset)})
            assert r.status_code == 204, r.text
            offset += len(data)
    done = wait_until(lambda: (d := client("GET", f"datasets/{dataset['id']}").json())["status"]
                      not in ("validating",) and d, timeout=1800, interval=0.05)
    elapsed = time.perf_counter() - start
    assert done["status"] == "ready", done["errors"][:3]
    return elapsed, service.imports.last_peak_rss_kib


def unzip(archive: Path, work: Path) -> float:
    target = work / "unzipped"
    shutil.rmtree(target, ignore_errors=True)
    start = time.perf_counter()
    subprocess.run(["unzip", "-q", str(archive), "-d", str(target)], check=True)
    elapsed = time.perf_counter() - start
    shutil.rmtree(target)
    return elapsed


def brat_pairs(root: Path, n: int = 10_000) -> list[Member]:
    text = "Sony bought Columbia Pictures in Tokyo in 1989. " * 20
    ann = "".join(f"T{i + 1}\tOrganization {48 * i} {48 * i + 4}\tSony\n" for i in range(20))
    members = []
    for i in range(n):
        for ext, body in ((".txt", text), (".ann", ann)):
            path = root / f"doc{i}{ext}"
            path.write_text(body)
            members.append(Member(f"doc{i}{ext}", str(path), path.stat().st_size, "-", body[:512].encode()))
    return members


def spawn_with_dataset(work: Path, rounds: int = 5) -> str:
    from harness.hubprocess import HubProcess

    hub = HubProcess(work / "hub", port=19200, log_path=work / "hub.log")
    (work / "hub").mkdir()
    if (REPO_ROOT / "data" / "base-images").is_dir():
        (work / "hub" / "base-images").symlink_to(REPO_ROOT / "data" / "base-images")
    hub.start()
    try:
        client = Client(f"{hub.url}/services/library/", hub.user_token("admin"))
        archive = make_zip(work / "many.zip", 100_000 * 64, files=100_000)
        size = archive.stat().st_size
        d = client("POST", "datasets", json={"name": "many", "version": "1", "format": "dir",
                                             "archives": {"train": {"size": size}}}).json()
        client("PATCH", f"datasets/{d['id']}/archives/train", data=archive.read_bytes(),
               headers={**OCTETS, "Upload-Offset": "0"})
        done = wait_until(lambda: (x := client("GET", f"datasets/{d['id']}").json())["status"] != "validating" and x,
                          timeout=1800)
        assert done["status"] == "ready", done["errors"][:3]
        client("PATCH", f"datasets/{d['id']}", json={"visibility": "public"})
        client("POST", f"datasets/{d['id']}/online")
        hub.api("POST", "/users/bench")
        timings = {"with": [], "without": []}
        for i in range(rounds + 1):
            for label, options in (("without", {}), ("with", {"dataset": done["key"]})):
                started = time.perf_counter()
                hub.start_project("bench", f"{label}-{i}", env="python", **options)
                if i:  # the first round warms both up
                    timings[label].append(time.perf_counter() - started)
                hub.stop_project("bench", f"{label}-{i}", remove=True)
    finally:
        hub.stop()
    w, wo = statistics.median(timings["with"]), statistics.median(timings["without"])
    return (f"| spawn with a 100,000-file dataset, median of {rounds} | {w:.2f} s | the same spawn without one "
            f"{wo:.2f} s | {w / wo:.2f}x | |")


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-datasets-", dir="/var/tmp"))
    rows = []
    try:
        with running_service(work / "data") as (service, base):
            client = Client(base, "admin-token")
            for gib in (1, 2):
                archive = make_zip(work / f"{gib}.zip", gib << 30)
                baseline = unzip(archive, work)
                ours, rss = import_to_ready(client, service, archive, f"bench{gib}")
                rows.append(f"| import to ready, {gib} GiB, {FILES} files | {ours:.1f} s | unzip -q {baseline:.1f} s "
                            f"| {ours / baseline:.2f}x | importer peak RSS {rss // 1024} MiB |")
                archive.unlink()
            objects = service.imports.objects
            files = [(f"c{i % 2}/{i}.txt", f"sample {i}".encode()) for i in range(1000)]
            for version, changed in (("1", b"sample 999"), ("2", b"changed!")):
                path = work / f"v{version}.zip"
                with zipfile.ZipFile(path, "w") as archive:
                    for name, data in files[:-1] + [("c1/999.txt", changed)]:
                        archive.writestr(name, data)
                before = objects.stored_bytes()
                size = path.stat().st_size
                d = client("POST", "datasets", json={"name": "versions", "version": version, "format": "dir",
                                                     "archives": {"train": {"size": size}}}).json()
                client("PATCH", f"datasets/{d['id']}/archives/train", data=path.read_bytes(),
                       headers={**OCTETS, "Upload-Offset": "0"})
                d = wait_until(lambda: (x := client("GET", f"datasets/{d['id']}").json())["status"] == "ready" and x)
            grew = objects.stored_bytes() - before
            manifest = objects.path(d["manifests"]["train"]).stat().st_size
            rows.append(f"| new version, 1 of 1000 files changed | store grew {grew} B | changed file {len(changed)} B "
                        f"+ manifest {manifest} B | {grew / (len(changed) + manifest):.2f}x | |")
        pairs = work / "brat"
        pairs.mkdir()
        members = brat_pairs(pairs)
        os.sync()
        start = time.perf_counter()
        for m in members:
            Path(m.staged).read_bytes()
        baseline = time.perf_counter() - start
        start = time.perf_counter()
        report = validate("brat_ann", members, lambda m: Path(m.staged).read_bytes())
        ours = time.perf_counter() - start
        assert not report.problems, report.problems[:3]
        rows.append(f"| validate 10,000 brat pairs | {ours:.2f} s | read the files {baseline:.2f} s "
                    f"| {ours / baseline:.2f}x | |")
        rows.append(spawn_with_dataset(work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("| measurement | ours | baseline (same run) | ratio | note |\n| --- | --- | --- | --- | --- |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()

"""The library under load, against the hub itself, in one run.

1. List and search latency with 10,000 algorithms, against the hub's own
   ``GET /hub/api/users`` with 10,000 users (the whole list, and a 20-user page
   as the like-for-like comparison).  Every request goes through the proxy.
2. Publish-to-ready of a 1 GiB image (upload, static check, smoke run, which
   loads it into the engine), against raw hashlib over the same file and ``docker load`` of it.
3. 20 concurrent publishes of a small image by an admin (smoke run off): all
   must reach ``ready``.

    .venv/bin/python benchmarks/library.py
"""

from __future__ import annotations

import hashlib
import http.client
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docker
from sqlalchemy import create_engine, insert

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness.imagetars import minimal_image  # noqa: E402
from harness.library import Client  # noqa: E402
from harness.hubprocess import HubProcess  # noqa: E402
from workspace_library.models import Algorithm, Status, Visibility  # noqa: E402

N = 10_000
REQUESTS = 200


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[int(len(ordered) * 0.95) - 1]


def timed(call, n: int = REQUESTS) -> tuple[float, float]:
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        r = call()
        samples.append(time.perf_counter() - started)
        assert r.ok, r.text[:300]
    return percentiles(samples)


def seed(hub: HubProcess) -> None:
    engine = create_engine(f"sqlite:///{hub.data_root / 'library.sqlite'}")
    purposes = [("image", "classification"), ("image", "detection"), ("text", "classification"), ("text", "ner")]
    rows = [dict(name=f"algo-{i:05d}", version="1.0", owner=f"user{i % 50}", description=f"benchmark algorithm {i}",
                 framework=("pytorch", "keras", "sklearn")[i % 3], device="cpu",
                 visibility=(Visibility.public if i % 2 else Visibility.private), status=Status.online,
                 purpose_first=purposes[i % 4][0], purpose_second=purposes[i % 4][1], progress="", errors=[],
                 smoke=True, was_online=True, transfer_training=False) for i in range(N)]
    with engine.begin() as c:
        c.execute(insert(Algorithm), rows)
    for start in range(0, N, 1000):
        hub.api("POST", "/users", json={"usernames": [f"user{i}" for i in range(start, start + 1000)]})


def latency(hub: HubProcess, library: Client) -> list[tuple[str, float, float]]:
    hub_session = hub.session
    return [
        ("library: list, page of 20", *timed(lambda: library("GET", "algorithms?per_page=20"))),
        ("library: search q=algo-09 + filters", *timed(lambda: library(
            "GET", "algorithms?q=algo-09&purpose_first=image&framework=pytorch&per_page=20"))),
        ("hub: GET /hub/api/users?limit=20", *timed(lambda: hub_session.get(
            f"{hub.url}/hub/api/users?offset=0&limit=20", timeout=60))),
        ("hub: GET /hub/api/users (its default page)", *timed(lambda: hub_session.get(f"{hub.url}/hub/api/users",
                                                                                     timeout=60))),
    ]


def big_image(folder: Path, engine) -> Path:
    """A runnable 1 GiB train image: the OS image plus 1 GiB of random data."""
    with open(folder / "blob", "wb") as f:
        for _ in range(1024):
            f.write(hashlib.sha512(uuid.uuid4().bytes).digest() * 16384)
    (folder / "Dockerfile").write_text(
        "FROM workspace-hub/os:bookworm\nCOPY blob /opt/blob\n"
        "LABEL ai.platform.kind=train ai.platform.device=cpu\nUSER 1000\n"
        "CMD [\"python3\", \"-c\", \"open('/project/model/model.txt', 'w').write('ok')\"]\n")
    engine.images.build(path=str(folder), tag="bench/big:1", network_mode="host", rm=True)
    tar = folder / "train-big-cpu.tar"
    subprocess.run(["docker", "save", "-o", str(tar), "bench/big:1"], check=True)
    engine.images.remove("bench/big:1")
    (folder / "blob").unlink()
    return tar


def upload(hub: HubProcess, token: str, item: int, tar: Path, role: str = "train") -> float:
    boundary = uuid.uuid4().hex
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{role}\"; filename=\"{tar.name}\"\r\n"
            "Content-Type: application/x-tar\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    started = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", int(hub.url.rsplit(":", 1)[1]), timeout=600)
    connection.putrequest("POST", f"/services/library/api/algorithms/{item}/images")
    for key, value in {"Authorization": f"token {token}", "Content-Type": f"multipart/form-data; boundary={boundary}",
                       "Content-Length": str(len(head) + tar.stat().st_size + len(tail))}.items():
        connection.putheader(key, value)
    connection.endheaders()
    connection.send(head)
    with open(tar, "rb") as f:
        while chunk := f.read(1 << 20):
            connection.send(chunk)
    connection.send(tail)
    response = connection.getresponse()
    assert response.status == 202, response.read()[:300]
    return time.perf_counter() - started


def publish_to_ready(hub: HubProcess, library: Client, token: str, tar: Path) -> dict:
    item = library("POST", "algorithms", json={"name": "big", "version": uuid.uuid4().hex[:8]}).json()["id"]
    phases = {"upload": upload(hub, token, item, tar)}
    marks, last = {}, None
    started = time.perf_counter()
    while (data := library("GET", f"algorithms/{item}").json())["status"] == "validating":
        phase = data["progress"].split(" ")[0] if data["progress"] else "queued"
        if phase != last:
            marks[phase], last = time.perf_counter() - started, phase
        time.sleep(0.05)
    total = time.perf_counter() - started
    assert data["status"] == "ready", data["errors"]
    order = [p for p in ("queued", "checking", "smoke", "tagging", "loading") if p in marks] + ["ready"]
    marks["ready"] = total
    for a, b in zip(order, order[1:]):
        phases[{"queued": "queue", "checking": "validate (check_tar)", "smoke": "smoke run",
                "tagging": "tag (the smoke run loaded it)", "loading": "engine load"}[a]] = marks[b] - marks[a]
    phases["publish to ready"] = phases["upload"] + total
    return phases


def baselines(tar: Path) -> dict:
    started = time.perf_counter()
    with open(tar, "rb") as f:
        h = hashlib.sha256()
        while chunk := f.read(1 << 20):
            h.update(chunk)
    hashing = time.perf_counter() - started
    started = time.perf_counter()
    out = subprocess.run(["docker", "load", "-i", str(tar)], check=True, capture_output=True, text=True).stdout
    load = time.perf_counter() - started
    subprocess.run(["docker", "rmi", out.strip().rsplit(" ", 1)[-1]], capture_output=True)
    return {"raw sha256 (hashlib)": hashing, "docker load": load}


def concurrent(hub: HubProcess, admin: Client, folder: Path) -> list[str]:
    tar = minimal_image(folder / "train-many-cpu.tar", algorithm={"name": "many", "kind": "train"})

    def one(i: int) -> str:
        item = admin("POST", "algorithms", json={"name": "many", "version": f"c{i}", "smoke": False}).json()["id"]
        r = admin("POST", f"algorithms/{item}/images", files={"train": (tar.name, tar.open("rb"))})
        assert r.status_code == 202, r.text
        while (data := admin("GET", f"algorithms/{item}").json())["status"] == "validating":
            time.sleep(0.1)
        return data["status"]

    with ThreadPoolExecutor(20) as pool:
        return list(pool.map(one, range(20)))


def main() -> int:
    engine = docker.from_env()
    with tempfile.TemporaryDirectory(prefix="bench-library-") as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        hub = HubProcess(data, 19400, Path(tmp) / "hub.log")
        hub.start()
        try:
            hub.api("POST", "/users/bench")
            token = hub.user_token("bench")
            library = Client(f"{hub.url}/services/library/", token)
            admin = Client(f"{hub.url}/services/library/", hub.user_token("admin"))
            seed(hub)
            print("| request | p50 | p95 |\n| --- | --- | --- |")
            for name, p50, p95 in latency(hub, library):
                print(f"| {name} | {p50 * 1000:.1f} ms | {p95 * 1000:.1f} ms |")
            tar = big_image(Path(tmp), engine)
            print(f"\n1 GiB image: {tar.stat().st_size / 2**30:.2f} GiB")
            measured = baselines(tar)  # first, while the engine has none of the image's layers
            for name, seconds in {**publish_to_ready(hub, library, token, tar), **measured}.items():
                print(f"| {name} | {seconds:.2f} s |")
            statuses = concurrent(hub, admin, Path(tmp))
            print(f"\n20 concurrent publishes: {statuses.count('ready')}/20 ready ({set(statuses)})")
        finally:
            hub.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

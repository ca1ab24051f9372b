"""Models and services, in one run, each against a baseline taken in the same run.

1. Cold start: a new service with one replica, until the first 200 on ``/health`` through its address,
   against starting the same image with the same sandbox and polling ``/health`` in its namespace directly.
2. Proxy overhead: 1000 sequential calls through the address against 1000 to a replica directly.
3. Registering a 500 MiB model (a succeeded run's folder) against hashing it with sha256.
4. A redo under a loop of 2 requests a second: non-2xx answers.

    .venv/bin/python benchmarks/services.py
"""

from __future__ import annotations

import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness.library import Client, running_service  # noqa: E402
from workspace_hub.executor import ReplicaSpec  # noqa: E402
from harness.waiting import wait_until  # noqa: E402
from workspace_library.models import Algorithm, Image, ImageStatus, Run, RunStatus, Status, Visibility  # noqa: E402
from workspace_library.registry.rules import register  # noqa: E402

SERVER = (Path(__file__).resolve().parents[1] / "tests" / "integration" / "test_services_engine.py").read_text()
SERVER = SERVER.split('SERVER = """', 1)[1].split('"""', 1)[0]
INTERFACE = {"name": "predict", "method": "POST", "params": [{"name": "text", "type": "String", "test_value": "x"}]}
ROUNDS, CALLS = 5, 1000


def images(work: Path) -> dict:
    work.mkdir()
    (work / "main.py").write_text(SERVER)
    tags = {}
    for version in ("v1", "v2"):
        (work / "version").write_text(version)
        (work / "Dockerfile").write_text('FROM workspace-hub/os:bookworm\nCOPY main.py version /app/\nUSER 1000\n'
                                         'CMD ["python3", "/app/main.py"]\n')
        tags[version] = f"bench-serve/{version}:1"
        subprocess.run(["docker", "build", "-q", "-t", tags[version], str(work)], check=True, capture_output=True)
    return tags


def register_algorithms(service, tags: dict) -> dict:
    ids = {}
    with service.sessions() as db:
        for version, tag in tags.items():
            algorithm = Algorithm(name=f"echo-{version}", version="1", owner="olive", status=Status.online,
                                  visibility=Visibility.private, errors=[], progress="",
                                  predict={"command": ["python3"], "interface": INTERFACE})
            algorithm.images.append(Image(role="predict", filename="predict-echo-cpu.tar", sha256="0" * 64, size=1,
                                          tag=tag, status=ImageStatus.valid))
            db.add(algorithm)
            db.commit()
            ids[version] = algorithm.id
    return ids


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[max(0, int(len(values) * p) - 1)]


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-services-", dir="/var/tmp"))
    rows = []
    with running_service(work / "data", runs=True) as (service, base):
        owner = Client(base, "owner-token")
        ids = register_algorithms(service, images(work / "images"))
        headers = {"Authorization": "token owner-token"}
        ours, direct = [], []
        for i in range(ROUNDS):
            started = time.perf_counter()
            owner("POST", "services", json={"name": f"cold-{i}", "algorithm": ids["v1"], "replicas": 1})
            wait_until(lambda: requests.get(f"{base}serve/olive/cold-{i}/health", headers=headers,
                                            timeout=10).status_code == 200, interval=0.05, timeout=120)
            ours.append(time.perf_counter() - started)
            started = time.perf_counter()
            replica = service.executor.start_replica(ReplicaSpec("bench-serve/v1:1", "bench", work / "images"))
            replica.wait_healthy(120, poll=0.05)
            direct.append(time.perf_counter() - started)
            replica.remove()
        o, d = statistics.median(ours), statistics.median(direct)
        rows.append(f"| cold start to the first 200 on /health, median of {ROUNDS} | {o:.2f} s through the address | "
                    f"{d:.2f} s: the same container started and polled directly | {o / d:.2f}x |")

        sid = owner("POST", "services", json={"name": "echo", "algorithm": ids["v1"], "replicas": 1}).json()["id"]
        wait_until(lambda: owner("GET", f"services/{sid}").json()["status"] == "running")
        session = requests.Session()
        session.headers.update(headers)
        through = []
        for _ in range(CALLS):
            started = time.perf_counter()
            assert session.post(f"{base}serve/olive/echo/predict", json={"text": "x"}).status_code == 200
            through.append(time.perf_counter() - started)
        [replica] = [r for r, _ in service.services.pool(sid).replicas]
        plain = []
        for _ in range(CALLS):
            started = time.perf_counter()
            assert replica.request("POST", "/predict", b'{"text": "x"}', {"Content-Type": "application/json"}).status == 200
            plain.append(time.perf_counter() - started)
        p_ours, p_direct = statistics.median(through) * 1000, statistics.median(plain) * 1000
        rows.append(f"| a call, {CALLS} sequential | p50 {p_ours:.2f} ms, p95 {percentile(through, 0.95) * 1000:.2f} ms "
                    f"through the address | p50 {p_direct:.2f} ms, p95 {percentile(plain, 0.95) * 1000:.2f} ms "
                    f"to the replica directly | +{p_ours - p_direct:.2f} ms at p50 |")

        answers, stop = [], threading.Event()

        def load():
            while not stop.is_set():
                answers.append(session.post(f"{base}serve/olive/echo/predict", json={"text": "x"}).status_code)
                time.sleep(0.5)

        loader = threading.Thread(target=load)
        loader.start()
        time.sleep(1)
        assert owner("POST", f"services/{sid}/redo", json={"algorithm": ids["v2"]}).status_code == 200
        time.sleep(1.5)
        stop.set()
        loader.join()
        rows.append(f"| redo under 2 requests a second | {sum(a >= 300 for a in answers)} non-2xx of {len(answers)} "
                    f"| (target: 0) | |")

        folder = work / "model"
        folder.mkdir()
        (folder / "weights.bin").write_bytes(os.urandom(500 << 20))
        started = time.perf_counter()
        digest = hashlib.sha256()
        with open(folder / "weights.bin", "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
        hashed = time.perf_counter() - started
        with service.sessions() as db:
            run = Run(name="big", owner="olive", status=RunStatus.succeeded, algorithm_label="a", dataset_label="d",
                      image="i", dataset_manifests={}, hyperparameters={}, resources={}, metrics={}, seed=1)
            db.add(run)
            db.flush()
            started = time.perf_counter()
            register(db, service.imports.objects, run, folder)
            registered = time.perf_counter() - started
            db.commit()
        rows.append(f"| register a 500 MiB model | {registered:.2f} s | sha256 of it {hashed:.2f} s | "
                    f"{registered / hashed:.2f}x |")
    for tag in ("bench-serve/v1:1", "bench-serve/v2:1"):
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)
    shutil.rmtree(work, ignore_errors=True)
    print("| measurement | ours | baseline (same run) | ratio or difference |\n| --- | --- | --- | --- |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()

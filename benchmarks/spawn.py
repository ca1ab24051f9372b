"""Spawn time: Workspace Hub's spawner against plain DockerSpawner, in one run.

Both hubs use the same image (``workspace-hub/python:latest``), host networking
and the same REST client; the baseline is DockerSpawner with only the
host-network override its docstring asks for (``HostNetworkDockerSpawner``).
A spawn is timed from the POST until the hub reports the server ready.

    .venv/bin/python benchmarks/spawn.py [--runs 10]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docker

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the shared harness/
from harness.hubprocess import HubError, HubProcess  # noqa: E402

USER = "bench"
IMAGE = "workspace-hub/python:latest"
HUBS = {
    "plain DockerSpawner": (
        "--JupyterHub.spawner_class=workspace_hub.spawner.HostNetworkDockerSpawner",
        f"--DockerSpawner.image={IMAGE}",
        "--DockerSpawner.name_template=workspace-{username}--{servername}",
    ),
    "Workspace Hub": (),
}


def spawn(hub: HubProcess, name: str) -> float:
    started = time.perf_counter()
    hub.start_project(USER, name, env="python")
    return time.perf_counter() - started


def percentile(values: list[float], p: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(p) - 1]


def measure(label: str, args: tuple[str, ...], runs: int, workdir: Path) -> dict:
    data_root = workdir / label.replace(" ", "-") / "data"
    data_root.mkdir(parents=True)
    log = Path(tempfile.gettempdir()) / f"ws-bench-spawn-{label.replace(' ', '-')}.log"
    hub = HubProcess(data_root, port=19000, log_path=log, args=args)
    hub.start()
    try:
        hub.api("POST", f"/users/{USER}")
        spawn(hub, "warmup")
        hub.stop_project(USER, "warmup", remove=True)
        sequential = []
        for i in range(runs):
            sequential.append(spawn(hub, f"seq-{i}"))
            hub.stop_project(USER, f"seq-{i}", remove=True)
        with ThreadPoolExecutor(runs) as pool:
            concurrent = list(pool.map(lambda i: spawn(hub, f"par-{i}"), range(runs)))
        ready = sum(hub.server(USER, f"par-{i}")["ready"] for i in range(runs))
        for i in range(runs):
            hub.stop_project(USER, f"par-{i}", remove=True)
    finally:
        try:
            hub.stop()
        except HubError as e:  # not part of the measurement, but worth seeing
            print(f"warning: {e}", file=sys.stderr)
        client = docker.from_env()
        for container in client.containers.list(all=True, filters={"name": "workspace-bench"}):
            container.remove(force=True)
    return {"sequential": sequential, "concurrent": concurrent, "ready": ready}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ws-bench-spawn-") as tmp:
        results = {label: measure(label, hub_args, args.runs, Path(tmp)) for label, hub_args in HUBS.items()}
    base, ours = results["plain DockerSpawner"], results["Workspace Hub"]
    print("| spawner | sequential p50 | sequential p95 | concurrent p50 | concurrent p95 | concurrent ready |")
    print("| --- | --- | --- | --- | --- | --- |")
    for label, r in results.items():
        print(f"| {label} | {statistics.median(r['sequential']):.2f} s | {percentile(r['sequential'], 95):.2f} s "
              f"| {statistics.median(r['concurrent']):.2f} s | {percentile(r['concurrent'], 95):.2f} s "
              f"| {r['ready']}/{args.runs} |")
    print(f"| ratio (ours / plain) | {statistics.median(ours['sequential']) / statistics.median(base['sequential']):.2f} "
          f"| {percentile(ours['sequential'], 95) / percentile(base['sequential'], 95):.2f} "
          f"| {statistics.median(ours['concurrent']) / statistics.median(base['concurrent']):.2f} "
          f"| {percentile(ours['concurrent'], 95) / percentile(base['concurrent'], 95):.2f} | |")


if __name__ == "__main__":
    main()

"""Per base env: image size, no-change rebuild time and spawn-to-ready through the hub.

Cold build times come from a fresh machine's CI log (`ws envs build` prints
them), since measuring them here means deleting every image first.

    .venv/bin/python benchmarks/envs.py [--spawns 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import docker

from workspace_hub.catalog import load_catalog
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the shared harness/
from harness.hubprocess import HubProcess  # noqa: E402

USER = "bench"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spawns", type=int, default=5)
    args = parser.parse_args()
    client = docker.from_env()
    envs = [env for env in load_catalog().values() if not env.gpu]
    rows = {}
    for env in envs:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "workspace_hub.cli", "envs", "build", env.id, "--wheels", "/opt/wheels"],
                       check=True, capture_output=True)
        rows[env.id] = {"rebuild": time.perf_counter() - started, "size": client.images.get(env.image).attrs["Size"]}
    with tempfile.TemporaryDirectory(prefix="ws-bench-envs-") as tmp:
        data_root = Path(tmp) / "data"
        data_root.mkdir()
        hub = HubProcess(data_root, port=19200, log_path=Path(tmp) / "hub.log")
        hub.start()
        try:
            hub.api("POST", f"/users/{USER}")
            for env in envs:
                times = []
                for i in range(args.spawns):
                    name = f"{env.id}-{i}"
                    started = time.perf_counter()
                    hub.start_project(USER, name, env=env.id)
                    times.append(time.perf_counter() - started)
                    hub.stop_project(USER, name, remove=True)
                rows[env.id]["spawn"] = statistics.median(times)
        finally:
            hub.stop()
    print("| env | image size | no-change rebuild | spawn to ready (median) |")
    print("| --- | --- | --- | --- |")
    for env_id, row in rows.items():
        print(f"| {env_id} | {row['size'] / 1e9:.2f} GB | {row['rebuild']:.1f} s | {row['spawn']:.2f} s |")


if __name__ == "__main__":
    main()

"""Training runs, in one run, each against a baseline taken in the same run.

1. Submit to ``succeeded`` of the text-classification sample (its train image,
   built with ``ws build``) on the preset ``news-texts`` dataset, against a plain
   ``docker run`` of the same image with the same mounts, environment and sandbox.
2. Log latency: a run prints a line with its clock every 50 ms; the time until an
   SSE client of ``GET .../log?follow=1`` has it (same host clock).
3. Stop: ``POST .../stop`` until the run is ``stopped``, against ``docker stop -t 5``
   of the same image running the same way.

    .venv/bin/python benchmarks/runs.py
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import docker

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness.envs import base_image_export  # noqa: E402
from harness.library import Client, running_service  # noqa: E402
from harness.waiting import wait_until  # noqa: E402
from workspace_hub.executor.docker import SANDBOX  # noqa: E402
from workspace_library.models import Algorithm, Image, ImageStatus, Run, Status, Visibility  # noqa: E402

ROUNDS = 5
TICKER = ("import time\nfor i in range(200):\n    print(f'tick {time.time():.6f}', flush=True)\n    time.sleep(0.05)\n"
          "open('/project/model/m', 'w').write('m')\n")
SLEEPER = "import time\nwhile True:\n    time.sleep(0.1)\n"


def bayes_image(work: Path) -> str:
    ws = str(Path(sys.executable).with_name("ws"))
    subprocess.run([ws, "new", "sample", "text-classify-bayes"], cwd=work, check=True,
                   capture_output=True)
    env = {**os.environ, "WSHUB_BASE_IMAGE_DIR": str(base_image_export("python"))}
    subprocess.run([ws, "build", str(next(work.glob("*-train-*"))), "--output-dir", str(work)], env=env,
                   check=True, capture_output=True)
    tar = next(work.glob("train-*.tar"))
    [image] = docker.from_env().images.load(tar.read_bytes())
    image.tag("bench-runs/bayes", "train")
    return "bench-runs/bayes:train"


def script_image(name: str, script: str, work: Path) -> str:
    context = work / name
    context.mkdir()
    (context / "main.py").write_text(script)
    (context / "Dockerfile").write_text('FROM workspace-hub/os:bookworm\nCOPY main.py /app/main.py\nUSER 1000\n'
                                        'CMD ["python3", "/app/main.py"]\n')
    tag = f"bench-runs/{name}:1"
    subprocess.run(["docker", "build", "-q", "-t", tag, str(context)], check=True, capture_output=True)
    return tag


def register(service, name: str, tag: str) -> int:
    with service.sessions() as db:
        algorithm = Algorithm(name=name, version="1", owner="olive", visibility=Visibility.private,
                              status=Status.online, errors=[], progress="",
                              train={"command": ["python3"], "env_vars": {"EPOCHS": {"type": "Integer", "default": 5}}})
        algorithm.images.append(Image(role="train", filename=f"train-{name}-cpu.tar", sha256="0" * 64, size=1,
                                      tag=tag, status=ImageStatus.valid))
        db.add(algorithm)
        db.commit()
        return algorithm.id


def run_to_end(client: Client, algorithm: int, dataset: int, name: str) -> tuple[float, dict]:
    started = time.perf_counter()
    run = client("POST", "runs", json={"name": name, "algorithm": algorithm, "dataset": dataset, "start": True,
                                       "seed": 1}).json()
    done = wait_until(lambda: (r := client("GET", f"runs/{run['id']}").json())["status"]
                      in ("succeeded", "failed") and r, timeout=600, interval=0.02)
    assert done["status"] == "succeeded", done
    return time.perf_counter() - started, done


def docker_run(service, run_id: int, work: Path) -> float:
    """The same container the run started, by hand: same image, mounts (a fresh model folder), env, sandbox."""
    with service.sessions() as db:
        spec = service.runs.spec(db.get(Run, run_id))
    model = work / f"model-{time.monotonic_ns()}"
    model.mkdir()
    model.chmod(0o777)
    mounts = {m.host: (m.target, "ro" if m.read_only else "rw") for m in spec.mounts if m.target != "/project/model"}
    mounts[model] = ("/project/model", "rw")
    args = ["docker", "run", "--rm", "--network", "none", "--read-only", "--tmpfs", "/tmp:rw,size=256m",
            "--memory", str(spec.memory), "--memory-swap", str(spec.memory),
            "--cpus", str(spec.cpus), "--pids-limit", str(SANDBOX["pids_limit"]),
            "--cap-drop", "ALL", "--security-opt", "no-new-privileges"]
    for host, (target, mode) in mounts.items():
        args += ["-v", f"{host}:{target}:{mode}"]
    for key, value in spec.environment.items():
        args += ["-e", f"{key}={value}"]
    started = time.perf_counter()
    subprocess.run(args + [spec.image], check=True, capture_output=True)
    return time.perf_counter() - started


def log_latency(client: Client, base: str, algorithm: int, dataset: int) -> list[float]:
    import requests

    run = client("POST", "runs", json={"name": "ticker", "algorithm": algorithm, "dataset": dataset,
                                       "start": True}).json()
    delays = []
    with requests.get(f"{base}api/runs/{run['id']}/log", params={"follow": "1"}, stream=True, timeout=120,
                      headers={"Authorization": "token owner-token"}) as r:
        for raw in r.iter_lines():
            line = raw.decode()
            if line.startswith("data: tick "):
                delays.append(time.time() - float(line.split()[-1]))
            if line.startswith("event: end"):
                break
    return delays


def stop_time(client: Client, algorithm: int, dataset: int, tag: str) -> tuple[list[float], list[float]]:
    ours, base = [], []
    engine = docker.from_env()
    for i in range(ROUNDS):
        run = client("POST", "runs", json={"name": f"stop-{i}", "algorithm": algorithm, "dataset": dataset,
                                           "start": True}).json()
        wait_until(lambda: client("GET", f"runs/{run['id']}").json()["status"] == "running", interval=0.05)
        started = time.perf_counter()
        assert client("POST", f"runs/{run['id']}/stop").json()["status"] == "stopped"
        ours.append(time.perf_counter() - started)
        container = engine.containers.run(tag, detach=True, network_mode="none", read_only=True, cap_drop=["ALL"])
        time.sleep(0.5)
        started = time.perf_counter()
        subprocess.run(["docker", "stop", "-t", "5", container.id], check=True, capture_output=True)
        base.append(time.perf_counter() - started)
        container.remove(force=True)
    return ours, base


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-runs-", dir="/var/tmp"))
    rows = []
    with running_service(work / "data", runs=True) as (service, base):
        client = Client(base, "owner-token")
        dataset = wait_until(lambda: (d := client("GET", "datasets", params={"name": "news-texts"}).json()["items"])
                             and d[0]["status"] == "online" and d[0]["id"], timeout=120)
        bayes = register(service, "bayes", bayes_image(work))
        run_to_end(client, bayes, dataset, "warm-up")
        ours, plain = [], []
        for i in range(ROUNDS):
            elapsed, run = run_to_end(client, bayes, dataset, f"bench-{i}")
            ours.append(elapsed)
            plain.append(docker_run(service, run["id"], work))
        o, p = statistics.median(ours), statistics.median(plain)
        rows.append(f"| submit to succeeded, text-classification sample, median of {ROUNDS} | {o:.2f} s | "
                    f"docker run, same image, mounts, env and sandbox: {p:.2f} s | {o / p:.2f}x (+{o - p:.2f} s) |")
        ticker = register(service, "ticker", script_image("ticker", TICKER, work))
        delays = sorted(log_latency(client, base, ticker, dataset))
        rows.append(f"| log line to an SSE client, {len(delays)} lines | p50 {statistics.median(delays) * 1000:.0f} ms, "
                    f"p95 {delays[int(len(delays) * 0.95) - 1] * 1000:.0f} ms | (target: 500 ms at p95) | |")
        sleeper_tag = script_image("sleeper", SLEEPER, work)
        sleeper = register(service, "sleeper", sleeper_tag)
        ours, plain = stop_time(client, sleeper, dataset, sleeper_tag)
        o, p = statistics.median(ours), statistics.median(plain)
        rows.append(f"| stop, median of {ROUNDS} | POST stop until stopped: {o:.2f} s | docker stop -t 5: {p:.2f} s "
                    f"| {o / p:.2f}x |")
    print("| measurement | ours | baseline (same run) | ratio |\n| --- | --- | --- | --- |")
    print("\n".join(rows))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

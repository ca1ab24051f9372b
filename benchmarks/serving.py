"""Serving: a service's address against the same replicas driven directly, in one run, with wrk.

1. Scaling: 1, 2 and 3 replicas at 32 connections through the address (the library's own port, with a hub
   token: authentication, visibility and the caps as always) against the same replicas driven directly at
   once (wrk inside each replica's network namespace, the connections split between them).
2. Overhead: 1 connection, p50 through the address against p50 directly.
3. Redo under load: a redo to another image during 32 connections through the address: failed calls.

4. Batching: the pytorch sample (``image-classify-torch``, its convolutional network trained at
   ``IMG_SIZE`` 32) served by its own ``src/api.py`` in the pytorch env image, as its predict image runs it,
   at 16 connections, with ``MAX_BATCH_SIZE`` 4, 8 and 16 against 1 (wrk inside the replica's namespace,
   so that only the inference contract's server is measured), and one ``predict_batch`` of that size timed
   in the same container.

Each call of 1-3 costs the replica about 2 ms of CPU (``WORK_MS``), as a small model's predict would: a
server that does nothing answers more calls a second than any proxy on 2 cores could pass.  The replica
speaks HTTP/1.1 with keep-alive, as the template's ``src/api.py`` does.  wrk competes with both for the 2
cores.

    .venv/bin/python benchmarks/serving.py [--part scaling|batching]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness.envs import base_image_export  # noqa: E402
from harness.library import Client, running_service  # noqa: E402
from harness.waiting import status_of, wait_until  # noqa: E402
from workspace_hub.scaffold import new_sample  # noqa: E402
from workspace_library.models import Algorithm, Image, ImageStatus, Status, Visibility  # noqa: E402

SERVER = '''
import json, os, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
WORK = float(os.environ.get("WORK_MS", "2")) / 1000
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    def reply(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code); self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data))); self.end_headers(); self.wfile.write(data)
    def do_GET(self):
        self.reply(200, {"status": "ok"})
    def do_POST(self):
        params = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        started = time.process_time()
        while time.process_time() - started < WORK:
            pass
        self.reply(200, {"label": "sports", "echo": params})
    def log_message(self, *args):
        pass
class S(ThreadingHTTPServer):
    request_queue_size = 128
    daemon_threads = True
S((os.environ["HOST"], int(os.environ["PORT"])), H).serve_forever()
'''
INTERFACE = {"name": "predict", "method": "POST", "params": [{"name": "text", "type": "String", "test_value": "x"}]}
TAG = "bench-serving/predict:1"
SECONDS = 8
LUA = 'wrk.method = "POST"\nwrk.body = \'{"text": "goal"}\'\nwrk.headers["Content-Type"] = "application/json"\n'
P95 = 'done = function(summary, latency, requests) io.write(string.format("p95 %d us\\n", latency:percentile(95))) end\n'


def wrk(url: str, connections: int, script: Path, netns_pid: int | None = None) -> subprocess.Popen:
    command = ["wrk", "-t1" if connections < 4 else "-t2", f"-c{connections}", f"-d{SECONDS}s", "--latency",
               "-s", str(script), url]
    if netns_pid:
        command = ["nsenter", "-t", str(netns_pid), "-n", *command]
    return subprocess.Popen(command, stdout=subprocess.PIPE, text=True)


def result(process: subprocess.Popen) -> tuple[float, float, int]:
    """(requests a second, p50 in ms, non-2xx or socket errors) from wrk's report."""
    out = process.communicate()[0]
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    value, unit = re.search(r"50%\s+([\d.]+)(us|ms|s)", out).groups()
    p50 = float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]
    errors = sum(int(n) for n in re.findall(r"(?:Non-2xx or 3xx responses|connect|read|write|timeout)[: ]+(\d+)", out))
    return rate, p50, errors


def p95_ms(process: subprocess.Popen) -> tuple[float, float, int]:
    """(requests a second, p95 in ms, errors): wrk's report with the P95 script's line."""
    out = process.communicate()[0]
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = sum(int(n) for n in re.findall(r"(?:Non-2xx or 3xx responses|connect|read|write|timeout)[: ]+(\d+)", out))
    return rate, int(re.search(r"p95 (\d+) us", out).group(1)) / 1000, errors


SIZES = (1, 4, 8, 16)  # MAX_BATCH_SIZE; 1 is unbatched, the baseline
BATCH_TIMING = """
import json, sys, time, statistics
sys.path.insert(0, "src")
import contract, model
loaded = model.load(contract.model_dir())
params = json.loads(sys.argv[1])
times = []
for _ in range(60):
    started = time.perf_counter()
    model.predict_batch(loaded, [params] * int(sys.argv[2]))
    times.append(time.perf_counter() - started)
print(statistics.median(times[10:]) * 1000)
"""


def batching(work: Path) -> list[str]:
    """The pytorch sample served unbatched and batched, one after the other, at 16 connections."""
    image = "workspace-hub/pytorch:latest"
    if subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode:
        raise SystemExit(f"{image} is not built: .venv/bin/ws envs build pytorch --wheels /opt/wheels")
    train, api = new_sample("image-classify-torch", output_dir=work)
    model = work / "model"
    model.mkdir()
    for folder in (train, api, model):
        os.chmod(folder, 0o777)
    subprocess.run(["docker", "run", "--rm", "--network", "none", "-v", f"{train}:/project/code/p:ro", "-v",
                    f"{model}:/project/model", "-w", "/project/code/p", "-e", "IMG_SIZE=32", "-e", "EPOCHS=30",
                    "-e", "PYTHONDONTWRITEBYTECODE=1", image, "python", "src/train.py"], check=True, capture_output=True)
    accuracy = json.loads((model / "metrics.json").read_text())["accuracy"]
    interface = yaml_interface(api)
    body = json.dumps({p["name"]: p["test_value"] for p in interface["params"]})
    lua = work / "batching.lua"
    lua.write_text(f'wrk.method = "POST"\nwrk.body = {json.dumps(body)}\n'
                   'wrk.headers["Content-Type"] = "application/json"\n' + P95)
    results, compute, wait_ms = {}, {}, 5
    for size in SIZES:
        name = f"bench-batching-{size}"
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
        subprocess.run(["docker", "run", "-d", "--name", name, "--network", "none", "--read-only", "--tmpfs", "/tmp",
                        "-v", f"{api}:/project/code/p:ro", "-v", f"{model}:/project/model:ro", "-w", "/project/code/p",
                        "-e", "PYTHONDONTWRITEBYTECODE=1", "-e", f"MAX_BATCH_SIZE={size}", "-e",
                        f"MAX_BATCH_WAIT_MS={wait_ms}", image, "python", "src/api.py"], check=True, capture_output=True)
        try:
            pid = int(subprocess.run(["docker", "inspect", "-f", "{{.State.Pid}}", name], check=True,
                                     capture_output=True, text=True).stdout)
            url = f"http://127.0.0.1:8080/{interface['name']}"
            wait_until(lambda: subprocess.run(["nsenter", "-t", str(pid), "-n", "python3", "-c",
                                               "import urllib.request; urllib.request.urlopen("
                                               "'http://127.0.0.1:8080/health')"], capture_output=True).returncode == 0,
                       timeout=120, interval=0.5, what="the sample's predict server")
            wrk(url, 16, lua, pid).communicate()  # warm up: the first calls load torch's kernels
            results[size] = p95_ms(wrk(url, 16, lua, pid))
            if size > 1:
                compute[size] = float(subprocess.run(["docker", "exec", name, "python", "-c", BATCH_TIMING, body,
                                                      str(size)], check=True, capture_output=True, text=True).stdout)
        finally:
            subprocess.run(["docker", "rm", "-f", name], capture_output=True)
    one, one_p95, one_errors = results[1]
    rows = []
    for size in SIZES[1:]:
        many, many_p95, many_errors = results[size]
        rows.append(f"| pytorch sample (accuracy {accuracy:.2f} on its split), 16 connections, MAX_BATCH_SIZE {size} "
                    f"| {many:.0f} req/s, p95 {many_p95:.1f} ms, {many_errors} errors (p95 target: MAX_BATCH_WAIT_MS "
                    f"{wait_ms} + one batch's compute {compute[size]:.1f} ms = {wait_ms + compute[size]:.1f} ms) | "
                    f"unbatched: {one:.0f} req/s, p95 {one_p95:.1f} ms, {one_errors} errors | {many / one:.2f}x "
                    "(target 2) |")
    return rows


def yaml_interface(folder: Path) -> dict:
    import yaml

    return yaml.safe_load((folder / "algorithm.yaml").read_text(encoding="utf-8"))["interface"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["scaling", "batching"], help="run one part only")
    part = parser.parse_args().part
    if not shutil.which("wrk"):
        raise SystemExit("wrk is missing: apt-get install wrk (scripts/install.sh installs it with WSHUB_EXTRAS=test)")
    rows = []
    if part in (None, "batching"):
        work = Path(tempfile.mkdtemp(prefix="bench-batching-", dir="/var/tmp"))
        try:
            rows += batching(work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    if part in (None, "scaling"):
        rows = scaling() + rows
    print("| serving | through the address | the same replicas directly (same run) | ratio |\n| --- | --- | --- | --- |")
    print("\n".join(rows))


def scaling() -> list[str]:
    base_image_export("python")  # the OS image the predict image is built on
    work = Path(tempfile.mkdtemp(prefix="bench-serving-", dir="/var/tmp"))
    (work / "main.py").write_text(SERVER)
    (work / "Dockerfile").write_text('FROM workspace-hub/os:bookworm\nCOPY main.py /app/\nUSER 1000\n'
                                     'CMD ["python3", "/app/main.py"]\n')
    subprocess.run(["docker", "build", "-q", "-t", TAG, str(work)], check=True, capture_output=True)
    through_lua, direct_lua = work / "through.lua", work / "direct.lua"
    through_lua.write_text(LUA + 'wrk.headers["Authorization"] = "token owner-token"\n')
    direct_lua.write_text(LUA)
    rows, through_rates = [], {}
    with running_service(work / "data", runs=True) as (service, base):
        owner = Client(base, "owner-token")
        with service.sessions() as db:
            algorithm = Algorithm(name="bench", version="1", owner="olive", status=Status.online,
                                  visibility=Visibility.private, errors=[], progress="",
                                  predict={"command": ["python3"], "interface": INTERFACE})
            algorithm.images.append(Image(role="predict", filename="predict-bench-cpu.tar", sha256="0" * 64, size=1,
                                          tag=TAG, status=ImageStatus.valid))
            db.add(algorithm)
            db.commit()
            algorithm_id = algorithm.id
        sid = owner("POST", "services", json={"name": "bench", "algorithm": algorithm_id, "replicas": 1}).json()["id"]
        address = f"{base}serve/olive/bench/predict"
        for replicas in (1, 2, 3):
            owner("POST", f"services/{sid}/scale", json={"replicas": replicas})
            wait_until(lambda: owner("GET", f"services/{sid}").json()["metrics"]["healthy"] == replicas,
                       timeout=120, interval=0.2, what=f"{replicas} healthy replicas")
            time.sleep(1)
            through = result(wrk(address, 32, through_lua))
            pids = [r.container.attrs["State"]["Pid"] for r, _ in service.services.pool(sid).replicas]
            runs = [wrk("http://127.0.0.1:8080/predict", 32 // replicas + (i < 32 % replicas), direct_lua, pid)
                    for i, pid in enumerate(pids)]
            direct = [result(p) for p in runs]
            direct_rate = sum(r for r, _, _ in direct)
            through_rates[replicas] = through[0]
            rows.append(f"| {replicas} replica{'s' if replicas > 1 else ''}, 32 connections | {through[0]:.0f} req/s, "
                        f"p50 {through[1]:.1f} ms, {through[2]} errors | {direct_rate:.0f} req/s directly "
                        f"({', '.join(f'{r:.0f}' for r, _, _ in direct)}) | {through[0] / direct_rate:.2f}x |")
            if replicas == 1:
                one_through, one_direct = result(wrk(address, 1, through_lua)), \
                    result(wrk("http://127.0.0.1:8080/predict", 1, direct_lua, pids[0]))
        rows.append(f"| 3 replicas against 1, through the address | {through_rates[3]:.0f} req/s | "
                    f"{through_rates[1]:.0f} req/s | {through_rates[3] / through_rates[1]:.2f}x |")
        rows.append(f"| 1 connection, p50 | {one_through[1]:.2f} ms through the address ({one_through[0]:.0f} req/s) "
                    f"| {one_direct[1]:.2f} ms directly ({one_direct[0]:.0f} req/s) | "
                    f"+{one_through[1] - one_direct[1]:.2f} ms |")
        # a redo to another algorithm's image while 32 connections call the address
        with service.sessions() as db:
            other = Algorithm(name="bench-2", version="1", owner="olive", status=Status.online,
                              visibility=Visibility.private, errors=[], progress="",
                              predict={"command": ["python3"], "interface": INTERFACE})
            other.images.append(Image(role="predict", filename="predict-bench-cpu.tar", sha256="0" * 64, size=1,
                                      tag=TAG, status=ImageStatus.valid))
            db.add(other)
            db.commit()
            other_id = other.id
        load = wrk(address, 32, through_lua)
        time.sleep(2)
        redone = owner("POST", f"services/{sid}/redo", json={"algorithm": other_id})
        rate, _, errors = result(load)
        rows.append(f"| redo under 32 connections | {errors} failed calls ({rate:.0f} req/s during it, the redo "
                    f"answered {redone.status_code}) | (target: 0) | |")
        owner("DELETE", f"services/{sid}")
    subprocess.run(["docker", "rmi", "-f", TAG], capture_output=True)
    shutil.rmtree(work, ignore_errors=True)
    return rows


if __name__ == "__main__":
    main()

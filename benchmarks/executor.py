"""The executor's costs against same-run baselines.

1. Load by digest: ``DockerExecutor.load`` streams a tar re-serialised from the
   checked members (``validate.validated_archive``) into the engine.  Baseline:
   ``docker load`` of the uploaded file itself.  A 512 MiB image, removed
   before each load, median of 3.
2. Reaching a replica: 1000 sequential ``GET /health`` to a predict container
   with no network, through its network namespace.  Baseline: the same server
   in a container on the host network, called on loopback.

    python benchmarks/executor.py
"""

from __future__ import annotations

import http.client
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the shared harness/
from harness.waiting import free_port, wait_until  # noqa: E402
from workspace_hub.envbuild import OS_IMAGE  # noqa: E402
from workspace_hub.executor import ReplicaSpec  # noqa: E402
from workspace_hub.executor.docker import SANDBOX, DockerExecutor  # noqa: E402
from workspace_hub.validate import check_tar  # noqa: E402

SERVER = ("import http.server, os\n"
          "class H(http.server.BaseHTTPRequestHandler):\n"
          "    protocol_version = 'HTTP/1.0'\n"
          "    def do_GET(self):\n"
          "        self.send_response(200); self.send_header('Content-Length', '2'); self.end_headers()\n"
          "        self.wfile.write(b'ok')\n"
          "    def log_message(self, *a): pass\n"
          "http.server.HTTPServer((os.environ['HOST'], int(os.environ['PORT'])), H).serve_forever()\n")


def build_image(tmp: Path, size_mib: int) -> tuple[Path, str]:
    (tmp / "server.py").write_text(SERVER)
    (tmp / "Dockerfile").write_text(
        f"FROM {OS_IMAGE}\nRUN head -c {size_mib}M /dev/urandom > /blob\nCOPY server.py /server.py\n"
        "LABEL ai.platform.kind=predict ai.platform.device=cpu ai.platform.port=8080\n"
        'CMD ["python3", "/server.py"]\n')
    subprocess.run(["docker", "build", "-q", "-t", "bench/executor:1", str(tmp)], check=True, capture_output=True)
    path = tmp / "predict-bench-cpu.tar"
    subprocess.run(["docker", "save", "-o", str(path), "bench/executor:1"], check=True)
    image_id = subprocess.run(["docker", "image", "inspect", "-f", "{{.Id}}", "bench/executor:1"], check=True,
                              capture_output=True, text=True).stdout.strip()
    subprocess.run(["docker", "rmi", "-f", "bench/executor:1"], check=True, capture_output=True)
    return path, image_id


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def loads(executor: DockerExecutor, path: Path, image_id: str, rounds: int = 3) -> dict[str, float]:
    report = check_tar(path)
    assert report.valid, report.errors
    remove = lambda: subprocess.run(["docker", "rmi", "-f", image_id], capture_output=True)  # noqa: E731
    baseline, ours = [], []
    for _ in range(rounds):
        remove()
        baseline.append(timed(lambda: subprocess.run(["docker", "load", "-q", "-i", str(path)], check=True,
                                                     capture_output=True)))
        remove()
        ours.append(timed(lambda: executor.load(path, report)))
    remove()
    return {"docker load": statistics.median(baseline), "executor.load": statistics.median(ours)}


def latencies(executor: DockerExecutor, path: Path, image_id: str, calls: int = 1000) -> dict[str, float]:
    subprocess.run(["docker", "load", "-q", "-i", str(path)], check=True, capture_output=True)
    replica = executor.start_replica(ReplicaSpec(image_id, "bench", Path(tempfile.mkdtemp())))
    port = free_port()
    host = executor.client.containers.run(image_id, detach=True, environment={"PORT": str(port), "HOST": "127.0.0.1"},
                                          **{**SANDBOX, "network_mode": "host"})
    try:
        replica.wait_healthy(60)
        wait_until(lambda: _direct(port) == 200, 60, 0.1, "the host-network container")
        direct = [_timed_call(lambda: _direct(port)) for _ in range(calls)]
        through = [_timed_call(lambda: replica.request("GET", "/health").status) for _ in range(calls)]
    finally:
        replica.remove()
        host.remove(force=True)
        subprocess.run(["docker", "rmi", "-f", image_id], capture_output=True)
    return {"direct p50": statistics.median(direct), "netns p50": statistics.median(through),
            "direct p95": statistics.quantiles(direct, n=20)[18], "netns p95": statistics.quantiles(through, n=20)[18]}


def _direct(port: int) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/health")
        return connection.getresponse().status
    except OSError:
        return 0
    finally:
        connection.close()


def _timed_call(fn) -> float:
    started = time.perf_counter()
    assert fn() == 200
    return (time.perf_counter() - started) * 1000


def main() -> None:
    executor = DockerExecutor(owner="bench")
    with tempfile.TemporaryDirectory(prefix="bench-executor-") as tmp:
        path, image_id = build_image(Path(tmp), 512)
        load = loads(executor, path, image_id)
        print(f"load of a {path.stat().st_size / 1024**2:.0f} MiB tar, median of 3: docker load "
              f"{load['docker load']:.2f} s, executor.load {load['executor.load']:.2f} s "
              f"(ratio {load['executor.load'] / load['docker load']:.2f})")
        lat = latencies(executor, path, image_id)
        print(f"GET /health x1000: direct on loopback p50 {lat['direct p50']:.2f} ms p95 {lat['direct p95']:.2f} ms; "
              f"through the namespace p50 {lat['netns p50']:.2f} ms p95 {lat['netns p95']:.2f} ms "
              f"(+{lat['netns p50'] - lat['direct p50']:.2f} ms at p50)")


if __name__ == "__main__":
    main()

"""Inference services on the real engine, the library in-process: replicas, health-driven status, the stable
address with its authorization, a killed replica, stop and start, and rolling redos under load.

The predict images are tiny echo servers (python on the bootstrapped Debian) that report their version;
``broken`` answers ``/health`` with a 500.
"""

import threading
import time

import pytest
import requests

from harness.library import Client, running_service
from harness.waiting import wait_until
from workspace_library.models import Algorithm, Image, ImageStatus, Status, Visibility

pytestmark = pytest.mark.docker

SERVER = """
import json, os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
VERSION = open("/app/version").read().strip()
class H(BaseHTTPRequestHandler):
    def reply(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code); self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data))); self.end_headers(); self.wfile.write(data)
    def do_GET(self):
        self.reply(500 if VERSION == "broken" else 200, {"status": VERSION}) if self.path == "/health" else self.reply(404, {})
    def do_POST(self):
        params = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        self.reply(200, {"version": VERSION, "echo": params})
    def log_message(self, *args):
        pass
ThreadingHTTPServer((os.environ["HOST"], int(os.environ["PORT"])), H).serve_forever()
"""
INTERFACE = {"name": "predict", "method": "POST",
             "params": [{"name": "text", "type": "String", "required": True, "test_value": "hello"}]}


@pytest.fixture(scope="module")
def library(tmp_path_factory, engine):
    import subprocess

    from workspace_hub.envbuild import OS_IMAGE

    work = tmp_path_factory.mktemp("serve")
    (work / "main.py").write_text(SERVER)
    for version in ("v1", "v2", "broken"):
        (work / "version").write_text(version)
        (work / "Dockerfile").write_text(f"FROM {OS_IMAGE}\nCOPY main.py version /app/\nUSER 1000\n"
                                         'CMD ["python3", "/app/main.py"]\n')
        subprocess.run(["docker", "build", "-q", "-t", f"ws-test-serve/{version}:1", str(work)], check=True,
                       capture_output=True)
    with running_service(work / "data", runs=True, service_health_timeout=10) as (service, base):
        ids = {}
        with service.sessions() as db:
            for version in ("v1", "v2", "broken"):
                algorithm = Algorithm(name=f"echo-{version}", version="1", owner="olive", status=Status.online,
                                      visibility=Visibility.private, errors=[], progress="",
                                      predict={"command": ["python3"], "interface": INTERFACE})
                algorithm.images.append(Image(role="predict", filename="predict-echo-cpu.tar", sha256="0" * 64,
                                              size=1, tag=f"ws-test-serve/{version}:1", status=ImageStatus.valid))
                db.add(algorithm)
                db.commit()
                ids[version] = algorithm.id
        yield service, base, ids
    for version in ("v1", "v2", "broken"):
        engine.images.remove(f"ws-test-serve/{version}:1", force=True)


def status(client, service_id) -> str:
    return client("GET", f"services/{service_id}").json()["status"]


def call(base: str, token: str, path: str = "serve/olive/echo/predict") -> requests.Response:
    return requests.post(base + path, json={"text": "x"}, headers={"Authorization": f"token {token}"}, timeout=30)


def test_a_service_serves_at_its_address_survives_a_killed_replica_and_keeps_its_address(library, engine):
    service, base, ids = library
    owner, other = Client(base, "owner-token"), Client(base, "other-token")
    created = owner("POST", "services", json={"name": "echo", "algorithm": ids["v1"], "replicas": 2}).json()
    sid = created["id"]
    assert created["address"] == "/services/library/serve/olive/echo/"
    wait_until(lambda: status(owner, sid) == "running", what="two healthy replicas")
    assert call(base, "owner-token").json() == {"version": "v1", "echo": {"text": "x"}}
    assert call(base, "other-token").status_code == 404  # private: another user cannot call it
    test = owner("POST", f"services/{sid}/test", json={}).json()
    assert test["status"] == 200 and test["response"]["echo"] == {"text": "hello"} and test["latency_ms"] > 0

    replicas = [c for c in engine.containers.list() if c.labels.get("ai.workspace-hub.run") == "service"
                and c.labels.get("ai.workspace-hub.owner") == service.validations.executor.owner]
    assert len(replicas) == 2
    assert all(c.attrs["HostConfig"]["NetworkMode"] == "none" for c in replicas)
    replicas[0].kill()
    wait_until(lambda: status(owner, sid) == "degraded", timeout=10, interval=0.1, what="degraded")
    assert call(base, "owner-token").status_code == 200  # the other replica serves meanwhile
    wait_until(lambda: status(owner, sid) == "running", what="a replacement replica")

    assert owner("POST", f"services/{sid}/stop").json()["status"] == "stopped"
    stopped = call(base, "owner-token")
    assert stopped.status_code == 503 and stopped.json()["error"]["code"] == "stopped"
    owner("POST", f"services/{sid}/start", json={"replicas": 1})
    wait_until(lambda: status(owner, sid) == "running", what="the service to start again")
    assert call(base, "owner-token").json()["version"] == "v1"  # the same address serves

    owner("PATCH", f"services/{sid}", json={"visibility": "public"})
    assert call(base, "other-token").status_code == 200
    assert other("POST", f"services/{sid}/stop").status_code == 403  # calling is not controlling
    metrics = owner("GET", f"services/{sid}").json()["metrics"]
    assert metrics["calls"] >= 5 and metrics["errors"] == 0 and metrics["p50_ms"] is not None
    # and for Prometheus: the calls by code, the replicas that answered them
    from prometheus_client.parser import text_string_to_metric_families

    scraped = requests.get(f"{base}metrics", headers={"Authorization": "token admin-token"}, timeout=10).text
    samples = [s for f in text_string_to_metric_families(scraped) for s in f.samples
               if s.labels.get("service") == "olive/echo"]
    assert sum(s.value for s in samples if s.name == "workspace_library_service_calls_total"
               and s.labels["code"] == "200") >= 4  # the calls through the address above
    # per replica, only the running one (a removed replica's series go with it): calls, errors, latency, in flight
    [replica] = {s.labels["replica"] for s in samples if s.name == "workspace_library_replica_calls_total"}
    mine = {s.name: s.value for s in samples if s.labels.get("replica") == replica and "le" not in s.labels}
    assert mine["workspace_library_replica_calls_total"] >= 1 and mine["workspace_library_replica_errors_total"] == 0
    assert mine["workspace_library_replica_call_seconds_count"] == mine["workspace_library_replica_calls_total"]
    assert mine["workspace_library_replica_in_flight"] == 0


def test_a_redo_under_load_fails_no_request_and_a_bad_one_rolls_back(library):
    _, base, ids = library
    owner = Client(base, "owner-token")
    sid = owner("POST", "services", json={"name": "rolling", "algorithm": ids["v1"], "replicas": 2}).json()["id"]
    wait_until(lambda: status(owner, sid) == "running", what="two healthy replicas")
    answers, stop = [], threading.Event()

    def load():  # 2 requests a second, as the redo test asks
        while not stop.is_set():
            answers.append(call(base, "owner-token", "serve/olive/rolling/predict"))
            time.sleep(0.5)

    loader = threading.Thread(target=load)
    loader.start()
    try:
        time.sleep(1)
        bad = owner("POST", f"services/{sid}/redo", json={"algorithm": ids["broken"]})
        assert bad.status_code == 409 and bad.json()["error"]["code"] == "redo-failed"
        good = owner("POST", f"services/{sid}/redo", json={"algorithm": ids["v2"]})
        assert good.status_code == 200 and good.json()["revision"] == 2
        time.sleep(1.5)
    finally:
        stop.set()
        loader.join()
    assert [a.status_code for a in answers] == [200] * len(answers) and len(answers) >= 6
    versions = [a.json()["version"] for a in answers]
    assert "broken" not in versions and versions[0] == "v1" and versions[-1] == "v2"
    assert versions == sorted(versions)  # v1 until the switch, then v2: never back

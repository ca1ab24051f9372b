"""The executor's Kubernetes backend over real HTTP, against a Kubernetes API mock server.

The test plays the Job controller and the kubelet (:class:`tests.kube_cluster.Cluster`): it creates each
Job's pod, moves it through its phases, sets container statuses, serves its log and gives replica pods
an address.  The library's side is the real :class:`KubernetesExecutor`, through ``kubernetes_asyncio``.
"""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from traitlets.config import Config

from harness.library import Client, running_service
from workspace_hub.executor import BatchSpec, EngineUnavailable, Executor, Mount, ReplicaSpec
from workspace_hub.executor.kubernetes import KubernetesExecutor, credentials_problem

from ..kube_cluster import NAMESPACE, Cluster
from ..unit.test_runs import online_algorithm_and_dataset
from ..unit.test_services import predict_algorithm

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def cluster():
    the_cluster = Cluster()
    yield the_cluster
    the_cluster.close()


@pytest.fixture
def connect(cluster, tmp_path, monkeypatch):
    """An executor of the library (as after each start of it) against the cluster."""
    monkeypatch.setenv("KUBECONFIG", cluster.kubeconfig(tmp_path / "kubeconfig"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    (tmp_path / "data").mkdir()

    made = []

    def make(owner="library-test", **traits):
        made.append(KubernetesExecutor(owner=owner, namespace=NAMESPACE, data_root=str(tmp_path / "data"), **traits))
        return made[-1]

    yield make
    for executor in made:
        executor.close()


def a_run(tmp_path, key="k" * 32, **fields) -> BatchSpec:
    model = tmp_path / "data" / "library" / "runs" / key / "model"
    model.mkdir(parents=True, exist_ok=True)
    return BatchSpec("registry.example/algorithms/a@sha256:" + "a" * 64, "run", key=key, deadline=600,
                     mounts=(Mount(model, "/project/model", read_only=False),), model=model, **fields)


# -- runs: every end, as on Docker ---------------------------------------------------------------------

ENDS = {
    "succeeded": (0, "Completed", ("Complete", ""), "succeeded", None),
    "exit-code": (3, "Error", ("Failed", "BackoffLimitExceeded"), "failed", "exit-code"),
    "oom": (137, "OOMKilled", ("Failed", "BackoffLimitExceeded"), "failed", "oom"),
    "max-runtime": (137, "Error", ("Failed", "DeadlineExceeded"), "failed", "max-runtime"),
}


@pytest.mark.parametrize("end", ENDS)
def test_a_run_is_a_job_and_its_end_is_the_one_docker_would_give(cluster, connect, tmp_path, end):
    exit_code, reason, condition, state, why = ENDS[end]
    executor = connect()
    spec = a_run(tmp_path)
    handle = executor.start_batch(spec)
    ended = []
    waiter = threading.Thread(target=lambda: ended.append(handle.wait(model=spec.model)))
    waiter.start()  # at once, as the queue does: the watch has not brought the Job yet
    job = cluster.job()
    assert job["metadata"]["name"] == "run-" + "k" * 32 and job["spec"]["activeDeadlineSeconds"] == 600
    assert job["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
    pod = cluster.start_pod(job)
    cluster.run_pod(pod)
    (spec.model / "model.pkl").write_bytes(b"weights")  # what the container writes
    cluster.end_pod(pod, exit_code, reason)
    cluster.condition(job["metadata"]["name"], *condition)
    waiter.join(20)
    [outcome] = ended
    assert (outcome.state.value, outcome.reason.value if outcome.reason else None) == (state, why)
    assert handle.image_id == "sha256:" + "f" * 64  # what ran, as the kubelet reported it


def test_a_run_that_writes_no_model_is_no_model(cluster, connect, tmp_path):
    spec = a_run(tmp_path)
    handle = connect().start_batch(spec)
    job = cluster.job()
    pod = cluster.start_pod(job)
    cluster.end_pod(pod, 0)
    cluster.condition(job["metadata"]["name"], "Complete")
    assert handle.wait(model=spec.model).reason.value == "no-model"


@pytest.mark.parametrize("status, says", [
    ({"phase": "Pending", "containerStatuses": [{"name": "run", "ready": False, "restartCount": 0, "image": "i",
                                                 "imageID": "", "state": {"waiting": {
                                                     "reason": "ErrImagePull", "message": "manifest unknown"}}}]},
     "ErrImagePull: manifest unknown"),
    ({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                          "lastTransitionTime": "2026-01-01T00:00:00Z",
                                          "message": "0/3 nodes are available: 3 Insufficient memory."}]},
     "no node can take the run: 0/3 nodes are available: 3 Insufficient memory."),
    ({"phase": "Failed", "reason": "Evicted", "message": "The node was low on resource: memory."},
     "the node evicted the run: The node was low on resource: memory."),
])
def test_what_the_cluster_fails_is_the_platform_with_its_message(cluster, connect, tmp_path, status, says):
    handle = connect().start_batch(a_run(tmp_path))
    pod = cluster.start_pod(cluster.job())
    cluster.patch("pods", pod, {"status": status})
    outcome = handle.wait()
    assert (outcome.state.value, outcome.reason.value, outcome.message) == ("failed", "platform", says)


def test_the_log_is_followed_until_the_run_ends(cluster, connect, tmp_path):
    handle = connect().start_batch(a_run(tmp_path))
    job = cluster.job()
    pod = cluster.start_pod(job)
    cluster.run_pod(pod)
    chunks = []
    follower = threading.Thread(target=lambda: chunks.extend(handle.logs(follow=True)))
    follower.start()
    cluster.logs[pod] = b"epoch 1 loss=0.9\n"
    cluster.wait_for(lambda: b"".join(chunks) == b"epoch 1 loss=0.9\n")
    cluster.logs[pod] += b"epoch 2 loss=0.5\n"
    cluster.end_pod(pod, 0)
    cluster.condition(job["metadata"]["name"], "Complete")
    follower.join(10)
    assert b"".join(chunks) == b"epoch 1 loss=0.9\nepoch 2 loss=0.5\n"  # each line once
    assert handle.tail(1) == "epoch 2 loss=0.5"


def test_stop_deletes_the_job_and_the_run_is_stopped(cluster, connect, tmp_path):
    handle = connect().start_batch(a_run(tmp_path))
    job = cluster.job()
    cluster.run_pod(cluster.start_pod(job))
    handle.stop(5)
    assert cluster.get("jobs", job["metadata"]["name"]) is None
    delete = cluster.requests_for("DELETE", "/jobs/")[-1]
    assert delete.data["propagationPolicy"] == "Foreground" and delete.data["gracePeriodSeconds"] == 5
    assert handle.wait(stopped=lambda: True).state.value == "stopped"


def test_after_a_restart_the_library_finds_its_runs_by_label(cluster, connect, tmp_path):
    connect().start_batch(a_run(tmp_path, key="a" * 32))
    connect(owner="library-another-hub").start_batch(a_run(tmp_path, key="b" * 32))
    restarted = connect()
    found = restarted.find("a" * 32)
    assert found is not None and found.name == "run-" + "a" * 32
    assert restarted.find("b" * 32) is None  # another library's run is not this one's
    pod = cluster.start_pod(cluster.get("jobs", found.name))
    cluster.logs[pod] = b"before the restart\n"
    cluster.end_pod(pod, 3, "Error")
    cluster.condition(found.name, "Failed", "BackoffLimitExceeded")
    assert found.wait().reason.value == "exit-code"


def test_many_runs_share_one_watch_per_kind(cluster, connect, tmp_path):
    executor = connect()
    handles = [executor.start_batch(a_run(tmp_path, key=f"{i:032d}")) for i in range(5)]
    for handle in handles:
        pod = cluster.start_pod(cluster.get("jobs", handle.name))
        cluster.end_pod(pod, 0)
        cluster.condition(handle.name, "Complete")
    assert [h.wait().state.value for h in handles] == ["succeeded"] * 5
    assert len(cluster.requests_for("GET", "/pods", watch="True")) == 1
    assert len(cluster.requests_for("GET", "/jobs", watch="True")) == 1
    assert not cluster.requests_for("GET", "/jobs/")  # nothing read one Job at a time


def test_a_dropped_watch_resumes_and_a_410_lists_again(cluster, connect, tmp_path):
    cluster.watch_faults += ["drop", "gone"]
    executor = connect()
    handle = executor.start_batch(a_run(tmp_path))
    pod = cluster.start_pod(cluster.job())
    cluster.end_pod(pod, 0)
    cluster.condition(handle.name, "Complete")
    assert handle.wait().state.value == "succeeded"  # the cache caught up with what happened meanwhile
    cluster.wait_for(lambda: executor.pods.lists == 2)  # once at the start, once after the 410
    watches = cluster.wait_for(lambda: cluster.requests_for("GET", "/pods", watch="True")[2:] and
                               cluster.requests_for("GET", "/pods", watch="True"))
    assert "resourceVersion" in watches[1].params  # the dropped watch resumed where it was


def test_leftovers_go_and_runs_and_services_stay(cluster, connect, tmp_path):
    executor = connect()
    executor.start_batch(a_run(tmp_path))
    executor.start_replica(ReplicaSpec("image", "test", tmp_path / "data", key="t" * 32))
    executor.start_replica(ReplicaSpec("image", "service", tmp_path / "data", key="s" * 32))
    cluster.wait_for(lambda: len(cluster.list("pods")) == 2 and len(cluster.list("jobs")) == 1)
    assert connect().remove_leftovers() == 1  # the online test's pod
    assert sorted(j["metadata"]["labels"]["ai.workspace-hub.run"] for j in cluster.list("jobs")) == ["run"]
    assert [p["metadata"]["labels"]["ai.workspace-hub.run"] for p in cluster.list("pods")] == ["service"]


# -- the library on the cluster: the API, the queue, the log, the registry ---------------------------------

@pytest.fixture
def library(cluster, tmp_path, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", cluster.kubeconfig(tmp_path / "kubeconfig"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    data_root = tmp_path / "data"
    config = Config({"KubernetesExecutor": {"namespace": NAMESPACE, "data_root": str(data_root)}})
    with running_service(data_root, runs=True, executor_class=KubernetesExecutor, config=config, run_slots=1,
                         smoke_by_default=False) as (service, base):
        yield service, Client(base, "owner-token")


def train(cluster, data_root: Path, job: dict, lines: bytes, exit_code: int = 0) -> None:
    """The kubelet runs the training container: it logs *lines*, writes a model, and exits."""
    pod = cluster.start_pod(job)
    cluster.run_pod(pod)
    [model] = [m for m in job["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
               if m["mountPath"] == "/project/model"]
    (data_root / model["subPath"] / "model.txt").write_text("w")
    cluster.logs[pod] = lines
    cluster.end_pod(pod, exit_code)
    cluster.condition(job["metadata"]["name"], "Complete" if exit_code == 0 else "Failed")


def test_a_run_goes_from_the_api_to_a_job_to_a_registered_model_and_waits_for_its_slot(cluster, library, tmp_path):
    service, olive = library
    algorithm, dataset = online_algorithm_and_dataset(service)
    first, second = (olive("POST", "runs", json={"name": name, "algorithm": algorithm, "dataset": dataset,
                                                 "start": True, "hyperparameters": {"EPOCHS": 2}}).json()
                     for name in ("on-k8s", "next"))
    job = cluster.job()
    assert len(cluster.list("jobs")) == 1 and olive("GET", f"runs/{second['id']}").json()["status"] == "queued"
    train(cluster, tmp_path / "data", job, b"epoch 1\nmetric: epoch=1 loss=1.0\nepoch 2\nmetric: epoch=2 loss=0.5\n")
    done = cluster.wait_for(lambda: (r := olive("GET", f"runs/{first['id']}").json())["status"] == "succeeded" and r)
    assert done["message"].startswith("registered as model on-k8s")
    assert olive("GET", f"runs/{first['id']}/log").text.splitlines() == [
        "epoch 1", "metric: epoch=1 loss=1.0", "epoch 2", "metric: epoch=2 loss=0.5"]
    points = olive("GET", f"runs/{first['id']}/metrics").json()["points"]
    assert [(p["epoch"], p["loss"]) for p in points] == [(1, 1.0), (2, 0.5)]
    assert [m["name"] for m in olive("GET", "models", params={"name": "on-k8s"}).json()["items"]] == ["on-k8s"]
    # the slot is free: the queued run starts now
    cluster.wait_for(lambda: any(j["metadata"]["name"] != job["metadata"]["name"] for j in cluster.list("jobs")))
    assert olive("GET", f"runs/{second['id']}").json()["status"] in ("starting", "running")
    # a stop deletes its Job; the run ends stopped
    assert olive("POST", f"runs/{second['id']}/stop", json={}).status_code == 200
    cluster.wait_for(lambda: olive("GET", f"runs/{second['id']}").json()["status"] == "stopped")
    assert cluster.list("jobs") == []  # the ended one went once its end was recorded, the stopped one with its stop


def test_a_service_is_a_deployment_behind_a_service_address_that_outlives_a_stop(cluster, tmp_path, monkeypatch,
                                                                              predict_server):
    monkeypatch.setenv("KUBECONFIG", cluster.kubeconfig(tmp_path / "kubeconfig"))
    data_root = tmp_path / "data"
    config = Config({"KubernetesExecutor": {"namespace": NAMESPACE, "data_root": str(data_root),
                                            "service_port": predict_server}})
    with running_service(data_root, runs=True, executor_class=KubernetesExecutor, config=config,
                         service_health_timeout=3, smoke_by_default=False) as (service, base):
        olive, other = Client(base, "owner-token"), Client(base, "other-token")

        def call(client: Client, body: bytes):  # the stable address, beside the API
            return client.session.post(f"{base}serve/olive/news/predict", data=body, timeout=30)
        created = olive("POST", "services", json={"name": "news", "algorithm": predict_algorithm(service),
                                                  "replicas": 2, "visibility": "private"}).json()
        deployment = cluster.deployment()
        name = deployment["metadata"]["name"]
        assert deployment["spec"]["replicas"] == 2
        assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
        cluster.expose(name)
        cluster.roll(name)
        status = lambda: olive("GET", f"services/{created['id']}").json()
        cluster.wait_for(lambda: status()["status"] == "running")
        assert status()["metrics"]["healthy"] == 2
        answer = call(olive, b'{"text": "goal"}')
        assert (answer.status_code, answer.json()) == (200, {"predictions": [{"text": "goal"}]})
        # the address keeps its rules: another user does not see a private service, nobody calls it anonymously
        assert call(other, b"{}").status_code == 404
        assert call(Client(base, None), b"{}").status_code in (401, 403)

        assert olive("POST", f"services/{created['id']}/scale", json={"replicas": 3}).status_code == 200
        cluster.wait_for(lambda: cluster.get("deployments", name)["spec"]["replicas"] == 3)
        olive("POST", f"services/{created['id']}/stop", json={})
        cluster.wait_for(lambda: cluster.get("deployments", name)["spec"]["replicas"] == 0)
        cluster.roll(name)
        cluster.wait_for(lambda: status()["status"] == "stopped")
        assert cluster.get("services", name)["spec"]["clusterIP"] == "127.0.0.1"  # the address stays
        olive("POST", f"services/{created['id']}/start", json={"replicas": 1})
        cluster.wait_for(lambda: cluster.get("deployments", name)["spec"]["replicas"] == 1)
        cluster.roll(name)
        cluster.wait_for(lambda: status()["status"] == "running")

        # a redo is the Deployment's rolling update: done once the new revision is ready...
        redo = threading.Thread(target=lambda: done.append(olive("POST", f"services/{created['id']}/redo",
                                                                 json={"algorithm": predict_algorithm(service)})))
        done = []
        redo.start()
        cluster.wait_for(lambda: revision(cluster, name) == "2")
        cluster.roll(name)
        redo.join(10)
        assert done[0].status_code == 200 and done[0].json()["revision"] == 2
        # ...and rolled back when the new revision never gets ready
        redo = threading.Thread(target=lambda: done.append(olive("POST", f"services/{created['id']}/redo",
                                                                 json={"algorithm": predict_algorithm(service)})))
        redo.start()
        cluster.wait_for(lambda: revision(cluster, name) == "3")
        cluster.roll(name, ready=False)
        redo.join(20)
        assert done[1].status_code == 409 and done[1].json()["error"]["code"] == "redo-failed"
        assert revision(cluster, name) == "2" and status()["revision"] == 2
        assert call(olive, b'{"x": 2}').status_code == 200  # the old one serves

        assert olive("DELETE", f"services/{created['id']}").status_code == 204
        assert cluster.get("deployments", name) is None and cluster.get("services", name) is None


def revision(cluster, name: str) -> str:
    return cluster.get("deployments", name)["spec"]["template"]["metadata"]["labels"]["ai.workspace-hub.revision"]


def test_smoke_checks_run_where_the_image_was_loaded_before_it_is_pushed(cluster, connect, tmp_path):
    """A validation's smoke run checks an image the nodes cannot pull yet: it runs on the library's engine."""
    started = []

    class Engine(Executor):
        def start_batch(self, spec):
            started.append(spec.purpose)
            return "a handle"

    executor = connect(images=Engine())
    assert executor.start_batch(BatchSpec("sha256:" + "1" * 64, "smoke", ("jupyterhub-singleuser", "--version"))) \
        == "a handle"
    assert started == ["smoke"] and cluster.list("jobs") == []


# -- replicas: pods the library reaches at their address ---------------------------------------------------

class Predict(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self._answer(b'{"status": "ok"}')

    def do_POST(self):
        self._answer(b'{"predictions": [%s]}' % self.rfile.read(int(self.headers["Content-Length"])))

    def _answer(self, body: bytes):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def predict_server():
    """What the replica's container serves, on 127.0.0.1 (the pod's address in this cluster)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Predict)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


def test_a_replica_is_a_pod_reached_at_its_address(cluster, connect, tmp_path, predict_server):
    executor = connect()
    model = tmp_path / "data" / "library" / "trees" / "m"
    replica = executor.start_replica(ReplicaSpec("image", "service", model, key="s" * 32, port=predict_server))
    pod = cluster.wait_for(lambda: cluster.get("pods", replica.name))
    container = pod["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    assert container["volumeMounts"][0] == {"name": "data", "mountPath": "/project/model", "subPath": "library/trees/m",
                                            "readOnly": True}
    assert replica.running() and not replica.healthy()  # pending (known from the create): no address yet
    cluster.run_pod(replica.name)
    replica.wait_healthy(10)
    answer = replica.request("POST", "/predict", b'{"x": 1}', {"Content-Type": "application/json"})
    assert (answer.status, answer.body) == (200, b'{"predictions": [{"x": 1}]}')
    assert [r.name for r in connect().find_replicas("s" * 32)] == [replica.name]  # after a restart
    cluster.patch("pods", replica.name, {"status": {"phase": "Failed"}})
    cluster.wait_for(lambda: not replica.running())
    replica.remove()
    cluster.wait_for(lambda: cluster.get("pods", replica.name) is None)


# -- the profile and what a site applies -----------------------------------------------------------------

def test_without_a_cluster_the_executor_says_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "nowhere"))
    assert "KUBERNETES_SERVICE_HOST" in credentials_problem() and "kubeconfig" in credentials_problem()
    with pytest.raises(EngineUnavailable, match="kubeconfig"):
        KubernetesExecutor(owner="x", data_root=str(tmp_path)).find("k")


def test_ws_up_on_the_kubernetes_profile_without_a_cluster_stops_and_says_why(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("KUBERNETES_SERVICE_HOST", "KUBECONFIG")}
    done = subprocess.run([sys.executable, "-m", "workspace_hub.cli", "up", "--profile", "kubernetes"],
                          env={**env, "HOME": str(tmp_path)}, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "needs a cluster" in done.stderr and "set $KUBECONFIG" in done.stderr


def test_what_deploy_holds_is_valid_kubernetes():
    manifests = [m for path in sorted((REPO / "deploy" / "kubernetes").glob("*.yaml")) if path.name != "values.yaml"
                 for m in yaml.safe_load_all(path.read_text()) if m]
    kinds = sorted(m["kind"] for m in manifests)
    assert kinds == ["NetworkPolicy", "NetworkPolicy", "Role", "RoleBinding"]
    for manifest in manifests:
        kubernetes_validate.validate(manifest, "1.30", strict=True)
    role = next(m for m in manifests if m["kind"] == "Role")
    granted = {(resource, verb) for rule in role["rules"] for resource in rule["resources"] for verb in rule["verbs"]}
    assert {("pods/log", "get"), ("jobs", "watch"), ("deployments", "patch"), ("services", "create")} <= granted
    assert not {("secrets", "get"), ("pods/exec", "create"), ("services", "patch")} & granted


"""A Kubernetes API server for tests: kmock's emulator on a thread of its own, and the test as the cluster.

No Kubernetes runs on these machines.  :class:`Cluster` serves the API over real HTTP on 127.0.0.1 (kmock's
``KubernetesEmulator``: objects in memory, list, watch, create, patch, delete) and plays what the API
server does not: the Job controller and the kubelet.  Through the same HTTP API it creates a Job's pod,
moves it through ``Pending``, ``Running``, ``Succeeded`` or ``Failed``, sets its container statuses, serves
its log, deletes a deleted Job's pods, and gives replica pods an address (a server the test runs on
127.0.0.1).
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

import kmock
import requests
from kmock._internal import parsing

NAMESPACE = "workspace-hub"
IMAGE_ID = "registry.example/a@sha256:" + "f" * 64  # what the kubelet reports the container ran
_guess_k8s = parsing.guess_k8s


def _guess_bool_as_the_api_server_does(k8s, method, query):
    """The API server reads ``?watch=True`` (what the Python clients send) as true; kmock 0.8 only ``true``."""
    return _guess_k8s(k8s, method, {**query, **({"watch": query["watch"].lower()} if "watch" in query else {})})


parsing.guess_k8s = _guess_bool_as_the_api_server_does


class Cluster:
    def __init__(self):
        self.logs: dict[str, bytes] = {}  # pod name -> what its container wrote
        self.watch_faults = []  # what the next pods watches meet: "drop" (it ends at once) or "gone" (410)
        self.loop = asyncio.new_event_loop()
        self._ready, self._stop = threading.Event(), None
        self._thread = threading.Thread(target=self._main, name="kmock", daemon=True)
        self._thread.start()
        self._ready.wait(30)
        self.http = requests.Session()

    def _main(self):
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._serve())

    async def _serve(self):
        self._stop = asyncio.Event()
        async with kmock.KubernetesEmulator() as emulator, kmock.Server(emulator) as server:
            self.emulator, self.url = emulator, str(server.url).rstrip("/")
            for resource in ("v1/pods", "batch/v1/jobs", "apps/v1/deployments", "v1/services"):
                emulator.resources[resource] = {}
            emulator["get v1/pods", kmock.subresource("log")] << (lambda request: self._log(request))
            emulator["watch v1/pods"][lambda request: bool(self.watch_faults)] << (lambda request: self._fault())
            self._ready.set()
            await self._stop.wait()

    def _fault(self):
        if self.watch_faults.pop(0) == "gone":
            return ({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                                 "code": 410, "reason": "Expired", "message": "too old resource version"}},)
        return (b"",)

    def _log(self, request) -> bytes:
        tail = request.params.get("tailLines")
        data = self.logs.get(request.name, b"")
        return b"".join(data.splitlines(keepends=True)[-int(tail):]) if tail else data

    def close(self):
        self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def kubeconfig(self, path) -> str:
        path.write_text(f"""apiVersion: v1
kind: Config
clusters: [{{name: kmock, cluster: {{server: "{self.url}"}}}}]
users: [{{name: tester, user: {{token: test-token}}}}]
contexts: [{{name: kmock, context: {{cluster: kmock, user: tester, namespace: {NAMESPACE}}}}}]
current-context: kmock
""")
        return str(path)

    def requests_for(self, method: str, path_part: str, **params) -> list:
        """The requests the library sent the API server (kmock records them; the test's own are left out), by
        method and a part of the path."""
        return [r for r in self.emulator if r.method == method and path_part in str(r.url)
                and not r.headers.get("User-Agent", "").startswith("python-requests")
                and all(r.params.get(k) == v for k, v in params.items())]

    # -- the API, as the test's controllers use it ---------------------------------------------------------
    def _url(self, kind: str, name: str = "") -> str:
        group = {"jobs": "/apis/batch/v1", "deployments": "/apis/apps/v1"}.get(kind, "/api/v1")
        return f"{self.url}{group}/namespaces/{NAMESPACE}/{kind}" + (f"/{name}" if name else "")

    def list(self, kind: str) -> list[dict]:
        return self.http.get(self._url(kind)).json()["items"]

    def get(self, kind: str, name: str) -> dict | None:
        r = self.http.get(self._url(kind, name))
        return r.json() if r.status_code == 200 else None

    def patch(self, kind: str, name: str, body: dict) -> None:
        self.http.patch(self._url(kind, name), json=body,
                        headers={"Content-Type": "application/merge-patch+json"}).raise_for_status()

    def wait_for(self, what, timeout: float = 20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = what()
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError(f"the cluster never reached {what}")

    # -- the Job controller and the kubelet -----------------------------------------------------------
    def job(self, purpose: str = "run") -> dict:
        """The first Job of *purpose*, once the library created it."""
        return self.wait_for(lambda: next((j for j in self.list("jobs") if
                                           j["metadata"]["labels"]["ai.workspace-hub.run"] == purpose), None))

    def start_pod(self, job: dict) -> str:
        """The Job controller: the Job's pod, Pending."""
        name = f"{job['metadata']['name']}-{uuid.uuid4().hex[:5]}"
        template = job["spec"]["template"]
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": name, "namespace": NAMESPACE,
                            "labels": {**template["metadata"]["labels"], "job-name": job["metadata"]["name"]}},
               "spec": template["spec"], "status": {"phase": "Pending"}}
        self.http.post(self._url("pods"), json=pod).raise_for_status()
        return name

    def run_pod(self, pod: str, address: str = "127.0.0.1") -> None:
        """The kubelet: the container runs."""
        self.patch("pods", pod, {"status": {"phase": "Running", "podIP": address, "containerStatuses": [
            {"name": "run", "ready": True, "restartCount": 0, "image": "i",
             "imageID": IMAGE_ID, "state": {"running": {}}}]}})

    def end_pod(self, pod: str, exit_code: int, reason: str = "Completed") -> None:
        """The kubelet: the container ends; then the Job controller's condition on the Job."""
        phase = "Succeeded" if exit_code == 0 else "Failed"
        self.patch("pods", pod, {"status": {"phase": phase, "containerStatuses": [
            {"name": "run", "ready": False, "restartCount": 0, "image": "i", "imageID": IMAGE_ID,
             "state": {"terminated": {"exitCode": exit_code, "reason": reason}}}]}})

    def condition(self, job: str, kind: str, reason: str = "") -> None:
        self.patch("jobs", job, {"status": {"conditions": [{"type": kind, "status": "True", "reason": reason}]}})

    def collect(self) -> None:
        """The garbage collector: pods whose Job is gone go too."""
        jobs = {j["metadata"]["name"] for j in self.list("jobs")}
        for pod in self.list("pods"):
            owner = pod["metadata"].get("labels", {}).get("job-name")
            if owner and owner not in jobs:
                self.http.delete(self._url("pods", pod["metadata"]["name"]))

    # -- the Deployment controller, the Service controller and the kubelet -----------------------------------
    def deployment(self) -> dict:
        return self.wait_for(lambda: next(iter(self.list("deployments")), None))

    def expose(self, name: str, cluster_ip: str = "127.0.0.1") -> None:
        """The Service controller gives the Service its ClusterIP (here: the loopback, where the test serves)."""
        self.wait_for(lambda: self.get("services", name))
        self.patch("services", name, {"spec": {"clusterIP": cluster_ip}})

    def roll(self, name: str, ready: bool = True) -> None:
        """The Deployment controller and the kubelet: pods of the template's revision up to the count, ready
        (or never ready); once the new ones are ready, the other revisions' pods and any surplus go."""
        found = self.get("deployments", name)
        template, wanted = found["spec"]["template"], found["spec"]["replicas"]
        revision = template["metadata"]["labels"]["ai.workspace-hub.revision"]
        key = template["metadata"]["labels"]["ai.workspace-hub.key"]
        pods = [p for p in self.list("pods") if p["metadata"]["labels"].get("ai.workspace-hub.key") == key]
        current = [p for p in pods if p["metadata"]["labels"]["ai.workspace-hub.revision"] == revision]
        for _ in range(wanted - len(current)):
            pod = {"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": f"{name}-{uuid.uuid4().hex[:5]}", "namespace": NAMESPACE,
                                "labels": template["metadata"]["labels"]},
                   "spec": template["spec"],
                   "status": {"phase": "Running", "podIP": "127.0.0.1",
                              "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}
            self.http.post(self._url("pods"), json=pod).raise_for_status()
        if ready:
            gone = [p for p in pods if p not in current] + current[wanted:]
            for pod in gone:
                self.http.delete(self._url("pods", pod["metadata"]["name"]))

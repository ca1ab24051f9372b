"""The executor's Kubernetes backend, through ``kubernetes_asyncio``: the only module that imports it.

The same specs the Docker backend runs (:mod:`.spec`) become, by pure functions tested by golden files:

- a batch spec: a ``batch/v1`` Job (:func:`job`): ``backoffLimit: 0``, ``activeDeadlineSeconds`` from the
  spec's deadline, ``ttlSecondsAfterFinished``;
- a replica spec: a Pod (:func:`replica_pod`) for an online test or a service's replica, and the
  Deployment with its Service (:func:`deployment`, :func:`service`) a site applies to serve one.

Every pod is the Docker sandbox in Kubernetes terms: no service-account token, a read-only root
filesystem, no capabilities, no privilege escalation, memory and CPU limits, ``/tmp`` an ``emptyDir`` in
memory, and every mount a ``subPath`` of the data claim, as :class:`workspace_hub.spawner.KubeWorkspaceSpawner`
mounts a workspace.  A GPU run requests ``nvidia.com/gpu`` and selects GPU nodes.  Network isolation is
the NetworkPolicies in ``deploy/kubernetes/library.yaml`` (run pods: no ingress, no egress; replica pods:
ingress only from the library).

:func:`job_end` reads how a Job ended from its conditions and its pod's container statuses (exit code,
``OOMKilled``, ``DeadlineExceeded``, image pull failures, a pod no node can take, an eviction), and
:func:`~.outcome.decide` turns those facts into the same outcome as on Docker.

:class:`KubernetesExecutor` talks to the API server on an event loop of its own (one thread): the
library's callers are worker threads, which wait on it; the hub's and the library's event loops never
do.  It keeps one watch per kind (pods, Jobs) with a local cache (:mod:`.reflector`), as KubeSpawner's
reflector does: a handle waits on the cache, never polls the API.  Logs are read with the pod log API.

Multi-node training (one run across several pods) belongs to Kubeflow's TrainJob
(``trainer.kubeflow.org/v1alpha1``) where its CRD is installed: the pod template of :func:`job` becomes
the TrainJob's ``podTemplateOverrides`` and ``numNodes`` sets the pod count.  That path is documented,
not built.  Sites that run KServe can serve the same predict image as an InferenceService with a
custom-container predictor; that is the documented alternative to :func:`deployment`, not built.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import os
import queue
import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from traitlets import Dict, Float, Integer, List, Unicode, default

from ..contract import MODEL_DIR
from .base import (EngineError, EngineUnavailable, Executor, Fleet, FleetState, Handle, MAX_ANSWER, ReplicaHandle,
                   Response, bounded_read)
from .outcome import Outcome, decide
from .spec import KEPT, LABEL_KEY, LABEL_OWNER, LABEL_REVISION, LABEL_RUN, BatchSpec, ReplicaSpec

log = logging.getLogger("workspace_hub.executor")
GPU_RESOURCE = "nvidia.com/gpu"
PROGRESS_DEADLINE = 120  # seconds a Deployment's new revision gets to be ready before the rollout counts as failed
IN_CLUSTER_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
POD_STATUS_GRACE = 30  # seconds a failed Job's pod may take to report how its container ended
PULL_FAILURES = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CreateContainerConfigError",
                 "CreateContainerError")


# -- what a spec becomes: pure functions -------------------------------------------------------------
@dataclass(frozen=True)
class Site:
    """Where the library's pods go: a namespace, the data claim their mounts are subPaths of, and the rest."""

    namespace: str
    data_claim: str
    data_root: Path
    owner: str
    gpu_node_selector: dict = field(default_factory=lambda: {"nvidia.com/gpu.present": "true"})
    image_pull_secrets: tuple[str, ...] = ()
    job_ttl: int = 3600
    service_port: int = 80

    def labels(self, spec: BatchSpec | ReplicaSpec) -> dict:
        return {**spec.labels, LABEL_RUN: spec.purpose, LABEL_OWNER: label_value(self.owner), LABEL_KEY: spec.key}

    def subpath(self, host: Path) -> str:
        """A host path under the data root as a subPath of the data claim (nothing else may be mounted)."""
        return Path(host).resolve().relative_to(Path(self.data_root).resolve()).as_posix()


def job_name(spec: BatchSpec) -> str:
    """A run's Job is named by its key (found again after a restart); a smoke run or validation gets a fresh name."""
    return f"{spec.purpose}-{spec.key or uuid.uuid4().hex[:12]}"[:63]


def _resources(spec: BatchSpec | ReplicaSpec, requests: dict | None = None) -> dict:
    limits = {"memory": f"{spec.memory // 1024**2}Mi", "cpu": f"{int(spec.cpus * 1000)}m"}
    resources = {"limits": limits, "requests": requests or dict(limits)}
    if spec.gpus:
        limits[GPU_RESOURCE] = spec.gpus
    return resources


CONTAINER_SANDBOX = {"readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False,
                     "capabilities": {"drop": ["ALL"]}}


def _pod_spec(site: Site, spec: BatchSpec | ReplicaSpec, container: dict, read_only_claim: bool = False) -> dict:
    claim = {"claimName": site.data_claim, **({"readOnly": True} if read_only_claim else {})}
    return {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "runAsGroup": 1000,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{**container, "securityContext": CONTAINER_SANDBOX}],
        "volumes": [{"name": "data", "persistentVolumeClaim": claim},
                    {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "256Mi"}}],
        **({"imagePullSecrets": [{"name": s} for s in site.image_pull_secrets]} if site.image_pull_secrets else {}),
        **({"nodeSelector": dict(site.gpu_node_selector)} if spec.gpus else {}),
    }


def job(site: Site, spec: BatchSpec, name: str) -> dict:
    """The Job for one batch spec."""
    volume_mounts = [{"name": "data", "mountPath": m.target, "subPath": site.subpath(m.host),
                      "readOnly": m.read_only} for m in spec.mounts]
    volume_mounts.append({"name": "tmp", "mountPath": "/tmp"})
    labels = site.labels(spec)
    container = {
        "name": "run",
        "image": spec.image,
        "imagePullPolicy": "IfNotPresent",
        **({"command": list(spec.command)} if spec.command else {}),
        "env": [{"name": k, "value": str(v)} for k, v in sorted(spec.environment.items())],
        "resources": _resources(spec),
        "volumeMounts": volume_mounts,
    }
    pod = {"metadata": {"labels": labels}, "spec": {"restartPolicy": "Never", **_pod_spec(site, spec, container)}}
    body = {"backoffLimit": 0, "ttlSecondsAfterFinished": site.job_ttl, "template": pod}
    if spec.deadline:
        body["activeDeadlineSeconds"] = int(spec.deadline)
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": site.namespace, "labels": labels}, "spec": body}


def _predict_container(site: Site, spec: ReplicaSpec) -> dict:
    environment = {**spec.environment, "PORT": str(spec.port), "HOST": "0.0.0.0"}
    return {
        "name": "predict", "image": spec.image, "imagePullPolicy": "IfNotPresent",
        "env": [{"name": k, "value": v} for k, v in sorted(environment.items())],
        "ports": [{"name": "http", "containerPort": spec.port}],
        "readinessProbe": {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 2, "failureThreshold": 2},
        "livenessProbe": {"httpGet": {"path": "/health", "port": "http"}, "initialDelaySeconds": 30,
                          "periodSeconds": 10},
        "resources": _resources(spec, {"memory": "512Mi", "cpu": "250m"}),
        "volumeMounts": [{"name": "data", "mountPath": MODEL_DIR, "subPath": site.subpath(spec.model),
                          "readOnly": True}, {"name": "tmp", "mountPath": "/tmp"}],
    }


def replica_pod(site: Site, spec: ReplicaSpec, name: str) -> dict:
    """One replica as a Pod: an online test, a smoke run's predict check, or one replica of a service."""
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": site.namespace, "labels": site.labels(spec)},
            "spec": {"restartPolicy": "Never", **_pod_spec(site, spec, _predict_container(site, spec), True)}}


def deployment(site: Site, spec: ReplicaSpec, replicas: int, name: str) -> dict:
    """*replicas* pods of *spec* as a Deployment: rolled with ``maxUnavailable: 0``, rolled back by the
    site when a revision never gets ready within ``progressDeadlineSeconds``."""
    labels = site.labels(spec)
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": f"service-{spec.key}"[:63], "namespace": site.namespace, "labels": labels,
                     "annotations": {"workspace-hub/service": name}},
        "spec": {
            "replicas": replicas,
            "progressDeadlineSeconds": PROGRESS_DEADLINE,
            "selector": {"matchLabels": {LABEL_KEY: spec.key}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "100%"}},
            "template": {"metadata": {"labels": labels},
                         "spec": _pod_spec(site, spec, _predict_container(site, spec), True)},
        },
    }


def service(site: Site, spec: ReplicaSpec) -> dict:
    """The stable address of a Deployment's pods: stopping scales the Deployment to 0 and keeps it."""
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": f"service-{spec.key}"[:63], "namespace": site.namespace, "labels": site.labels(spec)},
        "spec": {"type": "ClusterIP", "selector": {LABEL_KEY: spec.key},
                 "ports": [{"name": "http", "port": site.service_port, "targetPort": "http"}]},
    }


def label_value(value: str) -> str:
    """A label value: 63 characters of [A-Za-z0-9_.-], starting and ending alphanumeric."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "-", value)[:63].strip("-_.")
    return cleaned or "library"


# -- how a Job ended: facts for decide() ---------------------------------------------------------------
def _parse_time(text: str | None) -> float | None:
    if not text:
        return None
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()


def _container_state(pods: list[dict]) -> tuple[dict | None, dict | None, bool]:
    """(terminated, waiting, running) of the first container of the newest of *pods*."""
    terminated = waiting = None
    running = False
    for pod in pods:
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            state = status.get("state") or {}
            terminated = terminated or state.get("terminated")
            waiting = waiting or state.get("waiting")
            running = running or "running" in state
    return terminated, waiting, running


def job_end(the_job: dict | None, pods: list[dict], now: float, unschedulable_after: float) -> dict | None:
    """The facts :func:`~.outcome.decide` takes for a Job that has ended (``exit_code``, ``oom``, ``timed_out``,
    ``error``), or None while it runs.  An eviction, a pod no node takes (or no pod at all) for
    *unschedulable_after* seconds and a failed image pull end it as the platform's failure, with the message
    the cluster gave: the user's program is not to blame."""
    terminated, waiting, _ = _container_state(pods)
    for pod in pods:  # first: an evicted pod's container ended too, and its Job failed
        status = pod.get("status") or {}
        disrupted = [c for c in status.get("conditions") or [] if c.get("type") == "DisruptionTarget"
                     and c.get("status") == "True"]
        if (status.get("phase") == "Failed" and status.get("reason") == "Evicted") or disrupted:
            message = status.get("message") or (disrupted[0].get("message", "") if disrupted else "")
            return {"exit_code": None, "error": f"the node evicted the run: {message}".strip()}
    for condition in ((the_job or {}).get("status") or {}).get("conditions") or []:
        if condition.get("status") != "True" or condition.get("type") not in ("Complete", "Failed"):
            continue
        if condition["type"] == "Complete":
            return {"exit_code": 0}
        if condition.get("reason") == "DeadlineExceeded":
            return {"exit_code": terminated.get("exitCode") if terminated else None, "timed_out": True}
        if terminated is None:
            since = _parse_time(condition.get("lastTransitionTime"))
            if since is not None and now - since < POD_STATUS_GRACE:
                return None  # the pod's own end is on its way (the two watches race)
            break  # the Job failed without its container ending: said below
        return {"exit_code": terminated.get("exitCode"), "oom": terminated.get("reason") == "OOMKilled"}
    for pod in pods:
        for condition in (pod.get("status") or {}).get("conditions") or []:
            since = _parse_time(condition.get("lastTransitionTime"))
            if condition.get("type") == "PodScheduled" and condition.get("status") == "False" and \
                    since is not None and now - since > unschedulable_after:
                return {"exit_code": None, "error": f"no node can take the run: {condition.get('message', '')}"}
    if waiting is not None and waiting.get("reason") in PULL_FAILURES:
        return {"exit_code": None, "error": f"{waiting['reason']}: {waiting.get('message', '')}"}
    for condition in ((the_job or {}).get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Failed" and condition.get("status") == "True":
            return {"exit_code": None, "error": f"the Job failed: {condition.get('reason')}"}
    created = _parse_time(((the_job or {}).get("metadata") or {}).get("creationTimestamp"))
    if not pods and created is not None and now - created > unschedulable_after:
        return {"exit_code": None, "error": f"no pod was created for the run within {unschedulable_after:g} s (a "
                                            "quota, or a pod the cluster refuses: see the namespace's events)"}
    return None


def credentials_problem(environ=os.environ) -> str:
    """What is missing to reach a cluster ("" if nothing): in-cluster credentials or a kubeconfig."""
    if environ.get("KUBERNETES_SERVICE_HOST"):
        return ""
    kubeconfig = environ.get("KUBECONFIG") or str(Path("~/.kube/config").expanduser())
    if any(Path(p).is_file() for p in kubeconfig.split(os.pathsep) if p):
        return ""
    return (f"the kubernetes profile needs a cluster: run inside one (a service account; KUBERNETES_SERVICE_HOST "
            f"is not set) or give a kubeconfig (none at {kubeconfig}; set $KUBECONFIG)")


# -- the executor ------------------------------------------------------------------------------------
class _Loop:
    """An event loop on a thread of its own, for callers that are threads."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, name="kubernetes", daemon=True).start()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)

    def run(self, coroutine, timeout: float | None = 60):
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise EngineError(f"the Kubernetes API did not answer within {timeout:g} s") from None


class KubernetesExecutor(Executor):
    """The executor on a cluster: Jobs for batch specs, Pods for replicas, in the library's namespace."""

    namespace = Unicode(config=True, help="The namespace of the library's Jobs and Pods (in a cluster: the "
                                          "library's own).")
    data_claim = Unicode("workspace-data", config=True,
                         help="The ReadWriteMany PersistentVolumeClaim holding the data root; every mount is a "
                              "subPath of it.")
    data_root = Unicode(config=True, help="Where the library sees that claim (default $WSHUB_DATA_ROOT).")
    gpu_node_selector = Dict({"nvidia.com/gpu.present": "true"}, config=True,
                             help="The node selector of pods that ask for GPUs.")
    gpu_nodes = Integer(0, min=0, config=True, help="GPUs a run may ask for: 0 if the cluster has no GPU nodes "
                                                    "(the library does not list nodes).")
    image_pull_secrets = List(Unicode(), config=True, help="Secrets pods pull the site's registry with.")
    job_ttl = Integer(3600, min=0, config=True, help="Seconds a finished Job stays (ttlSecondsAfterFinished).")
    unschedulable_timeout = Float(300, min=1, config=True,
                                  help="Seconds a run's pod may wait for a node before the run fails (platform).")
    watch_timeout = Integer(300, min=1, config=True, help="Seconds one watch request lasts before it is renewed.")
    service_port = Integer(80, min=1, max=65535, config=True, help="The port of each service's Service (its "
                                                                    "ClusterIP address).")

    @default("namespace")
    def _default_namespace(self):
        try:
            return IN_CLUSTER_NAMESPACE.read_text().strip()
        except OSError:
            return "default"

    @default("data_root")
    def _default_data_root(self):
        return os.environ.get("WSHUB_DATA_ROOT", "data")

    def __init__(self, images: Executor | None = None, **kwargs):
        super().__init__(**kwargs)
        self._images = images
        self._loop: _Loop | None = None
        self._lock = threading.Lock()
        self._reflectors: dict = {}

    @property
    def site(self) -> Site:
        return Site(self.namespace, self.data_claim, Path(self.data_root), self.owner,
                    dict(self.gpu_node_selector), tuple(self.image_pull_secrets), self.job_ttl, self.service_port)

    @property
    def images(self) -> Executor:
        """Where images are loaded, checked and pushed from: the library's own engine (pods pull them from
        the site's registry)."""
        if self._images is None:
            from .docker import DockerExecutor

            self._images = DockerExecutor(owner=self.owner)
        return self._images

    # -- the connection and the watches ------------------------------------------------------------
    def _started(self) -> _Loop:
        with self._lock:
            if self._loop is None:
                problem = credentials_problem()
                if problem:
                    raise EngineUnavailable(problem)
                loop = _Loop()
                try:
                    loop.run(self._connect(), timeout=30)
                except Exception as e:  # an unreachable server, refused credentials, a refusal to list
                    try:  # nothing of this try stays behind: no watch, no connection, no thread
                        loop.run(self._disconnect(), timeout=5)
                    except Exception:
                        pass
                    loop.close()
                    raise EngineUnavailable(f"the Kubernetes API at {_server()} cannot be used: {_reason(e)}") from None
                self._loop = loop
            return self._loop

    async def _connect(self) -> None:
        from kubernetes_asyncio import client, config

        from .reflector import Reflector

        try:
            config.load_incluster_config()
        except config.ConfigException:  # $KUBECONFIG as it is now (the library reads it at import)
            await config.load_kube_config(config_file=os.environ.get("KUBECONFIG") or None)
        api = client.ApiClient()
        self._core, self._batch, self._apps = client.CoreV1Api(api), client.BatchV1Api(api), client.AppsV1Api(api)
        selector = f"{LABEL_OWNER}={label_value(self.owner)}"
        self._reflectors = {
            "pods": Reflector("pods", self._core.list_namespaced_pod, self.namespace, selector, self.watch_timeout),
            "jobs": Reflector("jobs", self._batch.list_namespaced_job, self.namespace, selector, self.watch_timeout),
            "deployments": Reflector("deployments", self._apps.list_namespaced_deployment, self.namespace, selector,
                                     self.watch_timeout)}
        for reflector in self._reflectors.values():
            await reflector.start()

    @property
    def pods(self) -> "Reflector":
        """The library's pods, watched (connected on first use)."""
        self._started()
        return self._reflectors["pods"]

    @property
    def jobs(self) -> "Reflector":
        self._started()
        return self._reflectors["jobs"]

    @property
    def deployments(self) -> "Reflector":
        self._started()
        return self._reflectors["deployments"]

    @property
    def core(self):
        """The core API (pods, their logs), connected on first use."""
        self._started()
        return self._core

    @property
    def batch(self):
        self._started()
        return self._batch

    @property
    def apps(self):
        self._started()
        return self._apps

    def close(self) -> None:
        """End the watches and the connection (a library that stops; a test)."""
        with self._lock:
            loop, self._loop = self._loop, None
        if loop is not None:
            try:
                loop.run(self._disconnect(), timeout=5)
            except EngineError:
                pass
            loop.close()

    async def _disconnect(self) -> None:
        for reflector in self._reflectors.values():
            await reflector.stop()
        self._reflectors = {}
        if getattr(self, "_core", None) is not None:
            await self._core.api_client.close()

    def call(self, coroutine_fn, *args, timeout: float = 60, missing_ok: bool = False, **kwargs):
        """One API call from a worker thread; an ApiException is an :class:`EngineError` with its ``status``
        (a 404 is None with *missing_ok*), as is a connection that fails."""
        import aiohttp
        from kubernetes_asyncio.client.exceptions import ApiException

        loop = self._started()

        async def go():
            try:
                return await coroutine_fn(*args, **kwargs)
            except ApiException as e:
                if missing_ok and e.status == 404:
                    return None
                error = EngineError(f"the Kubernetes API refused: {e.status} {e.reason}: {_api_message(e)}")
                error.status = e.status
                raise error from None
            except (OSError, asyncio.TimeoutError, aiohttp.ClientError) as e:
                raise EngineError(f"the Kubernetes API is unreachable: {e!r}") from None

        return loop.run(go(), timeout)

    # -- batch runs --------------------------------------------------------------------------------
    def start_batch(self, spec: BatchSpec) -> Handle:
        if spec.purpose == "smoke":  # checks of an image not yet pushed: where it was loaded (see images)
            return self.images.start_batch(spec)
        name = job_name(spec)
        created = self.call(self.batch.create_namespaced_job, self.namespace, job(self.site, spec, name))
        self.jobs.seen(self.as_dict(created))
        return KubernetesRun(self, name, spec)

    def as_dict(self, obj) -> dict:
        """An API object as the JSON the watch brings."""
        return self._core.api_client.sanitize_for_serialization(obj)

    def find(self, key: str) -> "KubernetesRun | None":
        self._started()
        for name, obj in self.jobs.snapshot().items():
            if obj["metadata"].get("labels", {}).get(LABEL_KEY) == key:
                return KubernetesRun(self, name)
        return None

    def pods_of(self, job_name: str) -> list[dict]:
        return [p for p in self.pods.snapshot().values()
                if (p["metadata"].get("labels") or {}).get("job-name") == job_name]

    def delete_job(self, name: str, grace: float | None = None) -> None:
        from kubernetes_asyncio.client import V1DeleteOptions

        self.call(self.batch.delete_namespaced_job, name, self.namespace, missing_ok=True,
                  body=V1DeleteOptions(propagation_policy="Foreground" if grace is not None else "Background",
                                       grace_period_seconds=int(grace) if grace is not None else None))

    def delete_pod(self, name: str, grace: float = 1) -> None:
        self.call(self.core.delete_namespaced_pod, name, self.namespace, missing_ok=True,
                  grace_period_seconds=max(1, int(grace)))  # 0 would be a force delete: gone before it stops

    def pod_log(self, pod: str, container: str, tail: int | None = None) -> bytes:
        """What the pod's container has written so far (b"" before it starts)."""
        async def read():
            response = await self._core.read_namespaced_pod_log(
                pod, self.namespace, container=container, _preload_content=False,
                **({"tail_lines": tail} if tail else {}))
            return await response.read()

        try:
            return self.call(read) or b""
        except EngineError as e:
            if " 400 " in str(e) or " 404 " in str(e):  # not started yet, or gone
                return b""
            raise

    def pod_log_stream(self, pod: str, container: str, follow: bool) -> Iterator[bytes]:
        """The container's log from its start as it comes: with *follow*, one request the API server keeps
        open until the container ends (or the connection drops); chunks cross to the caller's thread."""
        chunks: queue.Queue = queue.Queue(maxsize=64)
        done = object()

        async def read():
            try:
                response = await self._core.read_namespaced_pod_log(pod, self.namespace, container=container,
                                                                   follow=follow, _preload_content=False)
                async for chunk in response.content.iter_chunked(1 << 16):
                    await asyncio.to_thread(chunks.put, chunk)
            except Exception as e:  # not started yet, gone, a dropped connection: the caller reads again
                log.debug("the log of %s stopped: %r", pod, e)
            finally:
                await asyncio.to_thread(chunks.put, done)

        future = asyncio.run_coroutine_threadsafe(read(), self._started().loop)
        try:
            while (chunk := chunks.get()) is not done:
                yield chunk
        finally:
            future.cancel()

    # -- replicas ----------------------------------------------------------------------------------
    def start_replica(self, spec: ReplicaSpec) -> ReplicaHandle:
        if spec.purpose == "smoke":
            return self.images.start_replica(spec)
        name = f"{spec.purpose}-{(spec.key or 'x')[:24]}-{uuid.uuid4().hex[:8]}"
        created = self.call(self.core.create_namespaced_pod, self.namespace, replica_pod(self.site, spec, name))
        self.pods.seen(self.as_dict(created))
        return KubernetesReplica(self, name, spec.port)

    def find_replicas(self, key: str) -> list["KubernetesReplica"]:
        self._started()
        replicas = []
        for name, pod in self.pods.snapshot().items():
            labels = pod["metadata"].get("labels") or {}
            if labels.get(LABEL_KEY) != key or "job-name" in labels:
                continue
            replica = KubernetesReplica(self, name, _container_port(pod))
            if replica.running():
                replicas.append(replica)
            else:
                replica.remove()
        return replicas

    def remove_leftovers(self) -> int:
        self._started()
        removed = 0
        for name, obj in self.jobs.snapshot().items():
            if obj["metadata"].get("labels", {}).get(LABEL_RUN) not in KEPT:
                self.delete_job(name)
                removed += 1
        for name, pod in self.pods.snapshot().items():
            labels = pod["metadata"].get("labels") or {}
            if "job-name" not in labels and labels.get(LABEL_RUN) not in KEPT:
                self.delete_pod(name)
                removed += 1
        return removed

    def has_gpu(self) -> bool:
        return self.gpu_nodes > 0

    def fleet(self, key: str) -> "KubernetesFleet":
        return KubernetesFleet(self, key)

    # -- images: loaded and checked by the library's engine, pulled by nodes from the registry --------
    def load(self, path: Path, report) -> str:
        return self.images.load(path, report)

    def has_image(self, reference: str) -> bool:
        return self.images.has_image(reference)

    def tag(self, image: str, tag: str) -> None:
        self.images.tag(image, tag)

    def push(self, tag: str, registry: str) -> str:
        return self.images.push(tag, registry)

    def pull(self, reference: str) -> Iterator[bytes]:
        return self.images.pull(reference)

    def discard(self, image_id: str) -> None:
        self.images.discard(image_id)

    def remove_tag(self, tag: str) -> None:
        self.images.remove_tag(tag)


def _server() -> str:
    from kubernetes_asyncio import client

    return client.Configuration.get_default_copy().host


def _reason(e: Exception) -> str:
    status = getattr(e, "status", None)
    return f"{status} {getattr(e, 'reason', '')}: {_api_message(e)}" if status else repr(e)


def _api_message(e) -> str:
    try:
        return json.loads(e.body).get("message", "")
    except (TypeError, ValueError, AttributeError):
        return str(e.body or "")[:200]


def _container_port(pod: dict) -> int:
    from ..contract import DEFAULT_PORT

    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            return int(port.get("containerPort", DEFAULT_PORT))
    return DEFAULT_PORT


class KubernetesRun(Handle):
    """A Job of a batch spec (or one found again by its label), watched through the executor's cache."""

    container = "run"

    def __init__(self, executor: KubernetesExecutor, name: str, spec: BatchSpec | None = None):
        self.executor, self.name, self.spec = executor, name, spec

    @property
    def image_id(self) -> str:
        for pod in self.executor.pods_of(self.name):
            for status in (pod.get("status") or {}).get("containerStatuses") or []:
                if status.get("imageID"):
                    return status["imageID"].rpartition("@")[2] or status["imageID"]
        return ""

    def _memory(self) -> int | None:
        return self.spec.memory if self.spec else None

    def wait(self, timeout: float | None = None, model: Path | None = None,
             stopped: Callable[[], bool] | None = None, too_large: Callable[[], str] | None = None) -> Outcome:
        if timeout is None and self.spec is not None:
            timeout = self.spec.deadline
        give_up = time.monotonic() + timeout if timeout else None
        executor = self.executor
        ended = {}

        def check() -> bool:
            the_job = executor.jobs.get(self.name)
            if the_job is None:
                ended["gone"] = True
                return True
            facts = job_end(the_job, executor.pods_of(self.name), time.time(), executor.unschedulable_timeout)
            if facts is not None:
                ended["facts"] = facts
                return True
            return False

        while not executor.jobs.wait_for(check, timeout=1):
            if give_up is not None and time.monotonic() > give_up:  # past the deadline the Job itself keeps
                self.stop()
                return decide(None, timed_out=True, stopped=bool(stopped and stopped()),
                              deadline=self.spec.deadline if self.spec else timeout)
        is_stopped, limit = bool(stopped and stopped()), too_large() if too_large else ""
        if "gone" in ended:
            return decide(None, stopped=is_stopped, too_large=limit,
                          error="" if is_stopped or limit else "the run's Job was deleted outside the library")
        return decide(**ended["facts"], stopped=is_stopped, model=model, memory=self._memory(),
                      deadline=self.spec.deadline if self.spec else None, too_large=limit)

    def _pod(self) -> str | None:
        pods = self.executor.pods_of(self.name)
        return pods[0]["metadata"]["name"] if pods else None

    def _finished(self) -> bool:
        the_job = self.executor.jobs.get(self.name)
        if the_job is None:
            return True
        pods = self.executor.pods_of(self.name)
        return job_end(the_job, pods, time.time(), self.executor.unschedulable_timeout) is not None or \
            _container_state(pods)[0] is not None

    def logs(self, follow: bool = False, since: float | None = None) -> Iterator[bytes]:
        """The pod's log; with *follow*, as it grows until the run ends (a stream that drops is opened again and
        what was already given is skipped).  A log read after a restart of the library starts from the top,
        and the queue skips the lines its file holds, as on Docker.  Known limit: a log the kubelet rotated
        (past 10 MiB by default) is read from the rotation on."""
        given = 0  # bytes passed on: a new request reads the log from its start again
        while True:
            finished = self._finished()
            pod = self._pod()
            if pod:
                read = 0
                for chunk in self.executor.pod_log_stream(pod, self.container, follow and not finished):
                    fresh = chunk[max(0, given - read):]
                    read += len(chunk)
                    if fresh:
                        given += len(fresh)
                        yield fresh
            if not follow or finished:
                return
            self.executor.pods.wait_for(lambda: False, timeout=1)  # not started yet, or the stream dropped

    def tail(self, lines: int = 15) -> str:
        pod = self._pod()
        try:
            return self.executor.pod_log(pod, self.container, tail=lines).decode("utf-8", "replace").strip() \
                if pod else ""
        except EngineError:
            return ""

    def stop(self, grace: float = 5) -> None:
        self.executor.delete_job(self.name, grace)

    def remove(self) -> None:
        self.executor.delete_job(self.name)


class KubernetesReplica(KubernetesRun, ReplicaHandle):
    """A predict Pod, reached at its pod IP: the NetworkPolicy lets only the library in."""

    def __init__(self, executor: KubernetesExecutor, name: str, port: int):
        super().__init__(executor, name)
        self.port = port

    def _pod_object(self) -> dict | None:
        return self.executor.pods.get(self.name)

    container = "predict"

    def _pod(self) -> str | None:
        return self.name

    def _finished(self) -> bool:
        return not self.running()

    def running(self) -> bool:
        pod = self._pod_object()
        return pod is not None and (pod.get("status") or {}).get("phase", "Pending") in ("Pending", "Running") \
            and not pod["metadata"].get("deletionTimestamp")

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
                timeout: float = 30, limit: int = MAX_ANSWER) -> Response:
        pod = self._pod_object()
        address = ((pod or {}).get("status") or {}).get("podIP")
        if not address:
            raise ConnectionRefusedError(f"the replica {self.name} has no address yet")
        return _http(address, self.port, method, path, body, headers, timeout, limit)

    def stop(self, grace: float = 5) -> None:
        self.executor.delete_pod(self.name, grace)

    def remove(self) -> None:
        self.executor.delete_pod(self.name)


def _ready(pod: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def _http(host: str, port: int, method: str, path: str, body: bytes | None, headers: dict | None, timeout: float,
          limit: int) -> Response:
    """One HTTP call within *timeout* in all, reading at most *limit* bytes of the answer."""
    deadline = time.monotonic() + timeout
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.connect()
        sock = connection.sock  # kept: an HTTP/1.0 answer detaches it from the connection
        connection.request(method, path, body=body, headers=headers or {})
        answer = connection.getresponse()
        return Response(answer.status, bounded_read(answer, sock, limit, deadline, timeout),
                        answer.getheader("Content-Type") or "application/json")
    except http.client.HTTPException as e:
        raise OSError(f"the replica's answer is not HTTP: {e!r}") from None
    finally:
        connection.close()


class KubernetesFleet(Fleet):
    """A service as a Deployment and its Service: the cluster keeps, replaces and rolls the replicas."""

    def __init__(self, executor: KubernetesExecutor, key: str):
        self.executor, self.key = executor, key
        self.name = f"service-{key}"[:63]

    def apply(self, spec: ReplicaSpec, replicas: int, name: str) -> None:
        executor, body = self.executor, deployment(self.executor.site, spec, replicas, name)
        try:
            done = executor.call(executor.apps.create_namespaced_deployment, executor.namespace, body)
        except EngineError as e:
            if getattr(e, "status", None) != 409:
                raise
            pod = body["spec"]["template"]["spec"]
            for key in ("nodeSelector", "imagePullSecrets"):  # a merge patch keeps what it does not null
                pod.setdefault(key, None)
            done = executor.call(executor.apps.patch_namespaced_deployment, self.name, executor.namespace,
                                 {"metadata": {"annotations": body["metadata"]["annotations"]}, "spec": body["spec"]},
                                 _content_type="application/merge-patch+json")
        executor.deployments.seen(executor.as_dict(done))
        try:
            executor.call(executor.core.create_namespaced_service, executor.namespace, service(executor.site, spec))
        except EngineError as e:
            if getattr(e, "status", None) != 409:  # it exists: its ClusterIP stays the address
                raise

    def state(self) -> FleetState:
        """Counted from the pods (one watch for all services): ready ones, and ready ones of the revision the
        Deployment's template now names."""
        found = self.executor.deployments.get(self.name)
        if found is None:
            return FleetState()
        revision = found["spec"]["template"]["metadata"]["labels"].get(LABEL_REVISION)
        ready = [p for p in self._pods() if _ready(p)]
        updated = [p for p in ready if p["metadata"]["labels"].get(LABEL_REVISION) == revision]
        return FleetState(found["spec"].get("replicas", 0), len(ready), len(updated), self._problem(revision),
                          revision or "")

    def _problem(self, revision: str | None) -> str:
        """What keeps the current revision's pods from starting (an image the nodes cannot pull), or ""."""
        for pod in self._pods():
            if pod["metadata"]["labels"].get(LABEL_REVISION) != revision:
                continue
            _, waiting, _ = _container_state([pod])
            if waiting is not None and waiting.get("reason") in PULL_FAILURES:
                return f"{waiting['reason']}: {waiting.get('message', '')}"
        return ""

    def _pods(self) -> list[dict]:
        return [p for p in self.executor.pods.snapshot().values()
                if (p["metadata"].get("labels") or {}).get(LABEL_KEY) == self.key
                and (p["metadata"].get("labels") or {}).get(LABEL_RUN) == "service"
                and not p["metadata"].get("deletionTimestamp")]

    def wait(self, predicate, timeout: float) -> bool:
        return self.executor.pods.wait_for(lambda: predicate(self.state()), timeout)

    def address(self) -> "KubernetesAddress":
        found = self.executor.call(self.executor.core.read_namespaced_service, self.name, self.executor.namespace,
                                   missing_ok=True)
        return KubernetesAddress(self.name, getattr(getattr(found, "spec", None), "cluster_ip", None) or "",
                                 self.executor.service_port)

    def tail(self, lines: int = 200) -> str:
        return "".join(f"--- replica {p['metadata']['name']} (running)\n"
                       f"{self.executor.pod_log(p['metadata']['name'], 'predict', tail=lines).decode('utf-8', 'replace')}\n"
                       for p in self._pods())

    def remove(self) -> None:
        executor = self.executor
        executor.call(executor.apps.delete_namespaced_deployment, self.name, executor.namespace, missing_ok=True)
        executor.call(executor.core.delete_namespaced_service, self.name, executor.namespace, missing_ok=True)


class KubernetesAddress(ReplicaHandle):
    """A Service's ClusterIP: the cluster balances calls over its ready pods."""

    def __init__(self, name: str, cluster_ip: str, port: int):
        self.name, self.cluster_ip, self.port = name, cluster_ip, port

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
                timeout: float = 30, limit: int = MAX_ANSWER) -> Response:
        if not self.cluster_ip or self.cluster_ip == "None":
            raise ConnectionRefusedError(f"the Service {self.name} has no ClusterIP")
        return _http(self.cluster_ip, self.port, method, path, body, headers, timeout, limit)

    def running(self) -> bool:
        return bool(self.cluster_ip)


__all__ = ["KubernetesAddress", "KubernetesExecutor", "KubernetesFleet", "KubernetesReplica", "KubernetesRun", "Site", "credentials_problem", "deployment",
           "job", "job_end", "job_name", "replica_pod", "service"]

"""The executor's Kubernetes backend: what a batch spec and a replica spec become on a cluster.

:class:`KubernetesExecutor` renders the same specs the Docker backend runs
(:mod:`.spec`) as a ``batch/v1`` Job and as a Deployment with its Service, with
pure functions tested by golden files, and maps a Job and its pods back to an
end with the reasons of :mod:`.outcome`.  The pod is the Docker sandbox in
Kubernetes terms: no service-account token, a read-only root filesystem, no
capabilities, no privilege escalation, memory and CPU limits, ``/tmp`` an
``emptyDir`` in memory, and every mount a ``subPath`` of the data volume, as
:class:`workspace_hub.spawner.KubeWorkspaceSpawner` mounts a workspace.  A
maximum runtime becomes ``activeDeadlineSeconds``; a GPU run requests
``nvidia.com/gpu`` and selects GPU nodes.  Stop means deleting the Job with a
grace period (:data:`STOP_GRACE`), and logs are persisted the way the Docker
backend persists them: a watcher follows the pod's log into the run's file.

Network isolation on a cluster is a NetworkPolicy that selects
``ai.workspace-hub.run=run`` pods with no ingress and no egress rules; the
site applies it once (``deploy/``), as it applies the hub's own policies.

An inference service becomes a Deployment (its replicas, a readiness probe on
``/health``, the model read-only from the data volume, the same pod sandbox)
and a Service in front of it (:meth:`KubernetesExecutor.render_service`).
Stopping scales the Deployment to 0 and leaves the Service, so its ClusterIP
and port stay the service's address, as the platform manual asks.  Sites
that run KServe can serve the same predict image as an InferenceService with
a custom-container predictor (``spec.predictor.containers``, the model from a
PVC ``storageUri``); that is the documented alternative, not built here.

Multi-node training (one run across several pods) belongs to Kubeflow's
TrainJob (``trainer.kubeflow.org/v1alpha1``) where its CRD is installed: the
same pod template becomes the TrainJob's ``podTemplateOverrides`` and
``numNodes`` sets the pod count.  That path is documented, not built.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..contract import MODEL_DIR
from .outcome import decide
from .spec import LABEL_KEY, LABEL_OWNER, LABEL_RUN, BatchSpec, ReplicaSpec

STOP_GRACE = 5
GPU_RESOURCE = "nvidia.com/gpu"


class KubernetesExecutor:
    """Renders batch runs as Jobs in *namespace*, with mounts as subPaths of the claim *data_claim*."""

    def __init__(self, namespace: str, data_claim: str, data_root: Path, owner: str,
                 gpu_node_selector: dict | None = None):
        self.namespace = namespace
        self.data_claim = data_claim
        self.data_root = Path(data_root)
        self.owner = owner
        self.gpu_node_selector = gpu_node_selector or {"nvidia.com/gpu.present": "true"}

    def job_name(self, key: str) -> str:
        return f"run-{key}"[:63]

    def labels(self, spec: BatchSpec | ReplicaSpec) -> dict:
        return {**spec.labels, LABEL_RUN: spec.purpose, LABEL_OWNER: _label_value(self.owner), LABEL_KEY: spec.key}

    def subpath(self, host: Path) -> str:
        """A host path under the data root as a subPath of the data volume (nothing else may be mounted)."""
        relative = Path(host).resolve().relative_to(self.data_root.resolve())
        return relative.as_posix()

    def render_batch(self, spec: BatchSpec) -> dict:
        """The Job for one batch spec."""
        memory, cpus = f"{spec.memory // 1024**2}Mi", f"{int(spec.cpus * 1000)}m"
        resources = {"limits": {"memory": memory, "cpu": cpus}, "requests": {"memory": memory, "cpu": cpus}}
        if spec.gpus:
            resources["limits"][GPU_RESOURCE] = spec.gpus
        volume_mounts = [{"name": "data", "mountPath": m.target, "subPath": self.subpath(m.host),
                          "readOnly": m.read_only} for m in spec.mounts]
        volume_mounts.append({"name": "tmp", "mountPath": "/tmp"})
        labels = self.labels(spec)
        pod = {
            "metadata": {"labels": labels},
            "spec": {
                "restartPolicy": "Never",
                "automountServiceAccountToken": False,
                "enableServiceLinks": False,
                "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "runAsGroup": 1000,
                                    "seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [{
                    "name": "run",
                    "image": spec.image,
                    "imagePullPolicy": "IfNotPresent",
                    **({"command": list(spec.command)} if spec.command else {}),
                    "env": [{"name": k, "value": str(v)} for k, v in sorted(spec.environment.items())],
                    "resources": resources,
                    "volumeMounts": volume_mounts,
                    "securityContext": {"readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False,
                                        "capabilities": {"drop": ["ALL"]}},
                }],
                "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": self.data_claim}},
                            {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "256Mi"}}],
                **({"nodeSelector": dict(self.gpu_node_selector)} if spec.gpus else {}),
            },
        }
        job = {"backoffLimit": 0, "ttlSecondsAfterFinished": 3600, "template": pod}
        if spec.deadline:
            job["activeDeadlineSeconds"] = int(spec.deadline)
        return {"apiVersion": "batch/v1", "kind": "Job",
                "metadata": {"name": self.job_name(spec.key), "namespace": self.namespace, "labels": labels},
                "spec": job}

    def render_service(self, spec: ReplicaSpec, replicas: int, name: str) -> list[dict]:
        """A Deployment of *replicas* pods of *spec* and the Service that is their stable address."""
        labels, port, key = self.labels(spec), spec.port, spec.key
        memory, cpus = f"{spec.memory // 1024**2}Mi", f"{int(spec.cpus * 1000)}m"
        environment = {**spec.environment, "PORT": str(port), "HOST": "0.0.0.0"}
        container = {
            "name": "predict", "image": spec.image, "imagePullPolicy": "IfNotPresent",
            "env": [{"name": k, "value": v} for k, v in sorted(environment.items())],
            "ports": [{"name": "http", "containerPort": port}],
            "readinessProbe": {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 2,
                               "failureThreshold": 2},
            "livenessProbe": {"httpGet": {"path": "/health", "port": "http"}, "initialDelaySeconds": 30,
                              "periodSeconds": 10},
            "resources": {"limits": {"memory": memory, "cpu": cpus}, "requests": {"memory": "512Mi", "cpu": "250m"}},
            "volumeMounts": [{"name": "data", "mountPath": MODEL_DIR, "subPath": self.subpath(spec.model),
                              "readOnly": True}, {"name": "tmp", "mountPath": "/tmp"}],
            "securityContext": {"readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False,
                                "capabilities": {"drop": ["ALL"]}},
        }
        deployment = {
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": f"service-{key}"[:63], "namespace": self.namespace, "labels": labels,
                         "annotations": {"workspace-hub/service": name}},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {LABEL_KEY: key}},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "100%"}},
                "template": {"metadata": {"labels": labels}, "spec": {
                    "automountServiceAccountToken": False, "enableServiceLinks": False,
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "runAsGroup": 1000,
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [container],
                    "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": self.data_claim,
                                                                           "readOnly": True}},
                                {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "256Mi"}}]}},
            },
        }
        service = {
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": f"service-{key}"[:63], "namespace": self.namespace, "labels": labels},
            "spec": {"type": "ClusterIP", "selector": {LABEL_KEY: key},
                     "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
        }
        return [deployment, service]

    def delete_options(self) -> dict:
        """How stop deletes a run's Job: its pods get :data:`STOP_GRACE` seconds, then go with it."""
        return {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": STOP_GRACE,
                "propagationPolicy": "Foreground"}


def job_state(job, pods: list) -> tuple[str, str]:
    """(status, reason) of a run from its Job and pods (the Kubernetes client's API objects).

    Status is one of the run states (``starting``, ``running``, ``succeeded``, ``failed``); reason is a
    :class:`~.outcome.Reason` value for a failure, else "".  Whether a succeeded run wrote a model is
    :func:`~.outcome.decide`'s check, as on Docker.
    """
    for condition in (job.status.conditions or []) if job.status else []:
        if condition.status != "True" or condition.type not in ("Complete", "Failed"):
            continue
        terminated = _terminated(pods)
        deadline = condition.type == "Failed" and condition.reason == "DeadlineExceeded"
        lost = condition.type == "Failed" and terminated is None and not deadline
        outcome = decide(0 if condition.type == "Complete" else (terminated.exit_code if terminated else None),
                         oom=terminated is not None and terminated.reason == "OOMKilled", timed_out=deadline,
                         error=f"the Job failed: {condition.reason}" if lost else "")
        return outcome.state.value, outcome.reason.value if outcome.reason else ""
    for pod in pods:
        for status in (pod.status.container_statuses or []) if pod.status else []:
            waiting = status.state.waiting if status.state else None
            if waiting is not None and waiting.reason in ("ErrImagePull", "ImagePullBackOff", "InvalidImageName",
                                                          "CreateContainerConfigError"):
                return "failed", decide(None, error=f"{waiting.reason}: {waiting.message}").reason.value
            if status.state and status.state.running is not None:
                return "running", ""
    return "starting", ""


def _terminated(pods: list):
    for pod in pods:
        for status in (pod.status.container_statuses or []) if pod.status else []:
            if status.state and status.state.terminated is not None:
                return status.state.terminated
    return None


def _label_value(value: str) -> str:
    """A label value: 63 characters of [A-Za-z0-9_.-], starting and ending alphanumeric."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "-", value)[:63].strip("-_.")
    return cleaned or "library"

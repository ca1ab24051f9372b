"""The one execution layer: sandboxed containers for smoke runs, training runs and online tests.

Everything that runs a user's image goes through an :class:`Executor`, as every
workspace goes through :class:`workspace_hub.spawner.WorkspaceMixin`:

- :meth:`Executor.load` puts a checked image tar into the engine by digest;
- :meth:`Executor.run_batch` runs a train image to its end (smoke runs, training runs, which carry
  their record's key as a label so that a restarted library finds them with :meth:`DockerExecutor.find`);
- :meth:`Executor.start_replica` starts a predict image and returns a
  :class:`Replica` that answers HTTP requests (smoke runs, online tests).

:class:`DockerExecutor` is the backend here.  A Kubernetes backend implements the
same three calls with a Job and a Deployment (the pod spec the spawner renders
is the model).

Every container runs in :data:`SANDBOX`: no network at all (``--network none``),
a read-only root, no capabilities, and memory, CPU and pids limits.  A replica
is reached the way ``kubectl port-forward`` reaches a pod: a short-lived thread
enters the container's network namespace (``setns(2)`` on
``/proc/<pid>/ns/net``) and connects to ``127.0.0.1:<port>`` there.  Nothing on
the host network, workspaces included, can reach it.  No library wraps
``setns`` for Python 3.11 (``os.setns`` arrives in 3.12), hence the ctypes call.
"""

from __future__ import annotations

import ctypes
import http.client
import os
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .contract import DEFAULT_PORT, MODEL_DIR
from .errors import WorkspaceHubError

CLONE_NEWNET = 0x40000000
DOCKERD_ARGS = ("--bridge=none", "--iptables=false", "--ip-masq=false")
DOCKERD_LOG = "/var/log/workspace-hub-dockerd.log"
REPLICA_PORT = DEFAULT_PORT  # inside its own namespace every replica may listen on the same port
SANDBOX = dict(
    network_mode="none",
    read_only=True,
    tmpfs={"/tmp": "rw,size=256m"},
    mem_limit="2g",
    nano_cpus=2_000_000_000,
    pids_limit=256,
    cap_drop=["ALL"],
    security_opt=["no-new-privileges"],
)
LABEL_RUN = "ai.workspace-hub.run"  # every container the executor starts carries it, with its purpose
LABEL_OWNER = "ai.workspace-hub.owner"  # which process started it (the library, or `ws` on the host)
LABEL_KEY = "ai.workspace-hub.key"  # the record a long-lived container belongs to (a training run's key)
KEPT = ("run", "service")  # purposes whose containers outlive a restart of their owner: found again by label


class EngineUnavailable(WorkspaceHubError):
    """No container engine answers; the message says how to start one."""


class ProbeFailed(WorkspaceHubError):
    """A replica exited or did not answer ``/health`` in time; *code* is ``exit`` or ``health``."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def engine(timeout: int = 600, start: bool = False, log: Callable[[str], None] = print):
    """The one way to reach the local Docker engine (docker-py), or :class:`EngineUnavailable`.

    With *start*, a missing engine is started (``dockerd`` with no bridge and no
    iptables rules, as these machines need) and waited for up to 30 s.
    """
    import docker

    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
        return client
    except docker.errors.DockerException as e:
        if not (start and shutil.which("dockerd")):
            raise EngineUnavailable(f"No Docker engine answers ({e}). Install docker.io and start it: "
                                    f"dockerd {' '.join(DOCKERD_ARGS)} &") from None
    log(f"starting dockerd {' '.join(DOCKERD_ARGS)}")
    with open(DOCKERD_LOG, "ab") as logfile:
        subprocess.Popen(["dockerd", *DOCKERD_ARGS], stdout=logfile, stderr=logfile, start_new_session=True)
    for _ in range(60):
        time.sleep(0.5)
        try:
            return engine(timeout)
        except EngineUnavailable:
            continue
    raise EngineUnavailable(f"dockerd did not answer within 30 s; see {DOCKERD_LOG}")


_libc = ctypes.CDLL(None, use_errno=True)


def in_network_namespace(netns_fd: int, fn: Callable[[], object]):
    """Call *fn* in a fresh thread that has entered the network namespace *netns_fd*; return its result."""
    outcome: dict = {}

    def target():
        try:
            if _libc.setns(netns_fd, CLONE_NEWNET) != 0:
                errno = ctypes.get_errno()
                raise OSError(errno, f"setns: {os.strerror(errno)} (entering a container's network needs root)")
            outcome["value"] = fn()
        except BaseException as e:  # handed to the caller's thread
            outcome["error"] = e

    thread = threading.Thread(target=target, name="netns", daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


MAX_ANSWER = 10 * 1024**2  # the most a replica's answer may hold unless the caller says otherwise
HEALTH_ANSWER = 64 * 1024  # a /health probe reads no more than this


class AnswerTooLarge(WorkspaceHubError):
    """A replica's answer passed the caller's size limit; nothing past the limit was read."""


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"


class Replica:
    """A running predict container, reached inside its own network namespace."""

    def __init__(self, container, port: int = REPLICA_PORT):
        self.container = container
        self.port = port
        container.reload()
        pid = container.attrs["State"]["Pid"]
        if not pid:
            raise ProbeFailed("exit", "the service exited at once. Last output:\n"
                              + container.logs(tail=15).decode("utf-8", "replace").strip())
        self._netns = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)  # kept: pids are reused

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
                timeout: float = 30, limit: int = MAX_ANSWER) -> Response:
        """One HTTP request to the replica; an answer of more than *limit* bytes raises :class:`AnswerTooLarge`
        after reading at most *limit* + 1 bytes (a replica cannot make its caller hold more).  A malformed
        answer is an :class:`OSError`, as a refused connection is."""
        def call():
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
            try:
                connection.request(method, path, body=body, headers=headers or {})
                answer = connection.getresponse()
                data = answer.read(limit + 1)
                if len(data) > limit:
                    raise AnswerTooLarge(f"the replica's answer passed {limit} bytes")
                return Response(answer.status, data, answer.getheader("Content-Type") or "application/json")
            except http.client.HTTPException as e:
                raise OSError(f"the replica's answer is not HTTP: {e!r}") from None
            finally:
                connection.close()

        return in_network_namespace(self._netns, call)

    def running(self) -> bool:
        self.container.reload()
        return self.container.status == "running"

    def logs(self, lines: int = 15) -> str:
        try:
            return self.container.logs(tail=lines).decode("utf-8", "replace").strip()
        except Exception:
            return ""

    def wait_healthy(self, timeout: float, poll: float = 0.2) -> None:
        """Return once ``GET /health`` answers 200; raise :class:`ProbeFailed` if it exits or times out."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.request("GET", "/health", timeout=2, limit=HEALTH_ANSWER).status == 200:
                    return
            except OSError:
                pass
            if not self.running():
                raise ProbeFailed("exit", f"the service exited before answering /health. Last output:\n"
                                  f"{self.logs()}")
            if time.monotonic() > deadline:
                raise ProbeFailed("health", f"GET /health did not answer 200 within {timeout:.0f} s")
            time.sleep(poll)

    def remove(self) -> None:
        """Remove the container (gone already is fine) and let go of its namespace."""
        import docker

        try:
            self.container.remove(force=True)
        except docker.errors.NotFound:
            pass
        finally:
            if self._netns is not None:
                os.close(self._netns)
                self._netns = None


class Executor:
    """What a backend implements: load an image, run one to its end, start a replica."""

    def load(self, path: Path, report) -> str:
        """Load the checked image tar at *path* (its :class:`~workspace_hub.validate.Report`); return its ID."""
        raise NotImplementedError

    def run_batch(self, image: str, mounts: dict, environment: dict, purpose: str, command: list | None = None,
                  key: str = "", limits: dict | None = None):
        """Start *image* once (its own command, or *command*) with *mounts* (``{host: (target, mode)}``),
        labelled with *key*, within *limits* (memory, CPUs) where they differ from the sandbox's."""
        raise NotImplementedError

    def start_replica(self, image: str, model: Path, environment: dict, purpose: str, key: str = "") -> Replica:
        """Start a predict *image* with *model* read-only at ``/project/model``, labelled with *key*."""
        raise NotImplementedError


class DockerExecutor(Executor):
    """The executor on the local Docker engine, through docker-py."""

    def __init__(self, client=None, sandbox: dict | None = None, owner: str = "ws"):
        self._client = client
        self.sandbox = {**SANDBOX, **(sandbox or {})}
        self.owner = owner

    @property
    def client(self):
        if self._client is None:
            self._client = engine()
        return self._client

    def load(self, path: Path, report) -> str:
        """Load by digest: the engine receives :func:`validated_archive`, never the uploaded file."""
        from .validate import validated_archive

        [image] = self.client.images.load(validated_archive(path, report))
        if image.id != report.image["config_digest"]:
            raise RuntimeError(f"the engine loaded {image.id}, not the checked {report.image['config_digest']}")
        return image.id

    def _volumes(self, mounts: dict) -> dict:
        return {str(Path(host).resolve()): {"bind": target, "mode": mode} for host, (target, mode) in mounts.items()}

    def _start(self, image: str, command, mounts: dict, environment: dict, purpose: str, key: str = "",
               limits: dict | None = None):
        """Create and start a sandboxed container; one that cannot start is removed, not left behind."""
        labels = {LABEL_RUN: purpose, LABEL_OWNER: self.owner, **({LABEL_KEY: key} if key else {})}
        container = self.client.containers.create(
            image, command, environment=environment, labels=labels, volumes=self._volumes(mounts),
            **{**self.sandbox, **(limits or {})})
        try:
            container.start()
        except Exception:
            container.remove(force=True)
            raise
        return container

    def run_batch(self, image: str, mounts: dict, environment: dict, purpose: str, command: list | None = None,
                  key: str = "", limits: dict | None = None):
        return self._start(image, command, mounts, environment, purpose, key, limits)

    def find(self, key: str):
        """The container labelled with *key* by this owner (a run's, after a restart), or None."""
        found = self.find_all(key)
        return found[0] if found else None

    def find_all(self, key: str) -> list:
        """Every container labelled with *key* by this owner (a service's replicas, after a restart)."""
        return self.client.containers.list(all=True, filters={"label": [f"{LABEL_OWNER}={self.owner}",
                                                                        f"{LABEL_KEY}={key}"]})

    def start_replica(self, image: str, model: Path, environment: dict, purpose: str, key: str = "") -> Replica:
        environment = {"PORT": str(REPLICA_PORT), "HOST": "127.0.0.1", **environment}
        container = self._start(image, None, {model: (MODEL_DIR, "ro")}, environment, purpose, key)
        try:
            return Replica(container, REPLICA_PORT)
        except Exception:
            container.remove(force=True)
            raise

    def remove_leftovers(self) -> int:
        """Remove the containers this owner started (after a crash or at exit), except those of :data:`KEPT`
        purposes, which their owner finds again; return how many."""
        containers = [c for c in self.client.containers.list(all=True, filters={"label": f"{LABEL_OWNER}={self.owner}"})
                      if c.labels.get(LABEL_RUN) not in KEPT]
        for container in containers:
            container.remove(force=True)
        return len(containers)

    def discard(self, image_id: str) -> None:
        """Remove an image this executor loaded, unless something has tagged it meanwhile (never forced)."""
        import docker

        try:
            if not self.client.images.get(image_id).tags:
                self.client.images.remove(image_id)
        except docker.errors.DockerException:
            pass

    def remove_tag(self, tag: str) -> None:
        """Remove one tag; the image goes with its last tag unless a container uses it."""
        import docker

        try:
            self.client.images.remove(tag, noprune=False)
        except docker.errors.ImageNotFound:
            pass

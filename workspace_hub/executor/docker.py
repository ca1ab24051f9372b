"""The executor's Docker backend, through docker-py: the only module of the execution layer that imports it.

Every container runs in :data:`SANDBOX`: no network at all (``--network none``), a read-only root, no
capabilities, no swap past its memory, and memory, CPU and pids limits.  :func:`container_args` renders a
spec as the arguments of ``containers.create`` (a pure function, tested by a golden file).

A replica is reached the way ``kubectl port-forward`` reaches a pod: a thread of its own (:class:`Dialer`)
enters the container's network namespace (``setns(2)`` on ``/proc/<pid>/ns/net``) once and makes sockets
there, which connect to ``127.0.0.1:<port>`` in that namespace whichever thread uses them; calls from the
event loop keep those connections open (:mod:`.calls`).  Nothing on the host network, workspaces
included, can reach a replica.  No library wraps ``setns`` for Python 3.11 (``os.setns`` arrives in 3.12),
hence the ctypes call.
"""

from __future__ import annotations

import asyncio
import ctypes
import http.client
import os
import shutil
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures.thread import BrokenThreadPool
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import docker
import requests

from ..contract import MODEL_DIR
from .calls import Calls
from .base import (EngineError, EngineUnavailable, Executor, Handle, MAX_ANSWER, ProbeFailed, ReplicaHandle, Response,
                   bounded_read)
from .outcome import Outcome, decide
from .spec import KEPT, LABEL_KEY, LABEL_OWNER, LABEL_RUN, BatchSpec, Mount, ReplicaSpec

CLONE_NEWNET = 0x40000000
DOCKERD_ARGS = ("--bridge=none", "--iptables=false", "--ip-masq=false")
DOCKERD_LOG = "/var/log/workspace-hub-dockerd.log"
SANDBOX = dict(
    network_mode="none",
    read_only=True,
    tmpfs={"/tmp": "rw,size=256m"},
    pids_limit=256,
    cap_drop=["ALL"],
    security_opt=["no-new-privileges"],
)


def engine(timeout: int = 600, start: bool = False, log: Callable[[str], None] = print) -> docker.DockerClient:
    """The one way to reach the local Docker engine (docker-py), or :class:`EngineUnavailable`.

    With *start*, a missing engine is started (``dockerd`` with no bridge and no
    iptables rules, as these machines need) and waited for up to 30 s.
    """
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


@contextmanager
def engine_errors():
    """docker-py's exceptions as the executor's :class:`EngineError`."""
    try:
        yield
    except docker.errors.DockerException as e:
        raise EngineError(f"the engine refused: {e}") from None


def container_args(spec: BatchSpec | ReplicaSpec, owner: str, sandbox: dict | None = None) -> dict:
    """The keyword arguments of ``containers.create`` for *spec*: the sandbox, its limits, mounts and labels."""
    if isinstance(spec, ReplicaSpec):
        mounts = (Mount(spec.model, MODEL_DIR, read_only=True),)
        environment = {"PORT": str(spec.port), "HOST": "127.0.0.1", **spec.environment}
        command = None
    else:
        mounts, environment, command = spec.mounts, dict(spec.environment), spec.command
    labels = {**spec.labels, LABEL_RUN: spec.purpose, LABEL_OWNER: owner, **({LABEL_KEY: spec.key} if spec.key else {})}
    args = {
        **SANDBOX, **(sandbox or {}),
        "image": spec.image, "command": list(command) if command else None, "environment": environment,
        "labels": labels,
        "volumes": {str(Path(m.host).resolve()): {"bind": m.target, "mode": "ro" if m.read_only else "rw"}
                    for m in mounts},
        "mem_limit": spec.memory, "memswap_limit": spec.memory,  # no swap: past the limit is an OOM, not a crawl
        "nano_cpus": int(spec.cpus * 1e9),
    }
    if spec.gpus:  # only offered where the engine has the nvidia runtime
        args["device_requests"] = [docker.types.DeviceRequest(count=spec.gpus, capabilities=[["gpu"]])]
    return args


_libc = ctypes.CDLL(None, use_errno=True)


def _enter(netns_fd: int) -> None:
    if _libc.setns(netns_fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"setns: {os.strerror(errno)} (entering a container's network needs root)")


class Dialer:
    """A thread that lives in a container's network namespace and makes sockets there: a socket keeps the
    namespace it was created in, so any thread (or the event loop) connects and talks through it."""

    def __init__(self, netns_fd: int):
        self._threads = ThreadPoolExecutor(1, thread_name_prefix="netns", initializer=_enter, initargs=(netns_fd,))

    def socket_future(self):
        try:
            return self._threads.submit(socket.socket, socket.AF_INET, socket.SOCK_STREAM)
        except (BrokenThreadPool, RuntimeError) as e:  # setns was refused, or the replica is gone
            raise OSError(f"cannot reach the replica's network: {e}") from None

    def socket(self) -> socket.socket:
        try:
            return self.socket_future().result()
        except BrokenThreadPool as e:
            raise OSError(f"cannot reach the replica's network: {e}") from None

    async def asocket(self) -> socket.socket:
        try:
            return await asyncio.wrap_future(self.socket_future())
        except BrokenThreadPool as e:
            raise OSError(f"cannot reach the replica's network: {e}") from None

    def close(self) -> None:
        self._threads.shutdown(wait=False)


class DockerRun(Handle):
    """A container of a batch spec (or one found again by its label)."""

    def __init__(self, container, spec: BatchSpec | None = None):
        self.container = container
        self.spec = spec
        self.name = container.short_id

    @property
    def image_id(self) -> str:
        return self.container.attrs.get("Image", "")

    def wait(self, timeout: float | None = None, model: Path | None = None,
             stopped: Callable[[], bool] | None = None, too_large: Callable[[], str] | None = None) -> Outcome:
        if timeout is None and self.spec is not None:
            timeout = self.spec.deadline
        timed_out = False
        try:
            try:
                result = self.container.wait(timeout=timeout) if timeout else self.container.wait()
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout):  # the deadline passed
                timed_out = True
                self.stop()
                result = self.container.wait()
            self.container.reload()
        except docker.errors.DockerException as e:
            return decide(None, error=f"the engine lost the container: {e}")
        state = self.container.attrs.get("State") or {}
        return decide(result.get("StatusCode"), oom=bool(state.get("OOMKilled")), timed_out=timed_out,
                      stopped=bool(stopped and stopped()), model=model,
                      memory=(self.container.attrs.get("HostConfig") or {}).get("Memory"),
                      deadline=self.spec.deadline if self.spec else None, too_large=too_large() if too_large else "")

    def logs(self, follow: bool = False, since: float | None = None) -> Iterator[bytes]:
        with engine_errors():
            kwargs = {"since": int(since)} if since else {}
            if follow:
                yield from self.container.logs(stream=True, follow=True, stdout=True, stderr=True, **kwargs)
            else:
                yield self.container.logs(stdout=True, stderr=True, **kwargs)

    def tail(self, lines: int = 15) -> str:
        try:
            return self.container.logs(tail=lines).decode("utf-8", "replace").strip()
        except docker.errors.DockerException:
            return ""

    def stop(self, grace: float = 5) -> None:
        try:
            self.container.stop(timeout=int(grace))
        except docker.errors.DockerException:
            pass  # gone already

    def remove(self) -> None:
        try:
            self.container.remove(force=True)
        except docker.errors.DockerException:
            pass


class DockerReplica(DockerRun, ReplicaHandle):
    """A running predict container, reached inside its own network namespace."""

    def __init__(self, container, port: int):
        super().__init__(container)
        self.port = port
        container.reload()
        pid = container.attrs["State"]["Pid"]
        if not pid:
            raise ProbeFailed("exit", "the service exited at once. Last output:\n" + self.tail())
        self._netns = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)  # kept: pids are reused
        self._dialer = Dialer(self._netns)
        self._calls: Calls | None = None

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
                timeout: float = 30, limit: int = MAX_ANSWER) -> Response:
        deadline = time.monotonic() + timeout  # for the whole call: a replica that drips its answer is cut off
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            sock = self._dialer.socket()
            sock.settimeout(timeout)
            sock.connect(("127.0.0.1", self.port))
            connection.sock = sock  # kept: an HTTP/1.0 answer detaches it from the connection
            connection.request(method, path, body=body, headers=headers or {})
            answer = connection.getresponse()
            return Response(answer.status, bounded_read(answer, sock, limit, deadline, timeout),
                            answer.getheader("Content-Type") or "application/json")
        except http.client.HTTPException as e:
            raise OSError(f"the replica's answer is not HTTP: {e!r}") from None
        finally:
            connection.close()

    async def arequest(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
                       timeout: float = 30, limit: int = MAX_ANSWER) -> Response:
        """Through connections kept open in the replica's namespace (one pool per replica, on the caller's loop)."""
        if self._calls is None:
            self._calls = Calls("127.0.0.1", self.port, self._dialer.asocket)
        return await self._calls.request(method, path, body, headers, timeout, limit)

    def running(self) -> bool:
        try:
            self.container.reload()
        except docker.errors.DockerException:
            return False
        return self.container.status == "running"

    def remove(self) -> None:
        """Remove the container and let go of its namespace."""
        super().remove()
        self._dialer.close()
        self._calls = None  # its connections close with the container
        if self._netns is not None:
            os.close(self._netns)
            self._netns = None


class DockerExecutor(Executor):
    """The executor on the local Docker engine."""

    def __init__(self, client=None, sandbox: dict | None = None, **kwargs):
        super().__init__(**kwargs)
        self._client = client
        self.sandbox = sandbox or {}

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            self._client = engine()
        return self._client

    def _create(self, spec: BatchSpec | ReplicaSpec):
        """Create and start a sandboxed container; one that cannot start is removed, not left behind."""
        with engine_errors():
            container = self.client.containers.create(**container_args(spec, self.owner, self.sandbox))
            try:
                container.start()
            except Exception:
                container.remove(force=True)
                raise
            return container

    def start_batch(self, spec: BatchSpec) -> DockerRun:
        container = self._create(spec)
        container.reload()
        return DockerRun(container, spec)

    def start_replica(self, spec: ReplicaSpec) -> DockerReplica:
        container = self._create(spec)
        try:
            return DockerReplica(container, spec.port)
        except Exception:
            container.remove(force=True)
            raise

    def _labelled(self, key: str) -> list:
        with engine_errors():
            return self.client.containers.list(all=True, filters={"label": [f"{LABEL_OWNER}={self.owner}",
                                                                            f"{LABEL_KEY}={key}"]})

    def find(self, key: str) -> DockerRun | None:
        found = self._labelled(key)
        return DockerRun(found[0]) if found else None

    def find_replicas(self, key: str) -> list[DockerReplica]:
        from ..contract import DEFAULT_PORT

        replicas = []
        for container in self._labelled(key):
            if container.status == "running":
                try:
                    replicas.append(DockerReplica(container, DEFAULT_PORT))
                    continue
                except ProbeFailed:
                    pass
            DockerRun(container).remove()
        return replicas

    def remove_leftovers(self) -> int:
        with engine_errors():
            containers = [c for c in self.client.containers.list(
                all=True, filters={"label": f"{LABEL_OWNER}={self.owner}"}) if c.labels.get(LABEL_RUN) not in KEPT]
            for container in containers:
                container.remove(force=True)
        return len(containers)

    def has_gpu(self) -> bool:
        with engine_errors():
            return "nvidia" in (self.client.info().get("Runtimes") or {})

    # -- images ----------------------------------------------------------------------------------
    def load(self, path: Path, report) -> str:
        """Load by digest: the engine receives :func:`validated_archive`, never the uploaded file."""
        from ..validate import validated_archive

        with engine_errors():
            [image] = self.client.images.load(validated_archive(path, report))
        if image.id != report.image["config_digest"]:
            raise EngineError(f"the engine loaded {image.id}, not the checked {report.image['config_digest']}")
        return image.id

    def has_image(self, reference: str) -> bool:
        try:
            self.client.images.get(reference)
            return True
        except docker.errors.ImageNotFound:
            return False
        except docker.errors.DockerException as e:
            raise EngineError(f"the engine refused: {e}") from None

    def tag(self, image: str, tag: str) -> None:
        repository, _, version = tag.rpartition(":")
        with engine_errors():
            self.client.images.get(image).tag(repository, version)

    def push(self, tag: str, registry: str) -> str:
        """Push by digest: the reference returned names the manifest the registry stored, and that manifest's
        image is checked to be the one validated (its config digest is the local image's ID)."""
        repository, _, version = tag.rpartition(":")
        remote = f"{registry}/{repository}"
        digest = ""
        with engine_errors():
            validated = self.client.images.get(tag).id
            self.client.images.get(tag).tag(remote, version)
            for line in self.client.images.push(remote, version, stream=True, decode=True):
                if "error" in line:
                    raise EngineError(f"push to {registry} failed: {line['error']}")
                digest = (line.get("aux") or {}).get("Digest", digest)
            if not digest:
                raise EngineError(f"push to {registry} reported no digest")
            reference = f"{remote}@{digest}"
            stored = self.client.images.pull(reference)  # by digest, through the engine's own credentials
        if stored.id != validated:
            raise EngineError(f"{reference} holds {stored.id}, not the validated {validated}")
        return reference

    def pull(self, reference: str) -> Iterator[bytes]:
        with engine_errors():
            image = self.client.images.pull(reference)
        try:
            with engine_errors():
                yield from image.save(named=False)
        finally:
            self.remove_tag(reference)

    def discard(self, image_id: str) -> None:
        try:
            if not self.client.images.get(image_id).tags:
                self.client.images.remove(image_id)
        except docker.errors.DockerException:
            pass

    def remove_tag(self, tag: str) -> None:
        """Remove one tag; the image goes with its last tag unless a container uses it."""
        try:
            self.client.images.remove(tag, noprune=False)
        except docker.errors.ImageNotFound:
            pass

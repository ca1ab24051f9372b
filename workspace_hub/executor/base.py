"""What every backend implements: start a spec, find what it started by label, and one handle per thing.

A backend never leaks its engine's types: callers hold an :class:`Executor`, give it specs
(:mod:`.spec`) and get handles back.  Engine failures are :class:`EngineError`, whatever the engine.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from traitlets import Unicode
from traitlets.config import LoggingConfigurable

from ..errors import WorkspaceHubError
from .outcome import Outcome
from .spec import BatchSpec, ReplicaSpec

MAX_ANSWER = 10 * 1024**2  # the most a replica's answer may hold unless the caller says otherwise
HEALTH_ANSWER = 64 * 1024  # a /health probe reads no more than this


class EngineUnavailable(WorkspaceHubError):
    """No container engine answers; the message says how to start one."""


class EngineError(WorkspaceHubError):
    """The engine refused or failed a request (not the user's image)."""


class ProbeFailed(WorkspaceHubError):
    """A replica exited or did not answer ``/health`` in time; *code* is ``exit`` or ``health``."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


class AnswerTooLarge(WorkspaceHubError):
    """A replica's answer passed the caller's size limit; nothing past the limit was read."""


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"


class Handle:
    """One started thing (a container, a pod): wait for its end, read its log, stop it, remove it."""

    image_id: str = ""
    name: str = ""  # short, for logs and pages

    def wait(self, timeout: float | None = None, model: Path | None = None,
             stopped: Callable[[], bool] | None = None, too_large: Callable[[], str] | None = None) -> Outcome:
        """Block until it ends (or *timeout* passes: then it is stopped, and the end is ``max-runtime``); the
        outcome decided by :func:`.outcome.decide`, with *model* the folder it had to write, *stopped* saying
        whether a user stopped it and *too_large* what limit its output passed ("" if none)."""
        raise NotImplementedError

    def logs(self, follow: bool = False, since: float | None = None) -> Iterator[bytes]:
        """Its output as chunks of bytes: what is there, or (*follow*) until it ends; *since* a UNIX time."""
        raise NotImplementedError

    def tail(self, lines: int = 15) -> str:
        """The last *lines* of its output, as text ("" if there is none)."""
        raise NotImplementedError

    def stop(self, grace: float = 5) -> None:
        raise NotImplementedError

    def remove(self) -> None:
        """Remove it (gone already is fine)."""
        raise NotImplementedError


class ReplicaHandle(Handle):
    """A running predict server, reached where only the platform reaches it."""

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
                timeout: float = 30, limit: int = MAX_ANSWER) -> Response:
        """One HTTP request within *timeout* seconds in all; an answer over *limit* bytes raises
        :class:`AnswerTooLarge` (read no further); a refused connection, a malformed answer or one that takes
        longer is an :class:`OSError`."""
        raise NotImplementedError

    async def arequest(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
                       timeout: float = 30, limit: int = MAX_ANSWER) -> Response:
        """:meth:`request` from an event loop; backends keep connections open (:mod:`.calls`), this default
        runs the blocking call on a thread."""
        import asyncio

        return await asyncio.to_thread(self.request, method, path, body, headers, timeout, limit)

    def running(self) -> bool:
        raise NotImplementedError

    def wait_healthy(self, timeout: float, poll: float = 0.2) -> None:
        """Return once ``GET /health`` answers 200; raise :class:`ProbeFailed` if it exits or times out."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.request("GET", "/health", timeout=2, limit=HEALTH_ANSWER).status == 200:
                    return
            except (OSError, AnswerTooLarge):
                pass
            if not self.running():
                raise ProbeFailed("exit", f"the service exited before answering /health. Last output:\n"
                                  f"{self.tail()}")
            if time.monotonic() > deadline:
                raise ProbeFailed("health", f"GET /health did not answer 200 within {timeout:.0f} s")
            time.sleep(poll)

    def healthy(self) -> bool:
        try:
            return self.request("GET", "/health", timeout=2, limit=HEALTH_ANSWER).status == 200
        except (OSError, AnswerTooLarge):
            return False


@dataclass(frozen=True)
class FleetState:
    """What the engine reports of a fleet: the replicas asked for, those ready, those of the last revision
    applied, and a problem the engine sees (an image it cannot pull), or ""."""

    wanted: int = 0
    ready: int = 0
    updated: int = 0
    problem: str = ""
    revision: str = ""  # the revision the engine now rolls to

    @property
    def rolled_out(self) -> bool:
        return self.updated == self.wanted and self.ready >= self.wanted


class Fleet:
    """A service's replicas that the engine itself keeps at a count and rolls (a Deployment and its Service,
    on Kubernetes).  On Docker there is none: the library keeps each replica, one :class:`ReplicaHandle`
    each (``workspace_library.services.replicas``)."""

    def apply(self, spec: ReplicaSpec, replicas: int, name: str) -> None:
        """Create the fleet, or change it: another count scales it, another spec rolls it (old replicas serve
        until new ones are ready)."""
        raise NotImplementedError

    def state(self) -> FleetState:
        raise NotImplementedError

    def wait(self, predicate: Callable[[FleetState], bool], timeout: float) -> bool:
        """Wait (on the engine's changes, not a poll) until *predicate(state)* holds; False after *timeout*."""
        raise NotImplementedError

    def address(self) -> "ReplicaHandle":
        """The stable address the fleet's replicas are reached at (stopping keeps it)."""
        raise NotImplementedError

    def tail(self, lines: int = 200) -> str:
        raise NotImplementedError

    def remove(self) -> None:
        raise NotImplementedError


def bounded_read(answer, sock, limit: int, deadline: float, timeout: float) -> bytes:
    """At most *limit* bytes of the HTTP *answer* (read from *sock*) before *deadline*, else
    :class:`AnswerTooLarge` or a timeout."""
    data = bytearray()
    while len(data) <= limit:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"the replica's answer took more than {timeout:g} s")
        sock.settimeout(left)
        chunk = answer.read1(min(1 << 16, limit + 1 - len(data)))
        if not chunk:
            return bytes(data)
        data += chunk
    raise AnswerTooLarge(f"the replica's answer passed {limit} bytes")


class Executor(LoggingConfigurable):
    """A backend: runs specs and finds again, by label, what it started."""

    owner = Unicode("ws", help="Which process starts things (a label on each): the library, one per data root, "
                               "or `ws` on the host.")

    def start_batch(self, spec: BatchSpec) -> Handle:
        raise NotImplementedError

    def start_replica(self, spec: ReplicaSpec) -> ReplicaHandle:
        """Start a replica; :class:`ProbeFailed` if it exits at once (it is removed)."""
        raise NotImplementedError

    def find(self, key: str) -> Handle | None:
        """The batch run labelled *key* by this owner (after a restart), or None."""
        raise NotImplementedError

    def find_replicas(self, key: str) -> list[ReplicaHandle]:
        """The running replicas labelled *key* by this owner; ones that no longer run are removed."""
        raise NotImplementedError

    def remove_leftovers(self) -> int:
        """Remove what this owner started, except the purposes kept across restarts; return how many."""
        raise NotImplementedError

    def has_gpu(self) -> bool:
        return False

    def fleet(self, key: str) -> Fleet | None:
        """The fleet of the service *key* where the engine keeps replicas itself, else None (the library
        starts and replaces them one by one)."""
        return None

    # -- images: what the engine runs, by digest --------------------------------------------------
    def load(self, path: Path, report) -> str:
        """Load the checked image tar at *path* (its :class:`~workspace_hub.validate.Report`); return its ID."""
        raise NotImplementedError

    def has_image(self, reference: str) -> bool:
        raise NotImplementedError

    def tag(self, image: str, tag: str) -> None:
        raise NotImplementedError

    def push(self, tag: str, registry: str) -> str:
        """Push *tag* to *registry* (``host:port``); return the pushed reference."""
        raise NotImplementedError

    def pull(self, reference: str) -> Iterator[bytes]:
        """Pull *reference* and stream it as an image tar; the name the pull created is removed afterwards."""
        raise NotImplementedError

    def discard(self, image_id: str) -> None:
        """Remove an image this executor loaded, unless something has tagged it meanwhile."""
        raise NotImplementedError

    def remove_tag(self, tag: str) -> None:
        raise NotImplementedError

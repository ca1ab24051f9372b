"""Inference services: replicas on the executor, health-driven status, balanced calls, rolling redo.

Each service runs ``replicas`` predict containers in the sandbox (``--network none``), each a
:class:`workspace_hub.executor.ReplicaHandle` that the library reaches where nothing else can.  A monitor
thread looks at every replica once a second: its container must run and ``GET /health`` must answer 200,
and the service's owner must still be allowed its model and algorithm (or it stops serving, ``failed``).  A
replica that fails either is removed (its last log lines kept in the service's log file) and replaced, and
the status says so:

- ``starting``: no replica is healthy yet; ``running``: as many healthy replicas as wanted;
- ``degraded``: some healthy, fewer than wanted; ``failed``: none healthy after ``MAX_FAILURES`` starts
  in a row; ``stopped``: zero replicas wanted.

Calls go to the healthy replicas in turn; a replica that does not answer is skipped for the next one.
A **redo** (a new image or model) starts a full set of new replicas beside the old ones; only when all are
healthy do calls move to them and the old ones go.  If they never get healthy, they go instead, and the
old ones keep serving.  Replicas carry the service's key as a label, so a restarted library finds them
again instead of starting new ones.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from workspace_hub.executor import (LABEL_REVISION, AnswerTooLarge, EngineError, Executor, Fleet, FleetState, ProbeFailed,
                                    ReplicaHandle, ReplicaSpec)
from workspace_hub.executor.calls import IDEMPOTENT

from ..errors import LibraryError
from ..models import Service, ServiceStatus
from . import metrics
from .rules import require_still_usable

log = logging.getLogger("workspace_library")
MAX_FAILURES = 3
# /health checks in a row a replica that served may miss before it is replaced (Kubernetes' failureThreshold):
# a replica busy with calls may answer one check late, and replacing it would drop the calls it holds
MISSED_CHECKS = 3
DRAIN = 30  # seconds a replaced replica gets to answer the calls it already has
JSON = "application/json"
LATENCIES = 1000  # recent calls kept for p50 and p95


@dataclass
class Pool:
    """What the library knows about one service's replicas, in memory."""

    replicas: list = field(default_factory=list)  # (Replica, revision)
    healthy: set = field(default_factory=set)  # replica names
    missed: dict = field(default_factory=dict)  # replica name -> /health checks missed in a row
    turn: int = 0
    failures: int = 0
    calls: int = 0
    errors: int = 0
    latencies: deque = field(default_factory=lambda: deque(maxlen=LATENCIES))
    lock: threading.RLock = field(default_factory=threading.RLock)  # held while replicas move: never on the loop
    stats: threading.Lock = field(default_factory=threading.Lock)  # the counters only: held for an instant
    outstanding: dict = field(default_factory=dict)  # replica name -> calls in flight (touched on the loop only)
    busy: bool = False  # a redo or a scale is moving replicas: the monitor leaves them alone
    used: float = 0.0  # an online test's: when it was last called (monotonic), for the idle reaper
    applied: tuple | None = None  # a fleet's: the (image, model, replicas) last applied to it
    address: ReplicaHandle | None = None  # a fleet's: its stable address (a Service's ClusterIP)
    fleet_state: FleetState = field(default_factory=FleetState)  # a fleet's: what the engine last reported


class Services:
    def __init__(self, sessions: sessionmaker, root: Path, data_root: Path, executor: Executor,
                 interval: float = 1.0, health_timeout: float = 60, max_answer: int = 10 * 1024**2,
                 trial_idle: float = 300):
        self.sessions = sessions
        self.max_answer = max_answer  # bytes of one answer the address forwards
        self.trial_idle = trial_idle  # seconds an online test's replica waits for another call
        self.health_timeout = health_timeout  # seconds a new replica gets to answer /health
        self.root = root  # <data root>/library/services: one log file per service
        self.data_root = data_root
        self.executor = executor
        self.interval = interval
        self.pools: dict[int, Pool] = {}
        self._closed = threading.Event()

    def pool(self, service_id: int) -> Pool:
        return self.pools.setdefault(service_id, Pool())

    def log_file(self, service: Service) -> Path:
        return self.root / f"{service.key}.log"

    # -- replicas ------------------------------------------------------------------------------
    def _spec(self, service: Service, revision: int) -> ReplicaSpec:
        model = self.data_root / "library" / "trees" / service.model_manifest if service.model_manifest \
            else self.root / "empty-model"
        model.mkdir(parents=True, exist_ok=True)
        return ReplicaSpec(service.image, "service", model, key=service.key, labels={LABEL_REVISION: str(revision)})

    def _start_one(self, service: Service, revision: int) -> ReplicaHandle:
        replica = self.executor.start_replica(self._spec(service, revision))
        replica.started = time.monotonic()
        return replica

    def _keep_fleet(self, fleet: Fleet, pool: Pool, service: Service, wanted: int) -> FleetState:
        """Where the engine keeps the replicas (a Deployment), ask it for the count and report what it has."""
        applied = (service.image, service.model_manifest, wanted)
        if pool.applied != applied and pool.failures < MAX_FAILURES:
            try:
                fleet.apply(self._spec(service, service.revision), wanted, service.name)
                pool.applied, pool.failures = applied, 0
            except EngineError as e:
                pool.failures += 1
                log.warning("service %s: the engine refused its replicas: %s", service.name, e)
        pool.fleet_state = fleet.state()
        if pool.address is None and pool.applied is not None:
            try:
                address = fleet.address()
            except EngineError as e:
                log.warning("service %s: no address yet: %s", service.name, e)
            else:
                pool.address = address if address.running() else None  # the cluster has not given one yet
        return pool.fleet_state

    def _note(self, service: Service, text: str) -> None:
        """Append to the service's log (its owner's and admins')."""
        path = self.log_file(service)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:
            f.write(text)

    def _remove(self, service: Service, replica: ReplicaHandle, why: str) -> None:
        self._note(service, f"--- replica {replica.name} removed: {why}\n{replica.tail(200)}\n")
        replica.remove()
        metrics.forget_replica(f"{service.owner}/{service.name}", replica.name)

    def _set(self, service_id: int, state: ServiceStatus, message: str = "") -> None:
        with self.sessions() as session:
            service = session.get(Service, service_id)
            if service is not None and (service.state, service.message) != (state, message):
                service.state, service.message = state, message
                session.commit()

    def ensure(self, service_id: int) -> None:
        """Bring the replicas to the wanted count, replacing the unhealthy ones; update the status."""
        pool = self.pool(service_id)
        with pool.lock:
            if pool.busy:
                return
            with self.sessions() as session:
                service = session.get(Service, service_id)
                if service is None:
                    return
                wanted, revision, label = service.replicas, service.revision, f"{service.owner}/{service.name}"
                try:
                    if wanted:
                        require_still_usable(session, service)
                except LibraryError as e:  # a withdrawn grant, a model or algorithm made private
                    wanted, withdrawn = 0, f"stopped serving: {e.message}"
                else:
                    withdrawn = ""
                fleet = self.executor.fleet(service.key)
                if fleet is not None:
                    state = self._keep_fleet(fleet, pool, service, wanted)
                    healthy, problem = state.ready, state.problem
                else:
                    healthy, problem = self._keep_replicas(pool, service, wanted, revision, withdrawn), ""
        self._report(service_id, wanted, healthy, withdrawn, problem, pool.failures, label)

    def _keep_replicas(self, pool: Pool, service: Service, wanted: int, revision: int, withdrawn: str) -> int:
        """Where the library keeps the replicas: replace the unhealthy, start or remove to the count; return
        how many are healthy."""
        for replica, rev in list(pool.replicas):
            alive = replica.running()
            healthy = alive and replica.healthy()
            if healthy:
                pool.healthy.add(replica.name)
                pool.missed.pop(replica.name, None)
                pool.failures = 0
                continue
            served = replica.name in pool.healthy
            if alive and served:
                pool.missed[replica.name] = pool.missed.get(replica.name, 0) + 1
                if pool.missed[replica.name] < MISSED_CHECKS:
                    continue  # late once or twice (busy with calls): it keeps serving
            if served or not alive or time.monotonic() - getattr(replica, "started", 0) > self.health_timeout:
                # it served and stopped answering, it is gone, or it never answered: replace it
                if not served:  # it never served: a failed start, counted (no crash loop)
                    pool.failures += 1
                pool.healthy.discard(replica.name)
                pool.missed.pop(replica.name, None)
                pool.replicas.remove((replica, rev))
                self._remove(service, replica, "not running" if not alive else
                             f"/health failed {MISSED_CHECKS} times in a row" if served else "/health failed")
        while len(pool.replicas) > wanted:
            replica, _ = pool.replicas.pop()
            pool.healthy.discard(replica.name)
            pool.missed.pop(replica.name, None)
            self._remove(service, replica, withdrawn or "scaled down")
        while len(pool.replicas) < wanted and pool.failures < MAX_FAILURES:
            try:
                pool.replicas.append((self._start_one(service, revision), revision))
            except (ProbeFailed, EngineError) as e:  # the image exits at once, or the engine refuses
                pool.failures += 1
                self._note(service, f"--- a replica did not start: {e}\n")
                log.warning("service %s: a replica did not start: %s", service.name, e)
                break
        return len(pool.healthy)

    def _report(self, service_id: int, wanted: int, healthy: int, withdrawn: str, problem: str, failures: int,
                label: str = "") -> None:
        if label:
            metrics.REPLICAS.labels(label, "wanted").set(wanted)
            metrics.REPLICAS.labels(label, "healthy").set(healthy)
        if withdrawn:
            self._set(service_id, ServiceStatus.failed, withdrawn)
        elif wanted == 0:
            self._set(service_id, ServiceStatus.stopped)
        elif failures >= MAX_FAILURES and not healthy:  # their output is in the log, which is the owner's
            self._set(service_id, ServiceStatus.failed, f"replicas failed to start {MAX_FAILURES} times in a row; "
                      "the service's log has what the last one printed")
        elif problem and not healthy:
            self._set(service_id, ServiceStatus.failed, problem)
        elif healthy >= wanted:
            self._set(service_id, ServiceStatus.running)
        elif healthy:
            self._set(service_id, ServiceStatus.degraded, f"{healthy} of {wanted} replicas answer /health")
        else:
            self._set(service_id, ServiceStatus.starting)

    def scale(self, service_id: int, replicas: int) -> None:
        with self.sessions() as session:
            service = session.get(Service, service_id)
            service.replicas = replicas
            session.commit()
        pool = self.pool(service_id)
        pool.failures = 0
        self.ensure(service_id)

    def redo(self, service_id: int, image: str, model_manifest: str) -> tuple[bool, str]:
        """Roll to a new image or model: new replicas first, then the switch; the old ones serve until then."""
        pool = self.pool(service_id)
        with self.sessions() as session:
            service = session.get(Service, service_id)
            wanted = max(1, service.replicas)
            candidate = Service(key=service.key, image=image, model_manifest=model_manifest, name=service.name,
                                owner=service.owner, revision=service.revision + 1)
            revision = service.revision + 1
            current = Service(key=service.key, image=service.image, model_manifest=service.model_manifest,
                              name=service.name, owner=service.owner, revision=service.revision)
        fleet = self.executor.fleet(service.key)
        if fleet is not None:
            return self._roll_fleet(fleet, pool, service_id, candidate, current, wanted)
        with pool.lock:
            pool.busy = True
        new: list[ReplicaHandle] = []
        try:
            for _ in range(wanted):
                new.append(self._start_one(candidate, revision))
            for replica in new:
                replica.wait_healthy(self.health_timeout)
        except (ProbeFailed, EngineError) as e:
            for replica in new:
                self._remove(candidate, replica, f"redo failed: {e}")
            with pool.lock:
                pool.busy = False
            return False, f"the new version did not get healthy ({e}); the old one keeps serving"
        with pool.lock:
            old = list(pool.replicas)
            pool.replicas = [(r, revision) for r in new]
            pool.healthy = {r.name for r in new}
            with self.sessions() as session:
                service = session.get(Service, service_id)
                service.image, service.model_manifest, service.revision = image, model_manifest, revision
                session.commit()
            pool.busy = False
        drained = time.monotonic() + DRAIN  # calls already on their way to an old replica finish there first
        while any(pool.outstanding.get(r.name, 0) for r, _ in old) and time.monotonic() < drained:
            time.sleep(0.02)
        for replica, _ in old:
            self._remove(candidate, replica, "replaced by a redo")
        self.ensure(service_id)
        return True, ""

    def _roll_fleet(self, fleet: Fleet, pool: Pool, service_id: int, candidate: Service, current: Service,
                    wanted: int) -> tuple[bool, str]:
        """A redo where the engine rolls: the new revision rolls out beside the old one (``maxUnavailable: 0``);
        if it is not all ready within the health timeout, the old revision is applied again (a rollback)."""
        with pool.lock:
            pool.busy = True
        try:
            fleet.apply(self._spec(candidate, candidate.revision), wanted, candidate.name)
            revision = str(candidate.revision)
            rolled = fleet.wait(lambda state: state.revision == revision and (state.rolled_out or bool(state.problem)),
                                self.health_timeout) and not fleet.state().problem
            if not rolled:
                why = fleet.state().problem or f"its replicas were not ready within {self.health_timeout:g} s"
                fleet.apply(self._spec(current, current.revision), wanted, current.name)
                return False, f"the new version did not get healthy ({why}); the old one keeps serving"
            with self.sessions() as session:
                service = session.get(Service, service_id)
                service.image, service.model_manifest = candidate.image, candidate.model_manifest
                service.revision = candidate.revision
                session.commit()
            pool.applied = (candidate.image, candidate.model_manifest, wanted)
        except EngineError as e:
            return False, f"the new version could not be applied ({e}); the old one keeps serving"
        finally:
            with pool.lock:
                pool.busy = False
        self.ensure(service_id)
        return True, ""

    # -- calls ---------------------------------------------------------------------------------
    def call(self, service_id: int, method: str, path: str, body: bytes | None, headers: dict):
        """(status, body, content type) from a healthy replica, trying the next one if one fails; an answer
        over ``max_answer`` bytes is a 502 (read no further than that)."""
        pool = self.pool(service_id)
        with pool.lock:
            ready = [r for r, _ in pool.replicas if r.name in pool.healthy]
            if pool.address is not None:  # the engine balances over its ready replicas behind one address
                ready = [pool.address] if pool.fleet_state.ready else []
            elif not ready and not pool.busy:  # just started: the monitor has not looked yet, so look now
                ready = [r for r, _ in pool.replicas if r.healthy()]
                pool.healthy.update(r.name for r in ready)
            pool.turn += 1
            start = pool.turn
        started = time.perf_counter()
        for i in range(len(ready)):
            replica = ready[(start + i) % len(ready)]
            try:
                answer = replica.request(method, path, body, headers, timeout=60, limit=self.max_answer)
            except AnswerTooLarge:
                self._count(pool, 502, time.perf_counter() - started)
                return 502, _error(502, "answer-too-large", f"the service's answer passed {self.max_answer} bytes "
                                   "(LibraryService.serve_max_answer_bytes); answer with less, or ask an admin"), JSON
            except OSError:
                continue
            self._count(pool, answer.status, time.perf_counter() - started)
            return answer.status, answer.body, answer.content_type
        self._count(pool, 503, time.perf_counter() - started)
        return 503, _error(503, "no-replica", "no replica of this service answers; see its status"), JSON

    # -- online tests: short-lived services ------------------------------------------------------
    def try_out(self, key: str, image: str, model: Path, method: str, path: str, body: bytes | None,
                headers: dict):
        """Call an algorithm's predict image as an online test: a service of one replica without an address,
        started on first use (with the algorithm's smoke-trained *model*) and removed after ``trial_idle``
        seconds without a call, when the algorithm goes offline or is deleted, and when the library stops."""
        name = f"test:{key}"
        pool = self.pool(name)
        with pool.lock:  # held while its replica starts: a slow image delays its own tests, no one else's
            if not any(r.running() for r, _ in pool.replicas):
                for replica, _ in pool.replicas:
                    replica.remove()
                pool.replicas, pool.healthy = [], set()
                replica = self.executor.start_replica(ReplicaSpec(image, "test", model, key=key))
                try:
                    replica.wait_healthy(self.health_timeout)
                except ProbeFailed:
                    replica.remove()
                    raise
                pool.replicas, pool.healthy = [(replica, 0)], {replica.name}
            pool.used = time.monotonic()
        return self.call(name, method, path, body, headers)

    def end_trial(self, key: str) -> None:
        pool = self.pools.pop(f"test:{key}", None)
        if pool is not None:
            with pool.lock:
                for replica, _ in pool.replicas:
                    replica.remove()

    def _reap_trials(self) -> None:
        for name, pool in list(self.pools.items()):
            if isinstance(name, str) and pool.lock.acquire(blocking=False):  # one starting is not idle
                try:
                    idle = time.monotonic() - pool.used > self.trial_idle
                finally:
                    pool.lock.release()
                if idle:
                    self.end_trial(name.removeprefix("test:"))

    async def acall(self, service_id: int, method: str, path: str, body: bytes | None, headers: dict,
                    label: str = ""):
        """:meth:`call` from the event loop, for the service's address (*label*, ``owner/name``, in the
        metrics): no thread per call, connections kept open to each replica (:meth:`ReplicaHandle.arequest`),
        the call to the healthy replica with the fewest calls in flight, the next one if it fails.  Reads what
        the monitor keeps without taking its lock."""
        started = time.perf_counter()
        metrics.IN_FLIGHT.labels(label).inc()
        try:
            status, answer, content_type = await self._acall(service_id, method, path, body, headers, label)
        finally:
            metrics.IN_FLIGHT.labels(label).dec()
        metrics.CALLS.labels(label, str(status)).inc()
        metrics.LATENCY.labels(label).observe(time.perf_counter() - started)
        return status, answer, content_type

    async def _acall(self, service_id: int, method: str, path: str, body: bytes | None, headers: dict, label: str,
                     again: bool = True):
        pool = self.pool(service_id)
        if pool.address is not None:
            ready = [pool.address] if pool.fleet_state.ready else []
        else:
            ready = [r for r, _ in list(pool.replicas) if r.name in pool.healthy]
        if not ready:  # just started (the monitor has not looked yet), or nothing answers: the blocking path
            return await asyncio.to_thread(self.call, service_id, method, path, body, headers)
        pool.turn += 1
        start = pool.turn % len(ready)
        ready = sorted(ready[start:] + ready[:start], key=lambda r: pool.outstanding.get(r.name, 0))
        replicas = pool.replicas
        started = time.perf_counter()
        for replica in ready:
            pool.outstanding[replica.name] = pool.outstanding.get(replica.name, 0) + 1
            in_flight, errors = (metrics.REPLICA_IN_FLIGHT.labels(label, replica.name),
                                 metrics.REPLICA_ERRORS.labels(label, replica.name))
            in_flight.inc()
            sent = time.perf_counter()
            try:
                answer = await replica.arequest(method, path, body, headers, timeout=60, limit=self.max_answer)
            except AnswerTooLarge:
                errors.inc()
                self._count(pool, 502, time.perf_counter() - started)
                return 502, _error(502, "answer-too-large", f"the service's answer passed {self.max_answer} bytes "
                                   "(LibraryService.serve_max_answer_bytes); answer with less, or ask an admin"), JSON
            except TimeoutError:  # it may still be working on it: not sent again elsewhere
                errors.inc()
                self._count(pool, 504, time.perf_counter() - started)
                return 504, _error(504, "replica-timeout", "the service did not answer within 60 s"), JSON
            except ConnectionRefusedError:  # nothing was sent: the next replica
                errors.inc()
                continue
            except OSError as e:  # reset or not HTTP once sent: it may have run, so only an idempotent call goes on
                errors.inc()
                if method.upper() in IDEMPOTENT:
                    continue
                self._count(pool, 502, time.perf_counter() - started)
                return 502, _error(502, "replica-failed", f"the replica failed during the call ({e}); it was not "
                                   "sent again, since it may have run: call again"), JSON
            finally:
                pool.outstanding[replica.name] -= 1
                in_flight.dec()
            metrics.REPLICA_CALLS.labels(label, replica.name).inc()
            metrics.REPLICA_LATENCY.labels(label, replica.name).observe(time.perf_counter() - sent)
            if answer.status >= 500:
                errors.inc()
            self._count(pool, answer.status, time.perf_counter() - started)
            return answer.status, answer.body, answer.content_type
        if again and pool.replicas is not replicas:  # a redo swapped the replicas meanwhile: try the new ones
            return await self._acall(service_id, method, path, body, headers, label, again=False)
        self._count(pool, 503, time.perf_counter() - started)
        return 503, _error(503, "no-replica", "no replica of this service answers; see its status"), JSON

    @staticmethod
    def _count(pool: Pool, status: int, seconds: float) -> None:
        with pool.stats:
            pool.calls += 1
            pool.errors += status >= 500
            pool.latencies.append(seconds)

    def metrics(self, service_id: int) -> dict:
        pool = self.pool(service_id)
        with pool.stats:
            latencies = sorted(pool.latencies)
            fleet = pool.address is not None
            return {"calls": pool.calls, "errors": pool.errors, "in_flight": sum(pool.outstanding.values()),
                    "replicas": pool.fleet_state.wanted if fleet else len(pool.replicas),
                    "healthy": pool.fleet_state.ready if fleet else len(pool.healthy),
                    "p50_ms": _percentile_ms(latencies, 0.5), "p95_ms": _percentile_ms(latencies, 0.95)}

    # -- the monitor ---------------------------------------------------------------------------
    def recover(self) -> int:
        """After a restart: take back the replicas still running, by label; remove the dead ones."""
        found = 0
        with self.sessions() as session:
            services = list(session.scalars(select(Service)))
        for service in services:
            if self.executor.fleet(service.key) is not None:  # the engine kept them: nothing to take back
                continue
            pool = self.pool(service.id)
            for replica in self.executor.find_replicas(service.key):
                replica.started = time.monotonic()
                pool.replicas.append((replica, service.revision))
                found += 1
        return found

    def start(self) -> None:
        threading.Thread(target=self._loop, name="service-monitor", daemon=True).start()
        threading.Thread(target=self._reap_loop, name="online-test-reaper", daemon=True).start()

    def close(self) -> None:
        self._closed.set()

    def _loop(self) -> None:
        while not self._closed.wait(self.interval):
            with self.sessions() as session:
                ids = list(session.scalars(select(Service.id)))
            for service_id in ids:
                try:
                    self.ensure(service_id)
                except Exception:
                    log.exception("the service monitor failed on service %s", service_id)

    def _reap_loop(self) -> None:
        """Online tests are removed on a timer of their own: a slow pass over the services (a replica taking
        its health timeout to start) never keeps an idle test running."""
        while not self._closed.wait(min(self.interval, self.trial_idle / 4)):
            try:
                self._reap_trials()
            except Exception:
                log.exception("removing idle online tests failed")

    def forget(self, service_id: int, key: str | None = None, label: str = "") -> None:
        """Remove every replica of a service being deleted (and its fleet, given its *key*; its gauges, given
        its *label*, ``owner/name``)."""
        pool = self.pools.pop(service_id, Pool())
        with pool.lock:
            for replica, _ in pool.replicas:
                replica.remove()
                if label:
                    metrics.forget_replica(label, replica.name)
        if key is not None and (fleet := self.executor.fleet(key)) is not None:
            fleet.remove()
        if label:  # a deleted service reports nothing more
            for state in ("wanted", "healthy"):
                try:
                    metrics.REPLICAS.remove(label, state)
                except KeyError:
                    pass

    def live_log(self, service_id: int, key: str) -> str:
        """The last lines of each running replica of a service."""
        fleet = self.executor.fleet(key)
        if fleet is not None:
            return fleet.tail(200)
        pool = self.pool(service_id)
        return "".join(f"--- replica {r.name} (running)\n{r.tail(200)}\n" for r, _ in list(pool.replicas))


def _percentile_ms(ordered: list[float], q: float) -> float | None:
    """The nearest-rank percentile of sorted seconds, in ms: a value that was measured, never below a lower q's."""
    return round(ordered[max(0, math.ceil(q * len(ordered)) - 1)] * 1000, 2) if ordered else None


def _error(status: int, code: str, message: str) -> bytes:
    return json.dumps({"error": {"status": status, "code": code, "message": message, "field": None}}).encode()

"""The run queue: slots, a per-user cap, starting runs on the executor, watching them to their end.

One scheduler thread starts queued runs while fewer than ``slots`` run: each free
slot goes to the user with the fewest active runs (under ``per_user``), their
oldest queued run first.  A run that cannot start, for any reason, ends
``failed`` with reason ``platform`` and frees its slot.  Each started run
gets a watcher thread that appends the container's output to the run's log
(:mod:`.logs`) as it arrives, enforces the maximum runtime, and decides the end:

- ``succeeded``: exit 0 and a model (any file but the metrics files) in the model folder, which is
  registered as the next version of a model named after the run (the ``register`` callback);
- ``failed`` with a reason (:class:`workspace_hub.executor.Reason`, decided by the executor): ``oom``, ``max-runtime``,
  ``exit-code``, ``no-model``, or ``platform`` (the engine failed us: the run goes back
  to the queue, up to ``MAX_ATTEMPTS`` starts in all);
- ``stopped``: a user stopped it (``docker stop`` with a grace period).

Containers carry the run's key as a label and are not removed when the library
stops.  After a restart (or ``kill -9``) :meth:`Runs.recover` finds each active
run's container again: a watcher resumes after the log lines already written,
so the log equals ``docker logs`` line for line.
"""

from __future__ import annotations

import logging
import shutil
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from workspace_hub.contract import DATASET_DIR, MODEL_DIR, PRETRAINED_DIR, TEST_DATASET_DIR
from workspace_hub.executor import (BatchSpec, EngineError, Executor, Handle, Mount, Outcome, State, decide,
                                    Reason, output_size)
from workspace_hub.executor.spec import GiB
from workspace_hub.validate import bounded_json

from ..models import Model, Run, RunStatus
from ..access import Who, require_usable
from ..errors import LibraryError
from ..quota import size_text
from .logs import RunFiles

log = logging.getLogger("workspace_library")
MAX_ATTEMPTS = 3
STOP_GRACE = 5


def now() -> datetime:
    return datetime.now(timezone.utc)


class Runs:
    def __init__(self, sessions: sessionmaker, root: Path, data_root: Path, executor: Executor,
                 slots: int = 2, per_user: int = 2, poll: float = 1.0,
                 register: Callable[[Session, Run, Path], Model] | None = None,
                 output_limit: Callable[[str], int] | None = None, guard_interval: float = 2.0):
        self.sessions = sessions
        self.register = register  # (session, run, model folder) -> the registered model, or a LibraryError
        # owner -> the bytes a run of theirs may write (the model cap, or what their quota leaves)
        self.output_limit, self.guard_interval = output_limit, guard_interval
        self.root = root  # <data root>/library/runs
        self.data_root = data_root
        self.executor = executor
        self.slots, self.per_user, self.poll = slots, per_user, poll
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._watching: dict[int, threading.Thread] = {}
        self._lock = threading.Lock()
        self._stopped_by_user: set[int] = set()

    def files(self, run: Run) -> RunFiles:
        return RunFiles(self.root / run.key)

    # -- scheduling ----------------------------------------------------------------------------
    def start(self) -> None:
        threading.Thread(target=self._loop, name="run-scheduler", daemon=True).start()

    def wake(self) -> None:
        self._wake.set()

    def close(self) -> None:
        """Stop scheduling (runs already started keep running; a new service finds them)."""
        self._closed.set()
        self._wake.set()

    def _loop(self) -> None:
        while not self._closed.is_set():
            self._wake.wait(self.poll)
            if self._closed.is_set():
                return
            self._wake.clear()
            try:
                self.schedule()
            except Exception:  # the scheduler must outlive one bad pass
                log.exception("the run scheduler failed a pass")

    def schedule(self) -> list[int]:
        """Start what the slots allow, sharing them fairly; return the ids started.

        Each free slot goes to the user with the fewest active runs among those with queued runs (and
        under the per-user cap), their oldest queued run first: a user who queues many runs never makes
        another wait for all of them.
        """
        started = []
        with self._lock, self.sessions() as session:
            per_owner = dict(session.execute(select(Run.owner, func.count()).where(Run.status.in_(RunStatus.active()))
                                             .group_by(Run.owner)).all())
            running = sum(per_owner.values())
            waiting: dict[str, list[Run]] = {}
            for run in session.scalars(select(Run).where(Run.status == RunStatus.queued)
                                       .order_by(Run.queued_at, Run.id)):
                waiting.setdefault(run.owner, []).append(run)
            while running < self.slots:
                turns = [(per_owner.get(owner, 0), runs[0].queued_at or runs[0].created, runs[0].id, owner)
                         for owner, runs in waiting.items() if runs and per_owner.get(owner, 0) < self.per_user]
                if not turns:
                    break
                owner = min(turns)[-1]
                run = waiting[owner].pop(0)
                # only a run still queued starts: a stop or delete since the query wins
                claimed = session.execute(update(Run).where(Run.id == run.id, Run.status == RunStatus.queued)
                                          .values(status=RunStatus.starting, attempts=Run.attempts + 1, message=""))
                session.commit()
                if claimed.rowcount != 1:
                    continue
                running += 1
                per_owner[owner] = per_owner.get(owner, 0) + 1
                started.append(run.id)
        for run_id in started:
            self._launch(run_id)
        return started

    def spec(self, run: Run) -> BatchSpec:
        """What the executor runs for *run*: the same spec for the Docker and Kubernetes backends."""
        files = self.files(run)
        mounts = [Mount(files.model, MODEL_DIR, read_only=False)]
        targets = {"train": DATASET_DIR, "test": TEST_DATASET_DIR}
        for split, digest in run.dataset_manifests.items():
            mounts.append(Mount(self.data_root / "library" / "trees" / digest, targets[split]))
        environment = {**{k: str(v) for k, v in run.hyperparameters.items()}, "SEED": str(run.seed)}
        if run.parent_manifest:  # transfer training
            mounts.append(Mount(self.data_root / "library" / "trees" / run.parent_manifest, PRETRAINED_DIR))
            environment["PRETRAINED_MODEL"] = PRETRAINED_DIR
        if run.train_ratio is not None:
            environment["TRAIN_RATIO"] = str(run.train_ratio)
        if "test" in run.dataset_manifests:  # an independent test set: the algorithm evaluates on it, no split
            environment["TEST_DATASET_DIR"] = TEST_DATASET_DIR
        resources = run.resources or {}
        return BatchSpec(run.image, "run", environment=environment, mounts=tuple(mounts),
                         memory=int(float(resources.get("mem_gb", 2)) * GiB), cpus=float(resources.get("cpus", 2)),
                         gpus=1 if resources.get("device") == "gpu" else 0, deadline=run.max_runtime, key=run.key)

    def _launch(self, run_id: int) -> None:
        """Start one run; a run that cannot start, for any reason, ends and frees its slot."""
        try:
            with self.sessions() as session:
                run = session.get(Run, run_id)
                # its owner must still be allowed its inputs now: a run queued behind the cap proves nothing
                require_usable(session, Who(run.owner), run.algorithm_id, (run.dataset_id,), run.parent_model_id)
                self.files(run).create()
                spec = self.spec(run)
        except LibraryError as e:
            return self._platform_failure(run_id, f"the run cannot start: {e.message}", retry=False)
        except Exception as e:  # its settings cannot become a container: trying again will not help
            log.exception("run %s could not be prepared", run_id)
            return self._platform_failure(run_id, f"the run could not be prepared: {e}", retry=False)
        try:
            handle = self.executor.start_batch(spec)
        except Exception as e:  # the engine, not the user's image, failed: queue again or give up
            return self._platform_failure(run_id, f"the run could not start: {e}")
        with self.sessions() as session:
            run = session.get(Run, run_id)
            if run is None or run.status != RunStatus.starting:  # stopped (or deleted) while it started
                handle.remove()
                if run is not None:
                    run.status, run.finished, run.message = RunStatus.stopped, now(), "stopped by a user"
                    session.commit()
                return
            run.status, run.started = RunStatus.running, now()
            run.image_digest = handle.image_id
            session.commit()
            started = run.started
        self._watch(run_id, handle, started, skip=0)

    def _platform_failure(self, run_id: int, message: str, retry: bool = True) -> None:
        with self.sessions() as session:
            run = session.get(Run, run_id)
            if run is None:
                return
            if run.status == RunStatus.stopping:
                run.status, run.message, run.finished = RunStatus.stopped, "stopped by a user", now()
            elif retry and run.attempts < MAX_ATTEMPTS:
                run.status, run.message = RunStatus.queued, f"{message}; retrying"
            else:
                self._record(run, decide(None, error=message))
            session.commit()
        self.wake()

    # -- watching ------------------------------------------------------------------------------
    def _watch(self, run_id: int, handle: Handle, started: datetime, skip: int) -> None:
        thread = threading.Thread(target=self._follow, args=(run_id, handle, started, skip),
                                  name=f"run-{run_id}", daemon=True)
        self._watching[run_id] = thread
        thread.start()

    def _follow(self, run_id: int, handle: Handle, started: datetime, skip: int) -> None:
        """Copy the log as it comes, wait for the end within what is left of the run's maximum runtime, and
        record the outcome the executor decides."""
        with self.sessions() as session:
            run = session.get(Run, run_id)
            files, max_runtime, owner = self.files(run), run.max_runtime, run.owner
        elapsed = (now() - started.replace(tzinfo=started.tzinfo or timezone.utc)).total_seconds()
        copier = threading.Thread(target=self._copy_log, args=(handle, files, skip), name=f"run-{run_id}-log",
                                  daemon=True)
        copier.start()
        ended, passed = threading.Event(), {}
        if self.output_limit is not None:
            threading.Thread(target=self._guard, args=(handle, files.model, self.output_limit(owner), ended, passed),
                             name=f"run-{run_id}-guard", daemon=True).start()
        try:
            outcome = handle.wait(timeout=max(1.0, max_runtime - elapsed), model=files.model,
                                  stopped=lambda: self._stopped(run_id), too_large=lambda: passed.get("limit", ""))
            copier.join(30)  # the log ends with the container
            self._finish(run_id, outcome, files)
        except Exception as e:
            log.exception("watching run %s failed", run_id)
            self._platform_failure(run_id, f"the library lost the run's container: {e}")
        finally:
            ended.set()
            handle.remove()
            self._watching.pop(run_id, None)
            self.wake()

    def _guard(self, handle: Handle, folder: Path, limit: int, ended: threading.Event, passed: dict) -> None:
        """Stop the run once what it wrote to its model folder passes *limit* bytes: a run's output is kept on
        the shared data root, so it counts against its owner's quota before it is registered."""
        while not ended.wait(self.guard_interval):
            if output_size(folder, limit) > limit:
                passed["limit"] = size_text(limit)
                handle.stop(STOP_GRACE)
                return

    def _stopped(self, run_id: int) -> bool:
        if run_id in self._stopped_by_user:
            return True
        with self.sessions() as session:
            return session.get(Run, run_id).status == RunStatus.stopping

    def _copy_log(self, handle: Handle, files: RunFiles, skip: int) -> None:
        """Append the container's output to the log, line by line, after the first *skip* lines."""
        seen, pending = 0, b""
        try:
            for chunk in handle.logs(follow=True):
                pending += chunk
                *complete, pending = pending.split(b"\n")
                fresh = complete[max(0, skip - seen):]
                first = seen + len(complete) - len(fresh)
                seen += len(complete)
                if fresh:
                    files.append([line.decode("utf-8", "replace") for line in fresh], first)
        except EngineError as e:
            log.warning("the log of %s stopped: %s", files.folder.name, e)
        if pending and seen >= skip:
            files.append([pending.decode("utf-8", "replace")], seen)

    def _finish(self, run_id: int, outcome: Outcome, files: RunFiles) -> None:
        with self.sessions() as session:
            run = session.get(Run, run_id)
            self._record(run, outcome)
            run.metrics = _final_metrics(files.model / "metrics.json")
            if outcome.reason == Reason.too_large:  # what it wrote past its limit is not kept
                shutil.rmtree(files.model, ignore_errors=True)
            if outcome.state == State.succeeded:
                try:
                    model = self.register(session, run, files.model)
                    run.message = f"registered as model {model.name} {model.version}"
                except LibraryError as e:
                    run.message = f"the model was not registered: {e.message}"
            session.commit()
        self._stopped_by_user.discard(run_id)

    @staticmethod
    def _record(run: Run, outcome: Outcome) -> None:
        run.status, run.reason = RunStatus(outcome.state.value), outcome.reason.value if outcome.reason else ""
        run.message, run.exit_code, run.finished = outcome.message, outcome.exit_code, now()

    # -- control -------------------------------------------------------------------------------
    def stop(self, run_id: int) -> None:
        """Stop an active run (blocking: call off the loop); a queued run is stopped at once."""
        with self.sessions() as session:
            run = session.get(Run, run_id)
            if run.status == RunStatus.queued:
                run.status, run.finished, run.message = RunStatus.stopped, now(), "stopped before it started"
                session.commit()
                return
            run.status = RunStatus.stopping
            session.commit()
            key = run.key
        self._stopped_by_user.add(run_id)
        handle = self.executor.find(key)
        if handle is not None:
            handle.stop(STOP_GRACE)
        thread = self._watching.get(run_id)
        if thread is not None:
            thread.join(STOP_GRACE + 30)
            return
        # nothing watches it (it never got a container, or lost it): the stop ends it here
        if handle is not None:
            handle.remove()
        with self.sessions() as session:
            run = session.get(Run, run_id)
            if run is not None and run.status == RunStatus.stopping:
                run.status, run.finished, run.message = RunStatus.stopped, now(), "stopped by a user"
                session.commit()
        self._stopped_by_user.discard(run_id)
        self.wake()

    def recover(self) -> dict[str, list[int]]:
        """After a restart: watch again the runs whose containers exist; queue again (a platform failure)
        those whose containers are gone."""
        found, lost = [], []
        with self.sessions() as session:
            runs = [(r.id, r.key, r.started)
                    for r in session.scalars(select(Run).where(Run.status.in_(RunStatus.active())))]
        for run_id, key, started in runs:
            handle = self.executor.find(key)
            if handle is None:
                lost.append(run_id)
                self._platform_failure(run_id, "the run's container was gone after a restart of the library")
                continue
            found.append(run_id)
            with self.sessions() as session:
                run = session.get(Run, run_id)
                if run.status == RunStatus.starting:
                    run.status, run.started = RunStatus.running, run.started or now()
                    session.commit()
                started = run.started
                files = self.files(run)
            self._watch(run_id, handle, started, skip=files.lines())
        return {"found": found, "lost": lost}


def _final_metrics(path: Path) -> dict:
    try:
        if path.stat().st_size > 1 << 20:
            return {}
        metrics = bounded_json(path.read_text())
        return metrics if isinstance(metrics, dict) else {}
    except (OSError, ValueError):
        return {}


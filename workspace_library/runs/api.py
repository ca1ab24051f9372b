"""The training runs' REST endpoints (``<prefix>api/runs...``), in ``openapi.yaml`` with the others.

The log streams as server-sent events (``GET .../log?follow=1``): each line is
one event whose id is its line number, so a client that reconnects with
``Last-Event-ID`` (browsers' EventSource does it by itself) resumes after the
last line it got, and ``ws runs logs -f`` does the same with ``?from=``.  An
``end`` event closes the stream when the run has finished and every line is sent.
"""

from __future__ import annotations

import asyncio
import re
import shutil

from tornado.iostream import StreamClosedError

from .. import access, rules
from ..base import BaseHandler, iso_time
from ..errors import LibraryError
from ..models import Model, Run, RunStatus
from . import rules as run_rules

TAIL_POLL = 0.1  # seconds between looks at a growing log


def run_json(run: Run) -> dict:
    return {"id": run.id, "key": run.key, "name": run.name, "description": run.description, "owner": run.owner,
            "status": run.status.value, "reason": run.reason, "message": run.message,
            "algorithm": {"id": run.algorithm_id, "label": run.algorithm_label},
            "dataset": {"id": run.dataset_id, "label": run.dataset_label}, "parent_model": run.parent_model_id,
            "image": run.image, "image_digest": run.image_digest, "dataset_manifests": run.dataset_manifests,
            "hyperparameters": run.hyperparameters, "resources": run.resources, "max_runtime": run.max_runtime,
            "train_ratio": run.train_ratio, "seed": run.seed, "attempts": run.attempts, "exit_code": run.exit_code,
            "metrics": run.metrics,
            "model": f"library/runs/{run.key}/model" if run.status == RunStatus.succeeded else None,
            "created": iso_time(run.created), "queued_at": iso_time(run.queued_at), "started": iso_time(run.started),
            "finished": iso_time(run.finished)}


class RunHandler(BaseHandler):
    def run(self, run_id) -> Run:
        return access.get_visible(self.db, Run, int(run_id), self.who)

    @property
    def runs(self):
        return self.service.runs


class RunListHandler(RunHandler):
    """GET: the caller's runs (every run for admins).  POST: a draft, or a queued run with ``start``."""

    def get(self):
        who = self.who
        where = [access.visible(Run, who)]
        status = self.get_query_argument("status", None)
        if status is not None:
            if status not in RunStatus.__members__:
                raise LibraryError(400, "invalid-query", f"status must be one of {', '.join(RunStatus.__members__)}",
                                   "status")
            where.append(Run.status == RunStatus(status))
        for name, column in (("algorithm", Run.algorithm_id), ("dataset", Run.dataset_id)):
            raw = self.get_query_argument(name, None)
            if raw is not None:
                if not re.fullmatch(r"\d{1,9}", raw):
                    raise LibraryError(400, "invalid-query", f"{name} must be an id", name)
                where.append(column == int(raw))
        result = self.page_of(Run, where, (Run.created.desc(), Run.id.desc()))
        self.send({**result, "items": [run_json(r) for r in result["items"]]})

    def post(self):
        who = self.who
        data = rules.check_input(run_rules.SCHEMAS["run-create"], self.json_body())
        columns = run_rules.resolve(self.db, who, data, self.service.run_limits())
        run = Run(owner=who.name, status=RunStatus.draft, **columns)
        if data.get("start"):
            run_rules.queue(run)
        self.db.add(run)
        self.db.commit()
        self.runs.wake()
        self.send(run_json(run), 201)


class RunItemHandler(RunHandler):
    def get(self, run_id):
        self.send(run_json(self.run(run_id)))

    def patch(self, run_id):
        run = self.run(run_id)
        data = rules.check_input(run_rules.SCHEMAS["run-edit"], self.json_body())
        if run.status != RunStatus.draft:
            raise LibraryError(409, "status", f"run {run.name} is {run.status.value}; only drafts change (rerun "
                               "copies a run into a new draft)")
        merged = {**run_rules.settings(run), **data}
        # the draft's own hyperparameters are recorded as text; new ones come typed
        for key, value in run_rules.resolve(self.db, access.acting_for(run, self.who), merged,
                                            self.service.run_limits(), typed_values="hyperparameters" in data).items():
            setattr(run, key, value)
        self.db.commit()
        self.send(run_json(run))

    async def delete(self, run_id):
        """Delete a run in any state: one that is queued or active is stopped first."""
        run = self.run(run_id)
        if run.status in RunStatus.unfinished():
            run_id = run.id
            self.release_db()
            await self.service.offload(self.runs.stop, run_id)
            run = self.run(run_id)
        folder = self.runs.files(run).folder
        self.db.delete(run)
        self.db.commit()
        await self.service.offload(_remove, folder)
        self.set_status(204)
        self.finish()


def _remove(folder) -> None:
    shutil.rmtree(folder, ignore_errors=True)


class RunActionHandler(RunHandler):
    """POST .../start (a draft), .../stop (an active or queued run), .../rerun (a copy, queued)."""

    SUPPORTED_METHODS = ("POST",)

    async def post(self, run_id, action):
        rules.check_input("empty", self.json_body())
        run = self.run(run_id)
        if action == "start":
            run_rules.queue(run)  # a draft only (nothing is committed if its inputs are refused below)
            for key, value in run_rules.again(self.db, access.acting_for(run, self.who), run,
                                              self.service.run_limits()).items():
                setattr(run, key, value)
            self.db.commit()
            self.runs.wake()
            return self.send(run_json(run))
        if action == "stop":
            if run.status not in RunStatus.unfinished():
                raise LibraryError(409, "status", f"run {run.name} is {run.status.value}; there is nothing to stop")
            run_id = run.id
            self.release_db()
            await self.service.offload(self.runs.stop, run_id)
            return self.send(run_json(self.run(run_id)))
        copy = Run(owner=self.who.name, status=RunStatus.draft,
                   **run_rules.again(self.db, self.who, run, self.service.run_limits()))
        run_rules.queue(copy)
        self.db.add(copy)
        self.db.commit()
        self.runs.wake()
        self.send(run_json(copy), 201)


class RunMetricsHandler(RunHandler):
    """GET: the per-step metric points (``metric:`` lines) and the final ``metrics.json``."""

    async def get(self, run_id):
        run = self.run(run_id)
        files, final = self.runs.files(run), run.metrics
        self.release_db()
        self.send({"points": await self.service.offload(files.points), "final": final})


class RunLogHandler(RunHandler):
    """GET: the log as text; with ``follow=1`` (or ``Accept: text/event-stream``), live as server-sent events."""

    async def get(self, run_id):
        run = self.run(run_id)
        files, run_id = self.runs.files(run), run.id
        follow = self.get_query_argument("follow", "") in ("1", "true") or \
            "text/event-stream" in self.request.headers.get("Accept", "")
        last = self.request.headers.get("Last-Event-ID") or self.get_query_argument("from", "0")
        if not re.fullmatch(r"\d{1,12}", last):
            raise LibraryError(400, "invalid-query", "from (or Last-Event-ID) is a line number", "from")
        self.release_db()
        if not follow:
            self.set_header("Content-Type", "text/plain; charset=utf-8")
            self.set_header("Content-Disposition", f'attachment; filename="run-{run_id}.log"')
            data = await self.service.offload(_read, files.log)
            return self.finish(data)
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")
        number, handle = int(last), None
        pending, quiet = "", 0.0
        try:
            while True:
                if handle is None:  # no log until the run starts
                    handle = await self.service.offload(_open_at, files.log, number)
                chunk = await self.service.offload(handle.read, 1 << 16) if handle else ""
                if chunk:
                    pending += chunk
                    *lines, pending = pending.split("\n")
                    for line in lines:
                        number += 1
                        self.write(f"id: {number}\ndata: {line}\n\n")
                    await self.flush()
                    quiet = 0.0
                    continue
                quiet += TAIL_POLL
                if quiet >= 1.0:  # about once a second: has the run ended (and every line been read)?
                    quiet = 0.0
                    with self.service.sessions() as session:
                        status = session.get(Run, run_id).status
                    if status not in (*RunStatus.unfinished(), RunStatus.draft):
                        self.write(f"event: end\ndata: {status.value}\n\n")
                        await self.flush()
                        break
                    self.write(": keep-alive\n\n")
                    await self.flush()
                await asyncio.sleep(TAIL_POLL)
        except StreamClosedError:
            return
        finally:
            if handle:
                handle.close()
        self.finish()


def _read(path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""


def _open_at(path, line: int):
    """The log opened after its first *line* lines (None if there is no log yet)."""
    try:
        handle = open(path, encoding="utf-8", errors="replace", newline="\n")
    except FileNotFoundError:
        return None
    for _ in range(line):
        if not handle.readline():
            break
    return handle


class TransferHandler(RunHandler):
    """POST {"name"?, "dataset"?}: one click, a queued run of the model's algorithm that starts from this model
    (mounted read-only at PRETRAINED_MODEL), with the settings of the run that trained it."""

    SUPPORTED_METHODS = ("POST",)

    def post(self, model_id):
        model = access.get_visible(self.db, Model, int(model_id), self.who)
        source = self.db.get(Run, model.run_id) if model.run_id else None
        if source is None:
            raise LibraryError(409, "no-run", f"{model.name} {model.version} has no training run to start from")
        body = rules.check_input(run_rules.SCHEMAS["model-transfer"], self.json_body())
        data = {"name": body.get("name") or f"{model.name}-transfer", "algorithm": source.algorithm_id,
                "dataset": body.get("dataset") or source.dataset_id, "hyperparameters": source.hyperparameters,
                "resources": source.resources, "max_runtime": source.max_runtime, "parent_model": model.id,
                **({"train_ratio": source.train_ratio} if source.train_ratio is not None else {})}
        columns = run_rules.resolve(self.db, self.who, data, self.service.run_limits(), typed_values=False)
        run = Run(owner=self.who.name, status=RunStatus.draft, **columns)
        self.db.add(run)
        run_rules.queue(run)
        self.db.commit()
        self.service.runs.wake()
        self.send(run_json(run), 201)


RUN = r"(?P<run_id>\d{1,9})"
ROUTES = [
    ("api/runs", RunListHandler),
    (f"api/runs/{RUN}", RunItemHandler),
    (f"api/runs/{RUN}/(?P<action>start|stop|rerun)", RunActionHandler),
    (f"api/runs/{RUN}/metrics", RunMetricsHandler),
    (f"api/runs/{RUN}/log", RunLogHandler),
    (r"api/models/(?P<model_id>\d{1,9})/transfer", TransferHandler),
]
OPENAPI_SCHEMAS = {"RunCreate": run_rules.SCHEMAS["run-create"], "RunEdit": run_rules.SCHEMAS["run-edit"]}

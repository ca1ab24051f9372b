"""Validations of algorithm versions and base envs (stored tars checked, smoke-run, loaded by digest), and pulls.

Validations run in a small thread pool, one item at a time per thread, and
write their progress to the item's row as they go, so pages and ``ws publish``
see each step.  An item is ``validating`` only while a validation owns it: when
the service starts, :meth:`Validations.recover` resumes every ``validating``
item whose tars are stored, and marks the others failed.

The checks are :func:`workspace_hub.validate.check_tar` and
:func:`workspace_hub.smoke.smoke_test`, used as libraries; the executor
(:mod:`workspace_hub.executor`) does the engine calls.

Engine names belong to the library, never to an upload: an image is loaded
from the members the check hashed, with no tag of its own, and then tagged
``algorithms/<key>/<name>:<version>-<role>`` (or ``envs/<key>/<name>:<version>``),
where ``key`` is the item's never-reused key.  Pulls are refused for the
platform's own namespaces and for any name the engine already holds, and the
pulled name is removed once the image is stored.
"""

from __future__ import annotations

import logging
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from workspace_hub.contract import LABEL_ALGORITHM
from workspace_hub.executor import BatchSpec, EngineError, Executor, State
from workspace_hub.smoke import smoke_test
from workspace_hub.validate import Problem, bounded_json, check_tar

from . import rules
from ..items import platform_tag
from ..models import SYSTEM_OWNER, Algorithm, BaseEnv, Image, ImageStatus, Status
from ..store import TarStore

log = logging.getLogger("workspace_library")
def _problem(image: Image, problem: dict) -> dict:
    return {**problem, "image": image.role}


class Validations:
    """Validates algorithm versions and base envs: the checks, the smoke run, the load by digest."""

    def __init__(self, sessions: sessionmaker, store: TarStore, executor: Executor, registry: str = "",
                 workers: int = 2):
        self.sessions = sessions
        self.store = store
        self.registry = registry.rstrip("/")
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="library-job")
        self.executor = executor

    def submit(self, model, item_id: int, online: bool = False):
        """Validate the item in the pool; with *online*, one that passes goes online (the platform's presets)."""
        return self.pool.submit(self._run_logged, model, item_id, online)

    def recover(self) -> list[int]:
        """After a restart: resume items left ``validating`` (their tars are stored) or fail them.  The
        platform's presets resume to go online, as their first validation would have."""
        resumed = []
        with self.sessions() as session:
            for model in (Algorithm, BaseEnv):
                for item in session.scalars(select(model).where(model.status == Status.validating)):
                    missing = [i.filename for i in item.images if not self.store.path(i.sha256).is_file()]
                    if missing or not item.images:
                        item.status = Status.failed
                        item.errors = [{"code": "lost", "message": "the service stopped while this was "
                                        f"validating and {', '.join(missing) or 'its images'} are gone; "
                                        "upload again", "path": None, "image": None}]
                        item.progress = ""
                    else:
                        item.progress = "resumed after a service restart"
                        # what the platform seeds goes online once it passes, as on the first try
                        resumed.append((model, item.id, item.owner == SYSTEM_OWNER))
            session.commit()
        for model, item_id, online in resumed:
            self.submit(model, item_id, online)
        return [item_id for _, item_id, _ in resumed]

    def _run_logged(self, model, item_id: int, online: bool = False) -> None:
        try:
            self.validate(model, item_id, online)
        except Exception as e:  # a job must end in a final state whatever happens
            log.exception("validation of %s %s crashed", model.__name__, item_id)
            with self.sessions() as session:
                item = session.get(model, item_id)
                if item is not None:
                    item.status = Status.failed
                    item.progress = ""
                    item.errors = [{"code": "internal", "message": f"validation stopped: {e}", "path": None,
                                    "image": None}]
                    session.commit()

    def validate(self, model, item_id: int, online: bool = False) -> None:
        with self.sessions() as session:
            item = session.get(model, item_id)
            if item is None:
                return
            errors, warnings = [], []
            for image in sorted(item.images, key=lambda i: i.role != "train"):  # train first: predict uses its model
                if image.status == ImageStatus.valid:
                    continue
                image.status = ImageStatus.validating
                self._progress(session, item, f"checking {image.filename}")
                problems, report = self._check(session, item, image)
                warnings += [_problem(image, w) for w in report.get("warnings", [])]
                image.report = {**report, "errors": [p.__dict__ for p in problems]}
                if problems:
                    image.status = ImageStatus.invalid
                    errors += [_problem(image, p.__dict__) for p in problems]
                else:
                    image.status = ImageStatus.valid
            item.errors = errors
            item.progress = f"{len(warnings)} warnings" if warnings and not errors else ""
            item.status = Status.failed if errors else Status.online if online else Status.ready
            item.was_online = item.was_online or item.status == Status.online
            if isinstance(item, BaseEnv) and not errors:
                item.image = item.images[-1].tag
            session.commit()

    def model_dir(self, algorithm: Algorithm) -> Path:
        """The model the smoke training wrote; the predict smoke run and the online test serve it."""
        return self.store.root / "models" / algorithm.key

    def forget(self, item) -> None:
        """What a deleted item leaves in the engine and the store: its tags and its model folder."""
        for image in item.images:
            if image.tag and not self.registry:
                self.executor.remove_tag(image.tag)
        if isinstance(item, Algorithm):
            shutil.rmtree(self.model_dir(item), ignore_errors=True)

    def _progress(self, session, item, text: str) -> None:
        item.progress = text
        session.commit()

    def _check(self, session, item, image: Image) -> tuple[list[Problem], dict]:
        path = self.store.path(image.sha256)
        report = check_tar(path, filename=image.filename, base_env=image.role == "env")
        if not report.valid:
            return report.errors, report.as_dict()
        if isinstance(item, Algorithm):
            problem = self._prefill(item, image, report.image.get("labels") or {})
            if problem:
                return [problem], report.as_dict()
        tag = platform_tag(item, image.role)
        if item.smoke:  # the smoke run loads the image; one that passes stays loaded under its platform tag
            self._progress(session, item, f"smoke run of {image.filename}")
            if image.role == "env":
                problems = self._env_smoke(path, report, tag)
            else:
                model = self.model_dir(item)
                if image.role == "train":  # a new smoke training replaces what an earlier one wrote
                    shutil.rmtree(model, ignore_errors=True)
                model.mkdir(parents=True, exist_ok=True)
                problems = smoke_test(path, report, keep_as=tag, executor=self.executor,
                                      **({"model_out": model} if image.role == "train" else {"model": str(model)}))
            if problems:
                return problems, report.as_dict()
        self._progress(session, item, f"{'tagging' if item.smoke else 'loading'} {image.filename} in the engine")
        try:
            image.tag = self._load(path, report, tag, loaded=item.smoke)
        except Exception as e:
            return [Problem("engine-load", f"the engine refused the image: {e}")], report.as_dict()
        return [], report.as_dict()

    def _prefill(self, item: Algorithm, image: Image, labels: dict) -> Problem | None:
        """Fill what the record leaves open from the image's ``ai.platform.algorithm`` label."""
        try:
            doc = bounded_json(labels.get(LABEL_ALGORITHM) or "{}")
        except ValueError:
            return Problem("label-invalid", f"label {LABEL_ALGORITHM} is not JSON; rebuild with `ws build`")
        if not doc:
            return None
        if not isinstance(doc, dict):
            return Problem("label-invalid", f"label {LABEL_ALGORITHM} must be a JSON object; rebuild with `ws build`")
        if doc.get("name") not in (None, item.name):
            return Problem("label-name", f"the image was built for algorithm {doc['name']!r}, not "
                           f"{item.name!r}; publish it under its own name or rebuild it")
        if doc.get("kind") not in (None, image.role):
            return Problem("label-kind", f"the image is a {doc['kind']} image but was sent as {image.role}")
        fields = rules.fields_from_algorithm_yaml({**doc, "kind": image.role})
        if not item.description:
            item.description = fields.get("description", "")
        if not item.framework:
            item.framework = fields.get("framework", "")
        if item.purpose_first == "other" and "purpose" in fields:
            item.purpose_first, item.purpose_second = fields["purpose"]["first"], fields["purpose"]["second"]
        if image.role == "train" and "transfer_training" in fields:
            item.transfer_training = fields["transfer_training"]
        part = getattr(item, image.role) or {}
        setattr(item, image.role, {**fields[image.role], **part})
        return None

    def _env_smoke(self, path: Path, report, keep_as: str) -> list[Problem]:
        """A base env must start a single-user server: run ``jupyterhub-singleuser --version`` sandboxed.

        One that passes stays loaded as *keep_as*."""
        image_id = self.executor.load(path, report)
        try:
            run = self.executor.start_batch(BatchSpec(image_id, "smoke", ("jupyterhub-singleuser", "--version"),
                                                      deadline=300))
            try:
                outcome = run.wait()
                failure = "" if outcome.state == State.succeeded else outcome.message
            finally:
                run.remove()
        except EngineError as e:
            failure = str(e)
        if failure:
            self.executor.discard(image_id)
            return [Problem("smoke-env", f"`jupyterhub-singleuser --version` failed in the image ({failure}); "
                            "base envs need JupyterHub's single-user server")]
        self.executor.tag(image_id, keep_as)
        return []

    def _load(self, path: Path, report, tag: str, loaded: bool = False) -> str:
        """Load the checked tar by digest (unless the smoke run *loaded* it) as *tag*; push when a registry is set."""
        if not loaded:
            self.executor.tag(self.executor.load(path, report), tag)
        return self.executor.push(tag, self.registry) if self.registry else tag

    def name_taken(self, reference: str) -> bool:
        """Whether the engine already holds *reference* (a pull would move that name)."""
        return self.executor.has_image(reference)

    def pull(self, reference: str, limit: int) -> tuple[str, int]:
        """Pull *reference* into the engine and store it as a tar; return (sha256, size).

        The pull creates the tag *reference* in the engine; it is removed as soon
        as the image is stored, since the library loads what it checked, by digest."""
        chunks = self.executor.pull(reference)
        incoming = self.store.receive(limit)
        try:
            for chunk in chunks:
                incoming.write(chunk)
            return incoming.commit()
        except BaseException:
            incoming.discard()
            raise
        finally:
            chunks.close()  # the name the pull created goes with the stream

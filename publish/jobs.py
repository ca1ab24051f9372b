"""Background work of the service: validate stored tars, load them into the engine, pull images.

Jobs run in a small thread pool, one item at a time per thread, and write
their progress to the item's row as they go, so pages and ``ws publish`` see
each step.  An item is ``validating`` only while a job owns it: when the
service starts, :meth:`Jobs.recover` resumes every ``validating`` item whose
tars are stored, and marks the others failed.

The checks are :func:`workspace_hub.validate.check_tar` and
:func:`workspace_hub.smoke.smoke_test`, used as libraries; docker-py does the
engine calls.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from ..smoke import SANDBOX, smoke_test
from ..validate import Problem, check_tar
from . import library
from .models import Algorithm, BaseEnv, Image, ImageStatus, Status
from .store import TarStore

log = logging.getLogger("workspace_hub.publish")
LABEL_ALGORITHM = "ai.platform.algorithm"


def platform_tag(item, role: str) -> str:
    """``algorithms/<owner>/<name>:<version>-<role>`` or ``envs/<owner>/<name>:<version>``."""
    owner = "".join(c if c.isalnum() or c in "._-" else "-" for c in item.owner.lower()).strip("._-") or "user"
    if isinstance(item, Algorithm):
        return f"algorithms/{owner}/{item.name}:{item.version}-{role}"
    return f"envs/{owner}/{item.name}:{item.version}"


def _problem(image: Image, problem: dict) -> dict:
    return {**problem, "image": image.role}


class Jobs:
    """Runs validation jobs and owns the engine connection."""

    def __init__(self, sessions: sessionmaker, store: TarStore, registry: str = "", workers: int = 2):
        self.sessions = sessions
        self.store = store
        self.registry = registry.rstrip("/")
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="publish-job")
        self._engine = None

    @property
    def engine(self):
        if self._engine is None:
            import docker

            self._engine = docker.from_env(timeout=600)
        return self._engine

    def submit(self, model, item_id: int):
        return self.pool.submit(self._run_logged, model, item_id)

    def recover(self) -> list[int]:
        """After a restart: resume items left ``validating`` (their tars are stored) or fail them."""
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
                        resumed.append((model, item.id))
            session.commit()
        for model, item_id in resumed:
            self.submit(model, item_id)
        return [item_id for _, item_id in resumed]

    def _run_logged(self, model, item_id: int) -> None:
        try:
            self.validate(model, item_id)
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

    def validate(self, model, item_id: int) -> None:
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
            item.status = Status.failed if errors else Status.ready
            if isinstance(item, BaseEnv) and not errors:
                item.image = item.images[-1].tag
            session.commit()

    def model_dir(self, algorithm_id: int) -> Path:
        """The model the smoke training wrote; the predict smoke run and the online test serve it."""
        return self.store.root / "models" / str(algorithm_id)

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
                problems = self._env_smoke(path, tag)
            else:
                model = self.model_dir(item.id)
                model.mkdir(parents=True, exist_ok=True)
                problems = smoke_test(path, report, keep_as=tag,
                                      **({"model_out": model} if image.role == "train" else {"model": str(model)}))
            if problems:
                return problems, report.as_dict()
        self._progress(session, item, f"{'tagging' if item.smoke else 'loading'} {image.filename} in the engine")
        try:
            image.tag = self._load(path, tag, loaded=item.smoke)
        except Exception as e:
            return [Problem("engine-load", f"the engine refused the image: {e}")], report.as_dict()
        return [], report.as_dict()

    def _prefill(self, item: Algorithm, image: Image, labels: dict) -> Problem | None:
        """Fill what the record leaves open from the image's ``ai.platform.algorithm`` label."""
        try:
            doc = json.loads(labels.get(LABEL_ALGORITHM) or "{}")
        except ValueError:
            return Problem("label-invalid", f"label {LABEL_ALGORITHM} is not JSON; rebuild with `ws build`")
        if not doc:
            return None
        if doc.get("name") not in (None, item.name):
            return Problem("label-name", f"the image was built for algorithm {doc['name']!r}, not "
                           f"{item.name!r}; publish it under its own name or rebuild it")
        if doc.get("kind") not in (None, image.role):
            return Problem("label-kind", f"the image is a {doc['kind']} image but was sent as {image.role}")
        fields = library.fields_from_algorithm_yaml({**doc, "kind": image.role})
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

    def _env_smoke(self, path: Path, keep_as: str) -> list[Problem]:
        """A base env must start a single-user server: run ``jupyterhub-singleuser --version`` sandboxed.

        One that passes stays loaded as *keep_as*."""
        with open(path, "rb") as f:
            [image] = self.engine.images.load(f)
        try:
            self.engine.containers.run(image.id, ["jupyterhub-singleuser", "--version"], network_mode="none",
                                       remove=True, **SANDBOX)
        except Exception as e:
            return [Problem("smoke-env", f"`jupyterhub-singleuser --version` failed in the image: {e}; "
                            "base envs need JupyterHub's single-user server")]
        image.tag(*keep_as.rsplit(":", 1))
        return []

    def _load(self, path: Path, tag: str, loaded: bool = False) -> str:
        """Load the tar under *tag* (unless the smoke run *loaded* it); push it when a registry is set."""
        if loaded:
            image = self.engine.images.get(tag)
        else:
            with open(path, "rb") as f:
                image = self.engine.images.load(f)[0]
        repository, _, version = tag.rpartition(":")
        image.tag(repository, version)
        if self.registry:
            remote = f"{self.registry}/{repository}"
            image.tag(remote, version)
            for line in self.engine.images.push(remote, version, stream=True, decode=True):
                if "error" in line:
                    raise RuntimeError(f"push to {self.registry} failed: {line['error']}")
            return f"{remote}:{version}"
        return tag

    def pull(self, reference: str, limit: int) -> tuple[str, int]:
        """Pull *reference* into the engine and store it as a tar; return (sha256, size)."""
        image = self.engine.images.pull(reference)
        incoming = self.store.receive(limit)
        try:
            for chunk in image.save(named=True):
                incoming.write(chunk)
            return incoming.commit()
        except BaseException:
            incoming.discard()
            raise


class Serving:
    """Predict containers for the online test: one per algorithm, started on first use."""

    def __init__(self, jobs: Jobs, health_timeout: float = 120):
        self.jobs = jobs
        self.health_timeout = health_timeout
        self.running: dict[int, tuple[object, int]] = {}
        self.lock = threading.Lock()  # one container per algorithm, however many tests arrive at once

    def call(self, algorithm: Algorithm, params: dict) -> tuple[int, object]:
        """Send *params* to the algorithm's interface; return (status, JSON body or text)."""
        with self.lock:
            port = self._ensure(algorithm)
        interface = algorithm.predict["interface"]
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/{interface['name']}", data=json.dumps(params).encode(),
            method=interface.get("method", "POST"), headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as r:
                status, body = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, body = e.code, e.read()
        try:
            return status, json.loads(body)
        except ValueError:
            return status, body.decode("utf-8", "replace")[:2000]

    def _ensure(self, algorithm: Algorithm) -> int:
        if algorithm.id in self.running:
            container, port = self.running[algorithm.id]
            container.reload()
            if container.status == "running":
                return port
            self.stop(algorithm.id)
        tag = next(i.tag for i in algorithm.images if i.role == "predict")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        model = self.jobs.model_dir(algorithm.id)
        model.mkdir(parents=True, exist_ok=True)
        container = self.jobs.engine.containers.run(
            tag, detach=True, network_mode="host", environment={"PORT": str(port), "HOST": "127.0.0.1"},
            volumes={str(model): {"bind": "/project/model", "mode": "ro"}},
            name=f"publish-serve-{algorithm.id}-{port}", labels={"ai.workspace-hub.serving": str(algorithm.id)},
            **SANDBOX)
        self.running[algorithm.id] = (container, port)
        deadline = time.monotonic() + self.health_timeout
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                    return port
            except OSError:
                container.reload()
                if container.status == "exited" or time.monotonic() > deadline:
                    logs = container.logs(tail=10).decode("utf-8", "replace")
                    self.stop(algorithm.id)
                    raise library.LibraryError(502, "service-down", f"the predict image did not answer "
                                               f"/health: {logs.strip()[-500:]}")
                time.sleep(0.2)

    def stop(self, algorithm_id: int) -> None:
        container, _ = self.running.pop(algorithm_id, (None, None))
        if container is not None:
            try:
                container.remove(force=True)
            except Exception:
                log.warning("could not remove serving container of algorithm %s", algorithm_id)

    def stop_all(self) -> None:
        for algorithm_id in list(self.running):
            self.stop(algorithm_id)

"""``ws validate --smoke``: run a statically valid image once, sandboxed.

Both kinds run on the executor (:mod:`workspace_hub.executor`): no network,
read-only root, tmpfs ``/tmp``, memory, CPU and pids limits, no capabilities.

- train: the dataset read-only at ``/project/dataset`` (by default the template
  sample matching the image's purpose), an empty ``/project/model``,
  ``EPOCHS=1``.  It must exit 0 and leave a file in ``/project/model``.
- predict: ``PORT``/``HOST`` set, the model read-only at ``/project/model``;
  ``GET /health`` must answer 200, then the interface declared in the
  ``ai.platform.interface`` label must answer its test values with 200 JSON.
  The container has no network; the probe reaches it inside its namespace.

The engine loads the image from the members the check hashed
(:func:`workspace_hub.validate.validated_archive`), so an upload names no tag.
The image (unless kept), container and temp folders are removed afterwards, on
failure and on Ctrl-C too.  A model the train run wrote is copied out without
following links, regular files and folders only, within a size and file cap.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from pathlib import Path

from .contract import (DATASET_DIR, LABEL_ALGORITHM, LABEL_INTERFACE, LABEL_PORT, MAX_MODEL_BYTES, MAX_MODEL_FILES,
                       MODEL_DIR)
from .executor import (AnswerTooLarge, BatchSpec, EngineError, EngineUnavailable, Executor, Mount, ProbeFailed,
                       Reason, ReplicaSpec, State)
from .validate import Problem, Report, bounded_json

# how a smoke training's end reads in a validation report (the reasons are the executor's)
TRAIN_PROBLEMS = {Reason.max_runtime: "smoke-timeout", Reason.exit_code: "smoke-exit", Reason.oom: "smoke-exit",
                  Reason.no_model: "smoke-no-model", Reason.platform: "smoke-engine"}


def copy_model(source: Path, target: Path, max_files: int = MAX_MODEL_FILES,
               max_bytes: int = MAX_MODEL_BYTES) -> tuple[list[Problem], list[Problem]]:
    """Copy the model folder a container wrote; return (problems, warnings).

    Links, fifos and devices are skipped (never followed or opened), so a model
    cannot name a host file; the total size and file count are capped.
    """
    problems, warnings, files, size = [], [], 0, 0
    pending = [(source, target)]
    while pending and not problems:
        folder, out = pending.pop()
        out.mkdir(parents=True, exist_ok=True)
        with os.scandir(folder) as entries:
            for entry in entries:
                relative = os.path.relpath(entry.path, source)
                if entry.is_dir(follow_symlinks=False):
                    pending.append((Path(entry.path), out / entry.name))
                    continue
                if not entry.is_file(follow_symlinks=False):
                    warnings.append(Problem("model-skipped", f"{relative} is a link or a special file; only "
                                            f"regular files and folders are kept from {MODEL_DIR}", relative))
                    continue
                files += 1
                if files > max_files:
                    problems.append(Problem("model-too-many-files", f"the model has more than {max_files} files; "
                                            "save fewer, larger files"))
                    break
                fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
                with open(fd, "rb") as src:
                    if not stat.S_ISREG(os.fstat(src.fileno()).st_mode):
                        continue
                    with open(out / entry.name, "wb") as dst:
                        while chunk := src.read(1024 * 1024):
                            size += len(chunk)
                            if size > max_bytes:
                                problems.append(Problem("model-too-large", f"the model passes {max_bytes} "
                                                        "bytes; save a smaller model"))
                                break
                            dst.write(chunk)
                if problems:
                    break
    if problems:
        shutil.rmtree(target, ignore_errors=True)
    return problems, warnings


def smoke_test(path, report: Report, dataset: str | None = None, model: str | None = None,
               train_timeout: float = 600, health_timeout: float = 120,
               model_out: str | Path | None = None, keep_as: str | None = None,
               executor: Executor | None = None) -> list[Problem]:
    """Run the image at *path* (already checked statically); return the problems found.

    A train run that passes copies what it wrote to *model_out*, if given, so
    that the predict image can be tried with a real model.  An image that
    passes is tagged *keep_as* (``repo:tag``), if given, so that the caller
    need not load it again; that is the only tag the run ever creates.
    """
    try:
        if executor is None:
            from .executor.docker import DockerExecutor

            executor = DockerExecutor()
        existed = executor.has_image(report.image["config_digest"])
    except EngineUnavailable as e:
        return [Problem("smoke-engine", f"--smoke needs a Docker engine ({e}); start dockerd or drop --smoke")]
    except EngineError as e:
        return [Problem("smoke-engine", f"the engine refused the smoke run: {e}")]
    work = Path(tempfile.mkdtemp(prefix="ws-smoke-"))
    image_id = run = replica = None
    kept = False
    try:
        image_id = executor.load(path, report)
        if report.kind == "train":
            run, problems = _train(executor, image_id, work, dataset, train_timeout, report.image["labels"])
            if model_out and not problems:
                problems, warnings = copy_model(work / "model", Path(model_out))
                report.warnings.extend(warnings)
        else:
            replica, problems = _predict(executor, image_id, report, work, model, health_timeout)
        if keep_as and not problems:
            executor.tag(image_id, keep_as)
            kept = True
        return problems
    except EngineError as e:
        return [Problem("smoke-engine", f"the engine refused the smoke run: {e}")]
    finally:
        if run is not None:
            run.remove()
        if replica is not None:
            replica.remove()
        if image_id is not None and not kept and not existed:
            executor.discard(image_id)
        shutil.rmtree(work, ignore_errors=True)


SAMPLE_DATA = {"json": "data-shapes", "brat_ann": "data-ner"}  # by dataset format; `dir` goes by purpose


def sample_dataset(labels: dict) -> Path | None:
    """The templates' sample data in the image's dataset format (boxes, entities, or for folders of examples
    the purpose's: text or image), if the templates are here."""
    from .scaffold import ScaffoldError, templates_dir

    try:
        doc = bounded_json(labels.get(LABEL_ALGORITHM, "{}"))
        purpose = doc.get("purpose", {}).get("first")
        variants = templates_dir() / "project" / "{{cookiecutter.project_slug}}" / "_variants"
    except (ScaffoldError, ValueError, AttributeError):
        return None
    folder = SAMPLE_DATA.get(doc.get("dataset_format")) or {"text": "data-text", "image": "data-digits"}.get(purpose)
    return variants / folder if folder else None


def _train(executor: Executor, image_id: str, work: Path, dataset: str | None, timeout: float, labels: dict):
    model = work / "model"
    model.mkdir()
    model.chmod(0o777)  # the image's user, whatever its uid, must write here
    if dataset is None:
        dataset = sample_dataset(labels) or work / "dataset"
        Path(dataset).mkdir(exist_ok=True)
    run = executor.start_batch(BatchSpec(image_id, "smoke", environment={"EPOCHS": "1"}, deadline=timeout,
                                         mounts=(Mount(Path(dataset), DATASET_DIR), Mount(model, MODEL_DIR, False))))
    outcome = run.wait(model=model)
    if outcome.state == State.succeeded:
        return run, []
    explained = {
        Reason.max_runtime: f"training did not finish within {timeout:.0f} s with EPOCHS=1; make one epoch on the "
                            "sample data fast",
        Reason.no_model: f"training exited 0 but wrote nothing to {MODEL_DIR}; save the model there",
        Reason.platform: outcome.message,
    }.get(outcome.reason) or (f"training exited with status {outcome.exit_code} (network is off in the "
                              f"sandbox). Last output:\n{run.tail()}")
    return run, [Problem(TRAIN_PROBLEMS[outcome.reason], explained)]


def _predict(executor: Executor, image_id: str, report: Report, work: Path, model: str | None, timeout: float):
    model_dir = Path(model) if model else work / "model"
    model_dir.mkdir(exist_ok=True)
    try:
        replica = executor.start_replica(ReplicaSpec(image_id, "smoke", model_dir))
    except ProbeFailed as e:
        return None, [Problem("smoke-exit", str(e))]
    try:
        replica.wait_healthy(timeout)
    except ProbeFailed as e:
        if e.code == "exit":
            return replica, [Problem("smoke-exit", str(e))]
        return replica, [Problem("smoke-health", f"{e}; serve on $PORT (declared "
                                 f"{report.image['labels'].get(LABEL_PORT)})")]
    interface = report.image["labels"].get(LABEL_INTERFACE)
    if not interface:
        report.warnings.append(Problem("smoke-no-interface", f"no {LABEL_INTERFACE} label; only /health was tested"))
        return replica, []
    try:
        spec = bounded_json(interface)
        body = json.dumps({p["name"]: p.get("test_value") for p in spec.get("params", [])}).encode()
        answer = replica.request(spec.get("method", "POST"), f"/{spec['name']}", body,
                                 {"Content-Type": "application/json"})
        if answer.status != 200:
            return replica, [Problem("smoke-interface", f"{spec['name']} answered {answer.status} to its test "
                                     "values")]
        json.loads(answer.body)
    except (ValueError, KeyError, TypeError, AttributeError, OSError, AnswerTooLarge) as e:
        return replica, [Problem("smoke-interface", f"the interface test failed: {e}")]
    return replica, []

"""``ws validate --smoke``: run a statically valid image once, sandboxed.

- train: ``--network none``, read-only root, tmpfs ``/tmp``, memory and pids
  limits, no capabilities; the dataset read-only at ``/project/dataset`` (by
  default the template sample matching the image's purpose), an empty
  ``/project/model``, ``EPOCHS=1``.  It must exit 0 and leave a file in
  ``/project/model``.
- predict: host networking on a free loopback port (``PORT``/``HOST`` set),
  the model read-only at ``/project/model``; ``GET /health`` must answer 200,
  then the interface declared in the ``ai.platform.interface`` label must
  answer its test values with 200 JSON.

The image, container and temp folders are removed afterwards, on failure and
on Ctrl-C too.  docker-py does the engine calls.
"""

from __future__ import annotations

import json
import shutil
import socket
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from .validate import LABEL_PORT, Problem, Report

LABEL_INTERFACE = "ai.platform.interface"
SANDBOX = dict(
    read_only=True,
    tmpfs={"/tmp": "rw,size=256m"},
    mem_limit="2g",
    pids_limit=256,
    cap_drop=["ALL"],
    security_opt=["no-new-privileges"],
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(container, lines: int = 15) -> str:
    try:
        return container.logs(tail=lines).decode("utf-8", "replace").strip()
    except Exception:
        return ""


def smoke_test(path, report: Report, dataset: str | None = None, model: str | None = None,
               train_timeout: float = 600, health_timeout: float = 120,
               model_out: str | Path | None = None, keep_as: str | None = None) -> list[Problem]:
    """Run the image at *path* (already checked statically); return the problems found.

    A train run that passes copies what it wrote to *model_out*, if given, so
    that the predict image can be tried with a real model.  An image that
    passes is kept in the engine as *keep_as* (``repo:tag``), if given, so that
    the caller need not load it again.
    """
    import docker

    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as e:
        return [Problem("smoke-engine", f"--smoke needs a Docker engine ({e}); start dockerd or drop --smoke")]
    before = {image.id for image in client.images.list()}
    work = Path(tempfile.mkdtemp(prefix="ws-smoke-"))
    image = container = None
    try:
        with open(path, "rb") as f:
            [image] = client.images.load(f)
        image.tag(f"ws-smoke/{uuid.uuid4().hex[:12]}", "latest")
        if report.kind == "train":
            container, problems = _train(client, image, work, dataset, train_timeout, report.image["labels"])
            if model_out and not problems:
                shutil.copytree(work / "model", model_out, dirs_exist_ok=True)
        else:
            container, problems = _predict(client, image, report, work, model, health_timeout)
        if keep_as and not problems:
            image.tag(*keep_as.rsplit(":", 1))
            before.add(image.id)
        return problems
    except docker.errors.DockerException as e:
        return [Problem("smoke-engine", f"the engine refused the smoke run: {e}")]
    finally:
        if container is not None:
            container.remove(force=True)
        if image is not None:
            for tag in image.tags:
                if tag.startswith("ws-smoke/"):
                    client.images.remove(tag)
            if image.id not in before:
                client.images.remove(image.id, force=True)
        shutil.rmtree(work, ignore_errors=True)


def sample_dataset(labels: dict) -> Path | None:
    """The templates' sample data for the image's purpose (text or image), if the templates are here."""
    from .projectgen import ProjectError, templates_dir

    try:
        purpose = json.loads(labels.get("ai.platform.algorithm", "{}")).get("purpose", {}).get("first")
        variants = templates_dir() / "project" / "{{cookiecutter.project_slug}}" / "_variants"
    except (ProjectError, ValueError, AttributeError):
        return None
    folder = {"text": "data-text", "image": "data-digits"}.get(purpose)
    return variants / folder if folder else None


def _train(client, image, work: Path, dataset: str | None, timeout: float, labels: dict):
    model = work / "model"
    model.mkdir()
    model.chmod(0o777)  # the image's user, whatever its uid, must write here
    if dataset is None:
        dataset = sample_dataset(labels) or work / "dataset"
        Path(dataset).mkdir(exist_ok=True)
    container = client.containers.run(
        image.id, detach=True, network_mode="none", environment={"EPOCHS": "1"},
        volumes={str(Path(dataset).resolve()): {"bind": "/project/dataset", "mode": "ro"},
                 str(model): {"bind": "/project/model", "mode": "rw"}},
        **SANDBOX,
    )
    try:
        status = container.wait(timeout=timeout)["StatusCode"]
    except Exception:
        return container, [Problem("smoke-timeout", f"training did not finish within {timeout:.0f} s with "
                                   "EPOCHS=1; make one epoch on the sample data fast")]
    if status != 0:
        return container, [Problem("smoke-exit", f"training exited with status {status} (network is off in "
                                   f"the sandbox). Last output:\n{_tail(container)}")]
    if not any(model.iterdir()):
        return container, [Problem("smoke-no-model", "training exited 0 but wrote nothing to /project/model; "
                                   "save the model there")]
    return container, []


def _predict(client, image, report: Report, work: Path, model: str | None, timeout: float):
    port = _free_port()
    model_dir = Path(model) if model else work / "model"
    model_dir.mkdir(exist_ok=True)
    container = client.containers.run(
        image.id, detach=True, network_mode="host",
        environment={"PORT": str(port), "HOST": "127.0.0.1"},
        volumes={str(model_dir.resolve()): {"bind": "/project/model", "mode": "ro"}},
        **SANDBOX,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=2) as r:
                if r.status == 200:
                    break
        except (OSError, urllib.error.URLError):
            pass
        container.reload()
        if container.status == "exited":
            return container, [Problem("smoke-exit", f"the service exited before answering /health. "
                                       f"Last output:\n{_tail(container)}")]
        if time.monotonic() > deadline:
            return container, [Problem("smoke-health", f"GET /health did not answer 200 within {timeout:.0f} s; "
                                       f"serve on $PORT (declared {report.image['labels'].get(LABEL_PORT)})")]
        time.sleep(0.2)
    interface = report.image["labels"].get(LABEL_INTERFACE)
    if not interface:
        report.warnings.append(Problem("smoke-no-interface", f"no {LABEL_INTERFACE} label; only /health was tested"))
        return container, []
    try:
        spec = json.loads(interface)
        body = json.dumps({p["name"]: p.get("test_value") for p in spec.get("params", [])}).encode()
        request = urllib.request.Request(f"{base}/{spec['name']}", data=body, method=spec.get("method", "POST"),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as r:
            json.loads(r.read())
    except urllib.error.HTTPError as e:
        return container, [Problem("smoke-interface", f"{spec['name']} answered {e.code} to its test values")]
    except (ValueError, KeyError, TypeError, OSError) as e:
        return container, [Problem("smoke-interface", f"the interface test failed: {e}")]
    return container, []

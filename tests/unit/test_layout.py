"""The layout's promises that a reader relies on, checked."""

import re
import subprocess
import sys
from pathlib import Path


def test_loading_the_rules_loads_no_engine_client():
    """Rules are plain decisions: importing them (as `ws`, the pages or a Kubernetes backend do) needs no Docker."""
    code = ("import sys, workspace_library.runs.rules, workspace_library.services.rules, "
            "workspace_library.registry.rules, workspace_library.access, workspace_library.quota; "
            "print(sorted(m for m in sys.modules if m == 'docker' or m.startswith('docker.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


HUB = Path(__file__).resolve().parents[2] / "workspace_hub"
LIBRARY = HUB.parent / "workspace_library"
# the Docker backends: the executor's, the Docker spawner's (DockerSpawner itself is docker-py), and env builds
DOCKER_BACKENDS = {HUB / "executor" / "docker.py", HUB / "spawner.py", HUB / "envbuild.py"}


def test_only_the_docker_backends_import_docker():
    importing = re.compile(r"^\s*(import docker|from docker[. ])", re.MULTILINE)
    offenders = [str(path.relative_to(HUB.parent)) for root in (HUB, LIBRARY) for path in sorted(root.rglob("*.py"))
                 if path not in DOCKER_BACKENDS and importing.search(path.read_text())]
    assert offenders == []


def test_one_function_decides_how_a_run_ended():
    """Exit codes, OOM and deadlines become reasons in workspace_hub/executor/outcome.py alone; the backends
    only read their engine's facts (docker's OOMKilled, a pod's terminated state) and hand them to it."""
    deciding = re.compile(r"OOMKilled|StatusCode|\"(exit-code|max-runtime|no-model)\"")
    offenders = [f"{path.relative_to(HUB.parent)}:{number}" for root in (HUB, LIBRARY)
                 for path in sorted(root.rglob("*.py")) if path.name not in ("outcome.py", "docker.py", "kubernetes.py")
                 for number, line in enumerate(path.read_text().splitlines(), 1) if deciding.search(line)]
    assert offenders == []

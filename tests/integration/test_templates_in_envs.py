"""Baked projects run their own tests inside their real env image, with no network.

Every sample and every generated (prefix + interface + framework) project:
training writes a model and metrics.json; the api answers /health and its test value.
"""

import os
import subprocess

import pytest

from workspace_hub.scaffold import SAMPLES, new_algorithm_folder, new_sample

pytestmark = pytest.mark.docker

ENV_OF = {"sklearn": "python", "pytorch": "pytorch", "keras": "keras"}
PROJECTS = [("sample", name, kind) for name in SAMPLES for kind in ("train", "api")] + [
    ("generated", framework, kind) for framework in ENV_OF for kind in ("train", "api")]


def run_project_tests(engine, project, env):
    image = f"workspace-hub/{env}:latest"
    try:
        engine.images.get(image)
    except Exception:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"{image} is not built")
    subprocess.run(["chown", "-R", "1000:1000", str(project)], check=True)
    return subprocess.run(
        ["docker", "run", "--rm", "--network", "none", "-v", f"{project}:/project/code/p", "-w", "/project/code/p",
         "-e", "PYTHONDONTWRITEBYTECODE=1", image, "python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("origin, what, kind", PROJECTS, ids=lambda v: str(v))
def test_the_project_passes_its_own_tests_in_its_env(engine, tmp_path, origin, what, kind):
    if origin == "sample":
        train, api = new_sample(what, output_dir=tmp_path)
        project, env = (train if kind == "train" else api), SAMPLES[what].env
    else:
        project = new_algorithm_folder(kind, f"gen-{what}", "predict", what, output_dir=tmp_path)
        env = ENV_OF[what]
    r = run_project_tests(engine, project, env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert " passed" in r.stdout

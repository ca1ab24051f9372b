"""Every example notebook runs with papermill inside its own env image, sandboxed, on the real engine.

The notebooks are mounted read-only where a workspace would have them; each
env gets its own /project, so the serving notebook finds the PyTorch model the
training notebook saved.  Executed copies go to tests/artifacts/notebooks/.
"""

import shutil

import pytest

from workspace_hub.catalog import REPO_ROOT
from workspace_hub.notebook import read_notebook

from .conftest import ARTIFACTS

pytestmark = pytest.mark.docker

EXAMPLES = sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="module")
def projects(tmp_path_factory):
    """One /project per env: model/ writable by the workspace user, help_doc read-only."""
    made = {}

    def project(env: str):
        if env not in made:
            root = tmp_path_factory.mktemp(f"project-{env}")
            (root / "model").mkdir(mode=0o777)
            (root / "model").chmod(0o777)
            shutil.copytree(REPO_ROOT / "help_doc", root / "help_doc")
            made[env] = root
        return made[env]

    return project


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_the_example_runs_in_its_env(engine, projects, path):
    env = read_notebook(path).metadata["kernelspec"]["name"]
    project = projects(env)
    container = engine.containers.run(
        f"workspace-hub/{env}:latest",
        ["papermill", f"/project/code/notebooks/{path.name}", f"/project/model/{path.stem}.out.ipynb",
         "--cwd", "/project/code/notebooks", "-k", env],
        detach=True, network_mode="none", mem_limit="4g",
        volumes={str(REPO_ROOT / "notebooks"): {"bind": "/project/code/notebooks", "mode": "ro"},
                 str(project / "model"): {"bind": "/project/model", "mode": "rw"},
                 str(project / "help_doc"): {"bind": "/project/help_doc", "mode": "ro"}})
    try:
        status = container.wait(timeout=900)["StatusCode"]
        logs = container.logs().decode("utf-8", "replace")
    finally:
        container.remove(force=True)
    (ARTIFACTS / "notebooks").mkdir(parents=True, exist_ok=True)
    shutil.copy(project / "model" / f"{path.stem}.out.ipynb", ARTIFACTS / "notebooks" / f"{path.stem}.out.ipynb")
    assert status == 0, logs[-3000:]
    executed = read_notebook(project / "model" / f"{path.stem}.out.ipynb")
    errors = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert errors == []
    if path.stem.startswith(("02", "03")):
        assert (project / "model" / "metrics.json").is_file()
    if path.stem.startswith("04"):
        assert any("the service says" in o.get("text", "") for c in executed.cells for o in c.get("outputs", []))

"""papermill's overhead: the training notebook through the runner, against the same code as a script.

Both run in the same image (``workspace-hub/pytorch``), in fresh sandboxed
containers, with ``EPOCHS=5``.  The script is the notebook's code cells
concatenated (the parameters cell first, as papermill would inject them).

    .venv/bin/python benchmarks/notebooks.py [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import docker

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from workspace_hub.catalog import REPO_ROOT  # noqa: E402
from workspace_hub.notebook import read_notebook  # noqa: E402

NOTEBOOK = REPO_ROOT / "notebooks" / "02-train-digits-pytorch.ipynb"
IMAGE = "workspace-hub/pytorch:latest"


def run(engine, command: list[str], code: Path, model: Path) -> float:
    started = time.perf_counter()
    container = engine.containers.run(
        IMAGE, command, detach=True, network_mode="none", read_only=True, tmpfs={"/tmp": ""},
        environment={"EPOCHS": "5"}, working_dir="/project/code/nb",
        volumes={str(code): {"bind": "/project/code/nb", "mode": "ro"}, str(model): {"bind": "/project/model"}})
    status = container.wait()["StatusCode"]
    elapsed = time.perf_counter() - started
    logs = container.logs().decode()[-2000:]
    container.remove()
    assert status == 0, logs
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    engine = docker.from_env()
    with tempfile.TemporaryDirectory() as tmp:
        code, model = Path(tmp) / "code", Path(tmp) / "model"
        code.mkdir()
        model.mkdir(mode=0o777)
        model.chmod(0o777)
        (code / NOTEBOOK.name).write_bytes(NOTEBOOK.read_bytes())
        cells = [c.source for c in read_notebook(NOTEBOOK).cells if c.cell_type == "code"]
        script = "\n\n".join(cells[:-1]).replace("epochs: int = 30", "epochs: int = 5")  # not the publish cell
        (code / "train.py").write_text(script)
        commands = {"python train.py (plain script)": ["python", "train.py"],
                    "nbrun train (papermill)": ["python", "-m", "workspace_hub.nbrun", "train", NOTEBOOK.name]}
        times = {name: [run(engine, command, code, model) for _ in range(runs)] for name, command in commands.items()}
    medians = {name: statistics.median(samples) for name, samples in times.items()}
    print("| run | median | min | max |\n| --- | --- | --- | --- |")
    for name, samples in times.items():
        print(f"| {name} | {medians[name]:.2f} s | {min(samples):.2f} s | {max(samples):.2f} s |")
    script, notebook = medians.values()
    print(f"\npapermill adds {notebook - script:.2f} s (ratio {notebook / script:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`ws build` against `docker build` + `docker save`, same project and base, in one run.

The project is the text-classify-bayes train sample; the base is the python
env.  `ws build` runs as it does for users: `docker exec` into a running
workspace-like container (uid 1000, no Docker, the base export mounted
read-only), as a JupyterLab terminal would run it.  The Dockerfile is the equivalent: FROM the env image,
install requirements.txt, copy the project, set Cmd, Env, WorkingDir, User and
labels.  Both produce a docker-archive tar of the whole image.

    .venv/bin/python benchmarks/build.py [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness.envs import base_image_export  # noqa: E402
from workspace_hub.scaffold import new_sample  # noqa: E402

IMAGE = "workspace-hub/python:latest"
DOCKERFILE = """FROM {image}
USER 0
COPY requirements.txt /tmp/requirements.txt
RUN pip install --no-cache-dir -r /tmp/requirements.txt && rm /tmp/requirements.txt
COPY . /project/code/{name}
WORKDIR /project/code/{name}
ENV EPOCHS=5 BATCH_SIZE=16
LABEL ai.platform.kind=train ai.platform.device=cpu ai.platform.framework=sklearn
USER 1000:1000
CMD ["python", "src/train.py"]
"""


def timed(*command, **kwargs) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, **kwargs)
    return time.perf_counter() - started


def start_workspace(root: Path) -> str:
    return subprocess.run(
        ["docker", "run", "-d", "--rm", "--network", "host", "-u", "1000:1000",
         "-v", f"{root}:/project", "-v", f"{root / 'home'}:/home/jovyan",
         "-v", f"{base_image_export('python').resolve()}:/opt/workspace-hub/base-image:ro", IMAGE, "sleep",
         "infinity"],
        check=True, capture_output=True, text=True).stdout.strip()


def ws_build(workspace: str, project: Path) -> float:
    return timed("docker", "exec", "-w", f"/project/code/{project.name}", workspace, "ws", "build", ".")


def docker_build_and_save(project: Path, out: Path, no_cache: bool) -> float:
    return timed("sh", "-c", f"docker build -q {'--no-cache' if no_cache else ''} -t ws-bench/build:1 . "
                             f"&& docker save -o {out} ws-bench/build:1", cwd=project)


def touch_one_file(project: Path, i: int) -> None:
    with open(project / "src" / "train.py", "a") as f:
        f.write(f"# change {i}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    results = {key: [] for key in ("ws full", "ws rebuild", "docker full", "docker rebuild")}
    with tempfile.TemporaryDirectory(prefix="ws-bench-build-") as tmp:
        root = Path(tmp)
        for sub in ("code", "docker_image", "home"):
            (root / sub).mkdir()
        project, _ = new_sample("text-classify-bayes", output_dir=root / "code")
        (project / "Dockerfile").write_text(DOCKERFILE.format(image=IMAGE, name=project.name))
        (project / ".dockerignore").write_text("data\nDockerfile\n")
        subprocess.run(["chown", "-R", "1000:1000", str(root)], check=True)
        workspace = start_workspace(root)
        try:
            for i in range(args.runs):
                shutil.rmtree(root / "home" / ".cache", ignore_errors=True)  # a full build: no cached deps layer
                results["ws full"].append(ws_build(workspace, project))
                results["docker full"].append(docker_build_and_save(project, root / "docker.tar", no_cache=True))
                touch_one_file(project, i)
                results["ws rebuild"].append(ws_build(workspace, project))
                results["docker rebuild"].append(docker_build_and_save(project, root / "docker.tar", no_cache=False))
        finally:
            subprocess.run(["docker", "rm", "-f", workspace], capture_output=True)
        size = next((root / "docker_image").glob("*.tar")).stat().st_size
        subprocess.run(["docker", "rmi", "-f", "ws-bench/build:1"], capture_output=True)
    median = {key: statistics.median(values) for key, values in results.items()}
    print(f"Image: {size / 1e9:.2f} GB; medians of {args.runs} runs.\n")
    print("| build | ws build | docker build + docker save | ratio |")
    print("| --- | --- | --- | --- |")
    for what in ("full", "rebuild"):
        ws, docker = median[f"ws {what}"], median[f"docker {what}"]
        label = "full build" if what == "full" else "rebuild after one changed file"
        print(f"| {label} | {ws:.2f} s | {docker:.2f} s | {ws / docker:.2f} |")


if __name__ == "__main__":
    os.environ.setdefault("DOCKER_BUILDKIT", "0")
    main()

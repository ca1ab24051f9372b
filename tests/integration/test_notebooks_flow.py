"""Notebooks from a real workspace to the library: train, publish, run the images, serve.

nia copies the examples from /project/help_doc/notebooks, runs the PyTorch
training notebook with `publish = True` (it trains, `ws build --notebook`s
itself and `ws publish`es), and builds the serving notebook as a predict
image.  The images then run on the host engine as the platform runs them.
"""

import base64
import json
import re
import subprocess
import urllib.error
import urllib.request

import pytest

from harness.library import Client
from harness.waiting import free_port
from workspace_hub.catalog import REPO_ROOT
from workspace_hub.notebook import read_notebook

from .test_workspace_flow import load, wait_for

pytestmark = pytest.mark.docker

USER, PROJECT = "nia", "nb-demo"
DIGIT_3 = sorted((REPO_ROOT / "templates/project/{{cookiecutter.project_slug}}/_variants/data-digits/3").iterdir())[0]


def sh(container, script: str, expect: int = 0) -> str:
    code, out = container.exec_run(["bash", "-lc", script], user="1000")
    assert code == expect, out.decode()[-4000:]
    return out.decode()


@pytest.fixture(scope="module")
def workspace(hub, container_of):
    hub.api("POST", f"/users/{USER}")
    hub.start_project(USER, PROJECT, env="pytorch")
    container = container_of(USER, PROJECT)
    sh(container, "cp -r /project/help_doc/notebooks /project/code/nb")
    return container


@pytest.fixture(scope="module")
def images(hub):
    return hub.data_root / "users" / USER / PROJECT / "docker_image"


@pytest.fixture(scope="module")
def published(workspace, hub):
    sh(workspace, "cd /project/code/nb && papermill 02-train-digits-pytorch.ipynb /project/model/02.out.ipynb "
                  "-p publish True -k pytorch")
    library = Client(f"{hub.url}/services/library/", hub.user_token(USER))
    [item] = library("GET", "algorithms?name=02-train-digits-pytorch").json()["items"]
    return library("GET", f"algorithms/{item['id']}").json()


def test_the_pytorch_notebook_trains_publishes_itself_and_reaches_ready(published):
    assert published["status"] == "ready", published["errors"]
    assert published["purpose"] == {"first": "image", "second": "classification"}
    assert published["train"]["command"] == ["python", "-m", "workspace_hub.nbrun", "train",
                                             "02-train-digits-pytorch.ipynb"]
    assert published["train"]["env_vars"]["EPOCHS"] == {"type": "Integer", "default": 30,
                                                         "description": "passes over the training data"}


def test_the_notebook_image_trains_with_epochs_from_the_environment(published, images, tmp_path):
    image = load(images / "train-02-train-digits-pytorch-cpu.tar")
    model = tmp_path / "model"
    model.mkdir(mode=0o777)
    model.chmod(0o777)
    r = subprocess.run(["docker", "run", "--rm", "--network", "none", "--read-only", "--tmpfs", "/tmp",
                        "-e", "EPOCHS=2", "-v", f"{model}:/project/model", image],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    executed = read_notebook(model / "02-train-digits-pytorch.executed.ipynb")
    injected = next(c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", []))
    assert "epochs = 2" in injected.source
    assert (model / "model.pt").is_file() and json.loads((model / "metrics.json").read_text())["epochs"] == 2


@pytest.fixture(scope="module")
def predict_tar(published, workspace, images):
    out = sh(workspace, "cd /project/code/nb && ws build --notebook 04-serve-digits.ipynb --kind predict")
    assert "trial run of 04-serve-digits.ipynb" in out
    return images / "predict-04-serve-digits-cpu.tar"


@pytest.mark.parametrize("kind", ["train", "predict"])
def test_notebook_images_pass_the_smoke_run(hub, published, predict_tar, images, kind):
    tar = predict_tar if kind == "predict" else images / "train-02-train-digits-pytorch-cpu.tar"
    model = hub.data_root / "users" / USER / PROJECT / "model"
    r = subprocess.run([str(REPO_ROOT / ".venv/bin/ws"), "validate", "--smoke", "--model", str(model), str(tar)],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:]


def post(port: int, body: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/classify", data=body,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_the_serving_notebook_answers_its_interface_and_survives_errors(hub, predict_tar):
    image = load(predict_tar)
    port = free_port()
    model = hub.data_root / "users" / USER / PROJECT / "model"
    container = subprocess.run(["docker", "run", "-d", "--rm", "--network", "host", "--read-only", "--tmpfs", "/tmp",
                                "-e", f"PORT={port}", "-e", "HOST=127.0.0.1", "-v", f"{model}:/project/model:ro",
                                image], check=True, capture_output=True, text=True).stdout.strip()
    try:
        wait_for(f"http://127.0.0.1:{port}/health", timeout=120)
        good = json.dumps({"image": base64.b64encode(DIGIT_3.read_bytes()).decode()}).encode()
        status, answer = post(port, good)
        assert status == 200 and set(answer) == {"label", "probability"}
        assert answer["label"] == "3"
        assert post(port, b'{"img": "x"}')[0] == 400
        # binascii.Error is a ValueError: the function's own way of saying the input is bad
        status, answer = post(port, b'{"image": "not base64!"}')
        assert status == 400 and answer["error"]
        # a PNG that is not one fails inside the model code: a 500 for that request, with its traceback logged
        status, answer = post(port, json.dumps({"image": base64.b64encode(b"not a png").decode()}).encode())
        assert status == 500 and re.match(r"(PIL\.)?UnidentifiedImageError", answer["error"]), answer
        assert post(port, good)[0] == 200
        logs = subprocess.run(["docker", "logs", container], capture_output=True, text=True).stderr
        assert "Traceback" in logs
    finally:
        subprocess.run(["docker", "rm", "-f", container], capture_output=True)

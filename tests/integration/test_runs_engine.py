"""Training runs on the real engine: the queue, every way a run ends, stop, and a kill -9 of the library.

Tiny train images (python on the bootstrapped Debian, a few lines each) are
published through the library's API like any tar, by an admin with the smoke
run off, brought online, and trained on the preset ``news-texts`` dataset.
"""

import io
import os
import signal
import zipfile
from datetime import datetime

import pytest
import requests

from harness.library import Client
from harness.waiting import wait_until

pytestmark = pytest.mark.docker

FINAL = ("succeeded", "failed", "stopped")
TRAIN = """
import os, time
if os.environ.get("PRETRAINED_MODEL"):
    print("starting from", open(os.path.join(os.environ["PRETRAINED_MODEL"], "model.txt")).read(), flush=True)
for epoch in range(1, int(os.environ["EPOCHS"]) + 1):
    print(f"epoch {epoch}", flush=True)
    print(f"metric: epoch={epoch} loss={1 / epoch:.4f}", flush=True)
    time.sleep(float(os.environ["SLEEP"]))
assert sorted(os.listdir("/project/dataset")) == ["finance", "sports", "tech"]
open("/project/model/model.txt", "w").write("w")
open("/project/model/metrics.json", "w").write('{"accuracy": 0.9}')
"""
SCRIPTS = {
    "ok": TRAIN,
    "exits": "import sys; print('bad data', flush=True); sys.exit(3)",
    "no-model": "print('trained, but saved nothing', flush=True)",
    "hog": "import time; chunks = []\nwhile True:\n    chunks.append(bytearray(64 << 20)); time.sleep(0.01)",
    "links": "import os; open('/project/model/model.txt', 'w').write('w')\n"
             "os.symlink('/etc/shadow', '/project/model/shadow'); os.symlink('/proc/self/environ', '/project/model/env')",
}
ENV_VARS = {"EPOCHS": {"type": "Integer", "default": 3, "range": [1, 1000]},
            "SLEEP": {"type": "Float", "default": 0.1, "range": [0, 60]}}


@pytest.fixture(scope="module")
def admin(hub):
    return Client(f"{hub.url}/services/library/", hub.user_token("admin"))


@pytest.fixture(scope="module")
def algorithms(admin, image_tar):
    """name -> id of an online algorithm whose train image runs SCRIPTS[name]."""
    ids = {}
    for name, script in SCRIPTS.items():
        r = admin("POST", "algorithms", json={"name": f"tiny-{name}", "version": "1.0", "smoke": False,
                                              "transfer_training": True,
                                              "train": {"command": ["python3", "/app/main.py"], "env_vars": ENV_VARS}})
        assert r.status_code == 201, r.text
        item = r.json()["id"]
        tar = image_tar("train", f"tiny-{name}", script)
        with open(tar, "rb") as f:
            assert admin("POST", f"algorithms/{item}/images", files={"train": (os.path.basename(tar), f)}).status_code == 202
        done = wait_until(lambda: (a := admin("GET", f"algorithms/{item}").json())["status"] != "validating" and a,
                          timeout=300, what="validation")
        assert done["status"] == "ready", done["errors"]
        assert admin("POST", f"algorithms/{item}/online").json()["status"] == "online"
        ids[name] = item
    return ids


@pytest.fixture(scope="module")
def news(hub):
    return hub.dataset("news-texts")["id"]


def start(admin, algorithm: int, dataset: int, name: str, **fields) -> dict:
    r = admin("POST", "runs", json={"name": name, "algorithm": algorithm, "dataset": dataset, "start": True, **fields})
    assert r.status_code == 201, r.text
    return r.json()


def final(admin, run_id: int, timeout: float = 300) -> dict:
    return wait_until(lambda: (r := admin("GET", f"runs/{run_id}").json())["status"] in FINAL and r,
                      timeout=timeout, interval=0.2, what=f"run {run_id} to end")


def test_a_run_succeeds_with_its_log_metrics_and_model(admin, algorithms, news, hub):
    run = start(admin, algorithms["ok"], news, "ok", hyperparameters={"EPOCHS": 3}, train_ratio=0.9, seed=7)
    done = final(admin, run["id"])
    assert (done["status"], done["reason"], done["metrics"]) == ("succeeded", "", {"accuracy": 0.9})
    assert done["image_digest"].startswith("sha256:") and done["dataset_manifests"]["train"]
    log = admin("GET", f"runs/{run['id']}/log").text.splitlines()
    assert log == ["epoch 1", "metric: epoch=1 loss=1.0000", "epoch 2", "metric: epoch=2 loss=0.5000",
                   "epoch 3", "metric: epoch=3 loss=0.3333"]
    points = admin("GET", f"runs/{run['id']}/metrics").json()["points"]
    assert [(p["epoch"], p["loss"]) for p in points] == [(1, 1.0), (2, 0.5), (3, 0.3333)]
    assert (hub.data_root / done["model"] / "model.txt").read_text() == "w"
    [model] = admin("GET", "models", params={"name": "ok"}).json()["items"]
    assert done["message"] == f"registered as model ok {model['version']}"
    assert (model["files"], model["metrics"], model["lineage"]["run"]["id"]) == (2, {"accuracy": 0.9}, run["id"])

    transfer = admin("POST", f"models/{model['id']}/transfer", json={"name": "ok-again"}).json()
    again = final(admin, transfer["id"])
    assert again["status"] == "succeeded" and again["parent_model"] == model["id"]
    assert admin("GET", f"runs/{transfer['id']}/log").text.splitlines()[0] == "starting from w"
    [child] = admin("GET", "models", params={"name": "ok-again"}).json()["items"]
    assert admin("GET", f"models/{child['id']}").json()["lineage"]["parent"] == model["id"]


def test_links_a_run_writes_into_its_model_never_reach_the_registry(admin, algorithms, news):
    done = final(admin, start(admin, algorithms["links"], news, "links")["id"])
    assert done["status"] == "succeeded", done["message"]
    [model] = admin("GET", "models", params={"name": "links"}).json()["items"]
    assert model["files"] == 1
    with zipfile.ZipFile(io.BytesIO(admin("GET", f"models/{model['id']}/download").content)) as z:
        assert z.namelist() == ["model.txt"]


@pytest.mark.parametrize("name, fields, reason", [
    ("exits", {}, "exit-code"),
    ("no-model", {}, "no-model"),
    ("hog", {"resources": {"mem_gb": 0.25}}, "oom"),
    ("ok", {"hyperparameters": {"EPOCHS": 1000, "SLEEP": 1}, "max_runtime": 10}, "max-runtime"),
])
def test_a_failed_run_says_why(admin, algorithms, news, name, fields, reason):
    done = final(admin, start(admin, algorithms[name], news, f"fails-{reason}", **fields)["id"])
    assert (done["status"], done["reason"]) == ("failed", reason), done["message"]
    assert done["message"]


def test_stop_a_long_run(admin, algorithms, news):
    run = start(admin, algorithms["ok"], news, "long", hyperparameters={"EPOCHS": 1000, "SLEEP": 0.5})
    wait_until(lambda: "epoch 2" in admin("GET", f"runs/{run['id']}/log").text, what="the run to train")
    stopped = admin("POST", f"runs/{run['id']}/stop").json()
    assert stopped["status"] == "stopped" and stopped["reason"] == ""


def test_20_runs_on_2_slots_never_run_more_than_2_at_once(admin, algorithms, news):
    ids = [start(admin, algorithms["ok"], news, f"queued-{i}", hyperparameters={"EPOCHS": 2, "SLEEP": 0.3})["id"]
           for i in range(20)]
    runs = [final(admin, i, timeout=900) for i in ids]
    assert [r["status"] for r in runs] == ["succeeded"] * 20
    spans = [(datetime.fromisoformat(r["started"]), datetime.fromisoformat(r["finished"])) for r in runs]
    most = max(sum(1 for s, f in spans if s <= moment < f) for moment, _ in spans)
    assert most <= 2


def test_kill_9_mid_run_the_run_finishes_and_its_log_equals_docker_logs(admin, algorithms, news, hub, engine):
    epochs = 60
    run = start(admin, algorithms["ok"], news, "survivor", hyperparameters={"EPOCHS": epochs, "SLEEP": 0.5})
    wait_until(lambda: "epoch 3" in admin("GET", f"runs/{run['id']}/log").text, what="the run to train")
    container = next(c for c in engine.containers.list() if c.labels.get("ai.workspace-hub.key") == run["key"])
    pid = hub.service_pid()
    os.kill(pid, signal.SIGKILL)
    seen = container.logs().decode().splitlines()  # docker's own log, while the library is down
    wait_until(lambda: (new := hub.service_pid()) and new != pid, timeout=120, what="the hub to restart the library")
    me = f"{hub.url}/services/library/api/me"
    wait_until(lambda: requests.get(me, timeout=5).status_code == 401, timeout=120, what="the library to answer")
    done = final(admin, run["id"])
    assert done["status"] == "succeeded", done["message"]
    log = admin("GET", f"runs/{run['id']}/log").text.splitlines()
    assert log[:len(seen)] == seen and len(seen) < len(log)
    # the whole of what the container printed, once each: its script prints exactly these lines
    assert log == [line for e in range(1, epochs + 1) for line in (f"epoch {e}", f"metric: epoch={e} loss={1 / e:.4f}")]



"""The project's own tests: train on the shipped data{% if cookiecutter.kind == "api" %}, then the api answers its test value{% endif %}."""

import json
import sys
from pathlib import Path
{% if cookiecutter.kind == "train" %}
import os
import subprocess
{%- else %}
import yaml
{%- endif %}

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))


{% if cookiecutter.kind == "train" %}def train_into(model_dir: Path, epochs: int = 1, **variables: str) -> None:
    """Train on the shipped sample exactly as the platform would: a fresh process, env vars."""
    env = dict(os.environ, MODEL_DIR=str(model_dir), DATASET_DIR=str(ROOT / "data"), EPOCHS=str(epochs),
               **variables)
    subprocess.run([sys.executable, "src/train.py"], cwd=ROOT, env=env, check=True)


def test_training_writes_a_model_and_metrics(tmp_path):
    train_into(tmp_path)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["EPOCHS"] == 1 and 0 <= metrics["{{ 'map_50' if cookiecutter.task == 'detect' else 'accuracy' }}"] <= 1
    assert len(list(tmp_path.iterdir())) >= 2


def test_an_independent_test_set_is_evaluated_and_nothing_is_split(tmp_path):
    """A run on a dataset with its own test set names it in TEST_DATASET_DIR: all of the dataset trains."""
    split, whole = tmp_path / "split", tmp_path / "whole"
    train_into(split)
    train_into(whole, TEST_DATASET_DIR=str(ROOT / "data"))
    split, whole = (json.loads((folder / "metrics.json").read_text()) for folder in (split, whole))
    assert whole["train_examples"] == whole["test_examples"] == split["train_examples"] + split["test_examples"]


def test_a_bad_hyperparameter_is_refused(tmp_path):
    env = dict(os.environ, MODEL_DIR=str(tmp_path), EPOCHS="many")
    r = subprocess.run([sys.executable, "src/train.py"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert r.returncode != 0 and "EPOCHS='many' is not a valid int" in r.stderr
{% else %}

def test_the_api_answers_its_test_value(tmp_path, monkeypatch):
    import threading
    import time
    import urllib.error
    import urllib.request

    import contract
    import model

    # the api project ships the same model code: train one on the sample first
    monkeypatch.setenv("EPOCHS", "3")
    settings = {name: contract.setting(name) for name in contract.DEFAULTS}
    model.save(model.fit(model.load_examples(ROOT / "data", settings), settings), tmp_path)
    monkeypatch.setenv("MODEL_DIR", str(tmp_path))
    import api

    server = api.serve("127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        for _ in range(600):  # the model loads in the background: /health is 503 until then
            try:
                if urllib.request.urlopen(f"{base}/health").status == 200:
                    break
            except urllib.error.HTTPError as e:
                assert e.code == 503
            time.sleep(0.05)
        else:
            raise AssertionError("the model never loaded")
        interface = yaml.safe_load((ROOT / "algorithm.yaml").read_text(encoding="utf-8"))["interface"]
        body = json.dumps({p["name"]: p["test_value"] for p in interface["params"]}).encode()
        request = urllib.request.Request(f"{base}/{interface['name']}", data=body,
                                         headers={"Content-Type": "application/json"})
        answer = json.loads(urllib.request.urlopen(request).read())
{%- if cookiecutter.task == "detect" %}
        assert all(o["label"] in ("circle", "square") and o["score"] >= 0.3 for o in answer["objects"])
        lowest = urllib.request.Request(f"{base}/{interface['name']}", headers={"Content-Type": "application/json"},
                                        data=json.dumps({**json.loads(body), "min_score": 0}).encode())
        every = json.loads(urllib.request.urlopen(lowest).read())["objects"]  # each peak, up to MAX_OBJECTS
        assert len(every) == model.MAX_OBJECTS and all(len(o["box"]) == 4 and 0 <= o["score"] <= 1 for o in every)
{%- elif cookiecutter.task == "ner" %}
        assert all(text[e["start"]:e["end"]] == e["text"] for e in answer["entities"]
                   for text in [interface["params"][0]["test_value"]])
{%- else %}
        assert answer["label"] and 0 <= answer["probability"] <= 1
{%- endif %}
        bad = urllib.request.Request(f"{base}/{interface['name']}", data=b"{}",
                                     headers={"Content-Type": "application/json"})
        try:
            urllib.request.urlopen(bad)
            raise AssertionError("a request without params must be refused")
        except urllib.error.HTTPError as e:
            assert e.code == 400 and "required" in json.loads(e.read())["error"]
    finally:
        server.shutdown()
{% endif %}

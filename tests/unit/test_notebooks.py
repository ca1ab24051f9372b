"""Notebooks as algorithms, on the host's own kernel: checks, parameters, the runner and the server.

The same runner inside the real env images is in tests/integration/test_notebooks_in_envs.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request

import nbformat
import pytest
import yaml
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from harness.waiting import free_port, status_of, wait_until
from workspace_hub.catalog import REPO_ROOT
from workspace_hub.cli import main as ws
from workspace_hub.notebook import NotebookError, prepare, read_notebook, read_parameters, trial_run

PARAMETERS = 'epochs: int = 3  # passes over the data\nlearning_rate = 0.01\nlabel = "digits"\nshuffle = True\n'
TRAIN = ("import json, os, pathlib\n"
         "model = pathlib.Path(os.environ.get('MODEL_DIR', '/project/model'))\n"
         "(model / 'model.json').write_text(json.dumps({'epochs': epochs, 'lr': learning_rate}))\n")


def notebook(path, *cells, kernel="python3", language="python"):
    nb = new_notebook(cells=list(cells))
    nb.metadata["kernelspec"] = {"name": kernel, "display_name": kernel, "language": language}
    nbformat.write(nb, path)
    return path


def params_cell(source=PARAMETERS):
    return new_code_cell(source, metadata={"tags": ["parameters"]})


@pytest.fixture
def train_nb(tmp_path):
    return notebook(tmp_path / "train.ipynb", new_markdown_cell("# Train"), params_cell(), new_code_cell(TRAIN))


def test_parameters_are_typed_from_annotations_and_defaults_with_help_from_comments(train_nb):
    found = {p.name: (p.type, p.default, p.help) for p in read_parameters(train_nb)}
    assert found == {"epochs": ("Integer", 3, "passes over the data"), "learning_rate": ("Float", 0.01, ""),
                     "label": ("String", "digits", ""), "shuffle": ("Boolean", True, "")}


def test_the_description_is_generated_from_the_parameters_cell(train_nb):
    doc = prepare(train_nb, "train", None, "python", log=lambda m: None)
    written = yaml.safe_load(train_nb.with_name("train.algorithm.yaml").read_text())
    assert written == doc
    assert doc["command"] == ["python", "-m", "workspace_hub.nbrun", "train", "train.ipynb"]
    assert doc["env_vars"]["EPOCHS"] == {"type": "Integer", "default": 3, "description": "passes over the data"}
    assert doc["env_vars"]["SHUFFLE"] == {"type": "Boolean", "default": True}


def test_an_env_var_without_a_parameter_is_an_error_before_any_build(train_nb):
    doc = prepare(train_nb, "train", None, "python", log=lambda m: None)
    doc["env_vars"]["BATCH_SIZE"] = {"type": "Integer", "default": 16}
    train_nb.with_name("train.algorithm.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(NotebookError, match=r"env_vars.BATCH_SIZE: no parameter 'batch_size' in the parameters "
                                            r"cell \(cell 1\)"):
        prepare(train_nb, "train", None, "python")


BAD = {
    "bad JSON": (lambda p: p.write_text('{"cells": ['), "not valid notebook JSON"),
    "no parameters cell": (lambda p: notebook(p, new_code_cell("x = 1")), "no cell is tagged 'parameters'"),
    "schema": (lambda p: p.write_text(json.dumps({
        "nbformat": 4, "nbformat_minor": 5, "metadata": {},
        "cells": [{"cell_type": "code", "source": "x = 1", "metadata": {}, "outputs": [], "execution_count": None,
                   "id": "a"}, {"cell_type": "code", "source": 42, "metadata": {}, "outputs": [],
                                "execution_count": None, "id": "b"}]})), "cell 1: does not follow"),
    "other language": (lambda p: notebook(p, params_cell(), kernel="ir", language="R"), "kernel 'ir' runs R"),
    "a literal default": (lambda p: notebook(p, params_cell("epochs = int('3')\n")), "must be a literal"),
}


@pytest.mark.parametrize("case", BAD)
def test_a_bad_notebook_is_named_and_builds_no_tar(tmp_path, capsys, case):
    make, message = BAD[case]
    make(tmp_path / "bad.ipynb")
    assert ws(["build", "--notebook", str(tmp_path / "bad.ipynb"), "--output-dir", str(tmp_path / "out")]) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_an_unknown_python_kernel_runs_with_the_envs_kernel_and_says_so(tmp_path):
    path = notebook(tmp_path / "k.ipynb", params_cell(), kernel="pytorch-old")
    messages = []
    prepare(path, "train", None, "python3", log=messages.append)
    assert "warning: kernel 'pytorch-old' is not in this env; running with 'python3' instead" in messages


def test_a_cell_that_raises_stops_the_build_in_the_trial_run(tmp_path):
    path = notebook(tmp_path / "boom.ipynb", params_cell(), new_code_cell("1 / 0"))
    with pytest.raises(NotebookError, match="the trial run failed: cell 1 raised ZeroDivisionError"):
        trial_run(path, "train", log=lambda m: None)


def run_training(path, **env):
    return subprocess.run([sys.executable, "-m", "workspace_hub.nbrun", "train", str(path)],
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=300)


def test_env_vars_set_the_parameters_and_the_executed_notebook_is_kept(train_nb, tmp_path):
    r = run_training(train_nb, EPOCHS="2", SHUFFLE="false", MODEL_DIR=str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "model.json").read_text()) == {"epochs": 2, "lr": 0.01}
    executed = read_notebook(tmp_path / "train.executed.ipynb")
    injected = next(c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", []))
    assert "epochs = 2" in injected.source and "shuffle = False" in injected.source


def test_a_bad_env_value_or_an_env_var_without_a_parameter_stops_the_run(train_nb, tmp_path):
    r = run_training(train_nb, EPOCHS="many", MODEL_DIR=str(tmp_path))
    assert r.returncode == 2 and "EPOCHS='many' is not an Integer" in r.stderr
    prepare(train_nb, "train", None, "python", log=lambda m: None)
    described = train_nb.with_name("train.algorithm.yaml")
    doc = yaml.safe_load(described.read_text())
    doc["env_vars"]["IMG_SIZE"] = {"type": "Integer", "default": 8}
    described.write_text(yaml.safe_dump(doc))
    r = run_training(train_nb, MODEL_DIR=str(tmp_path))
    assert r.returncode == 2 and "IMG_SIZE is declared in train.algorithm.yaml but the parameters cell has no " \
                                 "'img_size'" in r.stderr


SERVE = [
    params_cell('greeting = "hello"\n'),
    new_code_cell("loaded = {'calls': 0}  # startup: runs once\n"),
    new_code_cell("def greet(name, shout=False):\n"
                  "    if name == 'boom':\n"
                  "        raise RuntimeError('user code failed')\n"
                  "    loaded['calls'] += 1\n"
                  "    text = f'{greeting}, {name}'\n"
                  "    return {'text': text.upper() if shout else text, 'calls': loaded['calls']}\n"),
    new_code_cell("raise SystemExit('client cells never run when serving')", metadata={"tags": ["client"]}),
]


@pytest.fixture
def server(tmp_path):
    path = notebook(tmp_path / "api.ipynb", *SERVE)
    prepare(path, "predict", None, "python", log=lambda m: None)
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "workspace_hub.nbrun", "serve", str(path)],
                               env={**os.environ, "PORT": str(port), "HOST": "127.0.0.1", "GREETING": "hi"},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_until(lambda: status_of(f"http://127.0.0.1:{port}/health") == 200 or process.poll() is not None, 60, 0.1,
               "the serving notebook")
    assert process.poll() is None, process.communicate()
    yield f"http://127.0.0.1:{port}"
    process.terminate()
    process.wait(10)


def post(url, body):
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_the_served_function_answers_with_env_parameters_and_state_loaded_once(server):
    assert post(f"{server}/greet", {"name": "ada"}) == (200, {"text": "hi, ada", "calls": 1})
    assert post(f"{server}/greet", {"name": "ada", "shout": True}) == (200, {"text": "HI, ADA", "calls": 2})


def test_bad_requests_are_400_and_a_raising_function_is_500_then_the_service_goes_on(server):
    assert post(f"{server}/greet", {"nme": "x"})[0] == 400
    assert post(f"{server}/greet", ["x"])[0] == 400
    assert post(f"{server}/greet", {})[1] == {"error": "missing required param 'name'"}
    assert post(f"{server}/greet", {"name": 7})[1] == {"error": "param 'name' must be a String"}
    assert post(f"{server}/greet", {"name": "boom"}) == (500, {"error": "RuntimeError: user code failed"})
    assert post(f"{server}/greet", {"name": "again"})[0] == 200


BATCHED = [
    params_cell('greeting = "hello"\n'),
    new_code_cell("def greet(name):\n"
                  "    if name == 'boom':\n"
                  "        raise RuntimeError('user code failed')\n"
                  "    return {'text': f'hello, {name}', 'batch': 1}\n"),
    new_code_cell("def greet_batch(calls):\n"
                  "    if any(c['name'] == 'boom' for c in calls):\n"
                  "        raise RuntimeError('one bad item fails the whole batch call')\n"
                  "    return [{'text': f'hello, {c[\"name\"]}', 'batch': len(calls)} for c in calls]\n"),
]


def test_batched_calls_each_get_their_own_answer_and_a_failing_item_fails_alone(tmp_path):
    """Issue 24: with MAX_BATCH_SIZE over 1, concurrent calls go to one call of ``greet_batch``; when the batch
    call raises, each call runs alone, so only the bad one fails."""
    from concurrent.futures import ThreadPoolExecutor

    path = notebook(tmp_path / "api.ipynb", *BATCHED)
    doc = prepare(path, "predict", None, "python", log=lambda m: None)
    assert doc["interface"]["name"] == "greet"  # greet_batch is greet's batch function, not a second interface
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "workspace_hub.nbrun", "serve", str(path)],
                               env={**os.environ, "PORT": str(port), "HOST": "127.0.0.1", "MAX_BATCH_SIZE": "8",
                                    "MAX_BATCH_WAIT_MS": "500"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: status_of(f"http://127.0.0.1:{port}/health") == 200 or process.poll() is not None, 60,
                   0.1, "the serving notebook")
        names = ["ada", "bo", "cy", "di", "ed", "fay"]
        with ThreadPoolExecutor(len(names)) as pool:
            answers = list(pool.map(lambda n: post(f"http://127.0.0.1:{port}/greet", {"name": n}), names))
        assert [a[1]["text"] for a in answers] == [f"hello, {n}" for n in names]
        assert max(a[1]["batch"] for a in answers) > 1  # they went as batches
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda n: post(f"http://127.0.0.1:{port}/greet", {"name": n}),
                                    ["ada", "boom", "cy", "di"]))
        assert answers[1] == (500, {"error": "RuntimeError: user code failed"})
        assert [(a[0], a[1]["text"]) for i, a in enumerate(answers) if i != 1] == [
            (200, f"hello, {n}") for n in ("ada", "cy", "di")]
    finally:
        process.terminate()
        process.wait(10)


EXAMPLES = sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))


def test_there_are_four_examples():
    assert len(EXAMPLES) == 4


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_notebooks_are_stored_without_outputs_and_have_parameters(path):
    nb = read_notebook(path)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "strip outputs before committing"
    assert read_parameters(path, nb) is not None

"""One inference contract, two servers: a project's ``src/api.py`` (from the template) and a serving notebook.

Both run as real processes on loopback and get the same requests.  Each one's
model load waits for a gate file, so the test sees the 503 that comes before
the model is loaded without timing anything.  The template's model code is a
stand-in here (the server is what is under test; the real models are tested
in their env images).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from harness.waiting import free_port, status_of, wait_until
from workspace_hub.notebook import prepare
from workspace_hub.scaffold import templates_dir

MODEL = '''
import os, pathlib, time

def load(folder):
    while not pathlib.Path(os.environ["GATE"]).exists():
        time.sleep(0.05)
    return "sports"

def predict(model, params):
    text = params.get("text")
    if text == "boom":
        raise RuntimeError("user code failed")
    if not isinstance(text, str) or not text.strip():
        raise ValueError("param 'text' (String, required) must be non-empty text")
    return {"label": model, "text": text}
'''
NOTEBOOK = [
    new_code_cell('label = "sports"\n', metadata={"tags": ["parameters"]}),
    new_code_cell("import os, pathlib, time\n"
                  "while not pathlib.Path(os.environ['GATE']).exists():\n"
                  "    time.sleep(0.05)\n"),
    new_code_cell("def classify(text: str):\n"
                  "    if text == 'boom':\n"
                  "        raise RuntimeError('user code failed')\n"
                  "    if not text.strip():\n"
                  "        raise ValueError(\"param 'text' (String, required) must be non-empty text\")\n"
                  "    return {'label': label, 'text': text}\n"),
]


def template_server(tmp_path: Path, cookies) -> list[str]:
    result = cookies.bake(template=str(templates_dir() / "project"),
                          extra_context={"prefix": "contract", "kind": "api", "framework": "sklearn",
                                         "interface_name": "classify"})
    assert result.exit_code == 0, result.exception
    (result.project_path / "src" / "model.py").write_text(MODEL)
    return [sys.executable, str(result.project_path / "src" / "api.py")]


def notebook_server(tmp_path: Path, cookies) -> list[str]:
    nb = new_notebook(cells=NOTEBOOK)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "python3", "language": "python"}
    path = tmp_path / "classify.ipynb"
    nbformat.write(nb, path)
    prepare(path, "predict", None, "python", log=lambda m: None)
    return [sys.executable, "-m", "workspace_hub.nbrun", "serve", str(path)]


@pytest.fixture(params=[template_server, notebook_server], ids=["template-api", "serving-notebook"])
def server(request, tmp_path, cookies):
    command = request.param(tmp_path, cookies)
    port, gate = free_port(), tmp_path / "gate"
    env = {**os.environ, "PORT": str(port), "HOST": "127.0.0.1", "GATE": str(gate), "MODEL_DIR": str(tmp_path)}
    output = tmp_path / "server.log"
    process = subprocess.Popen(command, env=env, stdout=output.open("w"), stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: status_of(f"{base}/health") or process.poll() is not None, 60, 0.05, "the server to answer")
    assert process.poll() is None, output.read_text()
    try:
        yield base, gate, output
    finally:
        process.terminate()
        process.wait(10)


def call(url: str, body: bytes, content_type: str = "application/json") -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def announced_too_large(base: str) -> int:
    """Announce a body over 10 MiB and send none: the server refuses it on the header alone."""
    import http.client

    host, port = base.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.putrequest("POST", "/classify")
    connection.putheader("Content-Type", "application/json")
    connection.putheader("Content-Length", str(10 * 1024**2 + 1))
    connection.endheaders()
    status = connection.getresponse().status
    connection.close()
    return status


def test_both_servers_keep_the_inference_contract(server):
    base, gate, _ = server
    # before the model is loaded: the server answers, and says so
    assert status_of(f"{base}/health") == 503
    assert call(f"{base}/classify", b'{"text": "x"}')[0] == 503
    gate.touch()
    wait_until(lambda: status_of(f"{base}/health") == 200, 60, 0.05, "the model to load")
    # JSON and form bodies
    assert call(f"{base}/classify", json.dumps({"text": "足球"}).encode()) == (200, {"label": "sports", "text": "足球"})
    assert call(f"{base}/classify", "text=%E8%B6%B3%E7%90%83".encode(), "application/x-www-form-urlencoded") == \
        (200, {"label": "sports", "text": "足球"})
    # refusals, each with a message
    assert call(f"{base}/classify", b"{not json")[0] == 400
    assert call(f"{base}/classify", b'["text"]')[0] == 400
    assert call(f"{base}/classify", b'{"text": "  "}') == (400, {"error": "param 'text' (String, required) must be "
                                                                          "non-empty text"})
    assert call(f"{base}/classify", b"text", "text/plain")[0] == 415
    assert announced_too_large(base) == 413
    assert call(f"{base}/nothing", b"{}")[0] == 404
    # an exception in user code is a 500 for that request only
    status, answer = call(f"{base}/classify", b'{"text": "boom"}')
    assert status == 500 and answer["error"]
    assert call(f"{base}/classify", b'{"text": "again"}')[0] == 200


def test_the_handbooks_curl_example_works_as_typed(server):
    """``curl -d '{"text": "足球"}'`` sends the JSON as a form body (no Content-Type given): a form-typed body
    that is a JSON object is read as JSON (issue 25, bug 2: it was a 400 "must be non-empty text")."""
    base, gate, _ = server
    gate.touch()
    wait_until(lambda: status_of(f"{base}/health") == 200, 60, 0.05, "the model to load")
    assert call(f"{base}/classify", json.dumps({"text": "足球"}).encode(), "application/x-www-form-urlencoded") == \
        (200, {"label": "sports", "text": "足球"})


def test_health_checks_do_not_flood_the_log(server):
    """The platform asks every replica for /health once a second: those lines would bury the calls (issue 25,
    bug 11)."""
    base, gate, output = server
    gate.touch()
    wait_until(lambda: status_of(f"{base}/health") == 200, 60, 0.05, "the model to load")
    for _ in range(5):
        status_of(f"{base}/health")
    call(f"{base}/classify", b'{"text": "x"}')
    wait_until(lambda: "classify" in output.read_text(), 10, 0.05, "the call in the log")
    assert "/health" not in output.read_text()


BATCHED_MODEL = MODEL + '''
def predict_batch(model, batch):
    with open(os.environ["BATCHES"], "a") as f:
        f.write(f"{len(batch)}\\n")
    return [predict(model, params) for params in batch]  # one bad item fails the batch: the server retries alone
'''


def test_concurrent_calls_are_batched_each_gets_its_own_answer_and_a_bad_item_fails_alone(tmp_path, cookies):
    """$MAX_BATCH_SIZE > 1: calls that arrive together go to one predict_batch; a failing item (here the
    empty text, a ValueError) is answered 400 alone, and the others of its batch still get their 200."""
    import concurrent.futures

    command = template_server(tmp_path, cookies)
    Path(command[1]).with_name("model.py").write_text(BATCHED_MODEL)
    port, gate, batches = free_port(), tmp_path / "gate", tmp_path / "batches"
    gate.touch()
    env = {**os.environ, "PORT": str(port), "HOST": "127.0.0.1", "GATE": str(gate), "MODEL_DIR": str(tmp_path),
           "BATCHES": str(batches), "MAX_BATCH_SIZE": "8", "MAX_BATCH_WAIT_MS": "200"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: status_of(f"{url}/health") == 200, timeout=30, what="the model to load")

        def call(text):
            request = urllib.request.Request(f"{url}/classify", data=json.dumps({"text": text}).encode(),
                                             headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=30) as r:
                    return r.status, json.loads(r.read())
            except urllib.error.HTTPError as e:
                return e.code, json.loads(e.read())

        texts = [f"text {i}" for i in range(7)] + [""]
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(call, texts))
    finally:
        process.terminate()
        process.wait(10)
    assert answers[:7] == [(200, {"label": "sports", "text": t}) for t in texts[:7]]  # each its own answer
    assert answers[7][0] == 400 and "non-empty" in answers[7][1]["error"]
    assert max(int(n) for n in batches.read_text().split()) > 1  # calls did share a predict_batch


def test_a_body_left_unread_never_becomes_the_next_call(server):
    """Connections stay open between calls (HTTP/1.1), and the platform reuses them for other callers: a
    request refused before its body was read (a wrong path, the model still loading) must close its
    connection, or a body holding a whole second request would be answered as one, to whoever's call
    came next."""
    import socket

    base, gate, _ = server
    host, port = base.removeprefix("http://").split(":")
    smuggled = b'POST /classify HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n{"text": "evil"}'
    for path in ("/nothing", "/classify"):  # 404, and 503 while the model loads
        with socket.create_connection((host, int(port)), timeout=10) as s:
            s.sendall(b"POST " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: " + str(len(smuggled)).encode() + b"\r\n\r\n" + smuggled)
            answer = b""
            while chunk := s.recv(65536):
                answer += chunk
        assert answer.count(b"HTTP/1.1 ") == 1 and b"evil" not in answer

"""`ws validate --smoke`: real images run sandboxed on the real engine.

The images are built FROM the bootstrapped Debian image (it has python3), so
they are small to build; each does one thing right or wrong.
"""

import json
import textwrap

import pytest

from workspace_hub.smoke import smoke_test
from workspace_hub.validate import check_tar

pytestmark = pytest.mark.docker

TRAIN_OK = "import os; open('/project/model/model.txt', 'w').write('w=1 epochs=' + os.environ['EPOCHS'])"
TRAIN_NO_MODEL = "print('trained, but forgot to save')"
TRAIN_FAILS = "raise SystemExit(1)"
TRAIN_NETWORK = "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9/data', timeout=3)"
SERVE_NOTHING = "import time; time.sleep(600)"
SERVE_OK = textwrap.dedent("""
    import http.server, json, os
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == '/health' else 404); self.end_headers()
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers['Content-Length'])))
            out = json.dumps({'label': 'sport', 'text': body['text']}).encode()
            self.send_response(200); self.send_header('Content-Type', 'application/json')
            self.end_headers(); self.wfile.write(out)
    http.server.HTTPServer((os.environ['HOST'], int(os.environ['PORT'])), H).serve_forever()
""")
INTERFACE = ('{"name": "classification_param", "method": "POST", '
             '"params": [{"name": "text", "type": "String", "test_value": "足球"}]}')


def smoke(path, **kwargs):
    report = check_tar(path)
    assert report.valid, report.errors
    return smoke_test(path, report, **kwargs)


def test_a_good_train_image_passes(image_tar, engine):
    path = image_tar("train", "ok", TRAIN_OK)
    images, containers = len(engine.images.list()), len(engine.containers.list(all=True))
    assert smoke(path) == []
    assert len(engine.images.list()) == images, "the smoke run left an image behind"
    assert len(engine.containers.list(all=True)) == containers, "the smoke run left a container behind"


@pytest.mark.parametrize(
    "name, script, code",
    [("exits-1", TRAIN_FAILS, "smoke-exit"), ("no-model", TRAIN_NO_MODEL, "smoke-no-model"),
     ("network", TRAIN_NETWORK, "smoke-exit")],
)
def test_bad_train_images_fail_with_a_clear_error(image_tar, name, script, code):
    problems = smoke(image_tar("train", name, script))
    assert [p.code for p in problems] == [code]
    if name == "network":
        assert "network is off" in problems[0].message and "URLError" in problems[0].message


def test_a_predict_image_answers_health_and_its_interface(image_tar):
    labels = f"ai.platform.port=8080 ai.platform.interface={json.dumps(INTERFACE)}"
    assert smoke(image_tar("predict", "ok-api", SERVE_OK, labels)) == []


def test_a_predict_image_that_never_answers_fails_within_its_timeout(image_tar):
    import time

    started = time.monotonic()
    problems = smoke(image_tar("predict", "mute", SERVE_NOTHING, "ai.platform.port=8080"), health_timeout=5)
    assert [p.code for p in problems] == ["smoke-health"]
    assert time.monotonic() - started < 30

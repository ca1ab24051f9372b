"""The `ws` command: what users type, what they read, and the exit codes."""

import pytest

from workspace_hub.cli import main


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.startswith("ws ")


@pytest.fixture
def hub_api():
    """A loopback server answering ``GET /hub/api/`` as the hub does (its version, no token needed)."""
    import http.server
    import json
    import threading

    class Hub(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps({"version": "6.1.1"}).encode() if self.path == "/hub/api/" else b"{}"
            self.send_response(200 if self.path == "/hub/api/" else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/hub/api"
    server.shutdown()


def test_status_inside_a_workspace_says_whether_the_hub_answers(monkeypatch, capsys, hub_api):
    """Issue 25, bug 9: the handbook promises that ``ws status`` says whether the hub answers."""
    monkeypatch.setenv("WORKSPACE_PROJECT", "demo")
    monkeypatch.setenv("WORKSPACE_ENV", "python")
    monkeypatch.setenv("WORKSPACE_DATASET", "")
    monkeypatch.setenv("JUPYTERHUB_API_URL", hub_api)
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert "project: demo" in out and "env:     python" in out and "(none)" in out
    assert f"hub:     JupyterHub 6.1.1 answers at {hub_api}" in out

    monkeypatch.setenv("JUPYTERHUB_API_URL", "http://127.0.0.1:1/hub/api")
    assert main(["status"]) == 1
    assert "hub:     not answering at http://127.0.0.1:1/hub/api" in capsys.readouterr().out


def test_status_on_the_host_without_a_hub(monkeypatch, capsys):
    monkeypatch.delenv("WORKSPACE_PROJECT", raising=False)
    assert main(["status", "--port", "1"]) == 1
    assert "not answering on http://127.0.0.1:1" in capsys.readouterr().out


def test_building_an_unknown_env_names_the_choices(capsys):
    assert main(["envs", "build", "cobol"]) == 1
    assert "unknown env cobol: choose from keras, python, pytorch" in capsys.readouterr().err


def test_a_missing_ca_bundle_is_refused_before_building(capsys):
    assert main(["envs", "build", "python", "--ca-bundle", "/nonexistent.pem"]) == 1
    assert "--ca-bundle /nonexistent.pem: no such file" in capsys.readouterr().err


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        main(["envs", "frobnicate"])
    assert e.value.code == 2


def test_ws_up_takes_a_comma_separated_list_of_envs_to_build():
    from workspace_hub.cli import parser

    assert parser().parse_args(["up", "--envs", "python,pytorch"]).envs == ["python", "pytorch"]
    assert parser().parse_args(["up"]).envs == ["python"]

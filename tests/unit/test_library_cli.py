"""`ws algorithms` and `ws publish` against the in-process library (the real hub is in tests/integration)."""

import json

import pytest

from harness.library import running_service
from workspace_hub.cli import main as ws


@pytest.fixture
def library(tmp_path, monkeypatch):
    with running_service(tmp_path / "data", smoke_by_default=False) as (service, base):
        monkeypatch.setenv("WSHUB_LIBRARY_URL", base)
        monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "owner-token")
        yield service, base


def test_list_show_and_status_by_name(library, capsys):
    from harness.library import Client

    client = Client(library[1], "owner-token")
    item = client("POST", "algorithms", json={"name": "digits", "version": "2.0"}).json()
    assert ws(["algorithms", "list", "--mine"]) == 0
    assert f"{item['id']}  olive/digits 2.0  [draft]  private" in capsys.readouterr().out
    assert ws(["algorithms", "show", "digits:2.0", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["id"] == item["id"]
    assert ws(["algorithms", "online", "digits"]) == 1
    assert "digits is draft; only ready or offline or online items can be brought online. [status, HTTP 409]" \
        in capsys.readouterr().err
    assert ws(["algorithms", "show", "nothing"]) == 1
    assert "no algorithm 'nothing' is visible to you" in capsys.readouterr().err


def test_publish_needs_a_project_outside_a_workspace(library, capsys, monkeypatch):
    monkeypatch.delenv("WORKSPACE_PROJECT", raising=False)
    monkeypatch.delenv("JUPYTERHUB_SERVER_NAME", raising=False)
    assert ws(["publish"]) == 1
    assert "which project?" in capsys.readouterr().err
    assert ws(["publish", "--project", "nope"]) == 1
    assert "You have no project 'nope' with a docker_image folder" in capsys.readouterr().err

"""The `ws` command: what users type, what they read, and the exit codes."""

import pytest

from workspace_hub.cli import main


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.startswith("ws ")


def test_status_inside_a_workspace(monkeypatch, capsys):
    monkeypatch.setenv("WORKSPACE_PROJECT", "demo")
    monkeypatch.setenv("WORKSPACE_ENV", "python")
    monkeypatch.setenv("WORKSPACE_DATASET", "")
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert "project: demo" in out and "env:     python" in out and "(none)" in out


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

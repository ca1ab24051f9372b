"""Docs are tested: every `ws` command is in the handbook, every setting has help, deploy config is real."""

import argparse

import yaml

from workspace_hub.catalog import REPO_ROOT
from workspace_hub.cli import parser

HANDBOOK = (REPO_ROOT / "help_doc" / "README.md").read_text(encoding="utf-8")
README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")


def commands(p: argparse.ArgumentParser, prefix: str = "ws") -> list[str]:
    found = []
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                sub_commands = commands(sub, f"{prefix} {name}")
                found += sub_commands or [f"{prefix} {name}"]
    return found


def test_every_ws_command_is_documented():
    undocumented = [c for c in commands(parser()) if c not in HANDBOOK and c not in README]
    assert undocumented == []


def test_the_zero_to_jupyterhub_values_use_the_kubernetes_profile():
    values = yaml.safe_load((REPO_ROOT / "deploy" / "kubernetes" / "values.yaml").read_text())
    assert values["hub"]["extraEnv"]["WSHUB_PROFILE"] == "kubernetes"
    assert values["hub"]["db"]["type"] == "postgres"
    assert "configure(c)" in values["hub"]["extraConfig"]["workspace-hub"]
    # the library listens on 8002 in the hub pod (hubconfig.publish_service)
    assert values["hub"]["service"]["extraPorts"][0]["port"] == 8002
    assert values["hub"]["extraEnv"]["WSHUB_LIBRARY_DB_URL"].startswith("postgresql")

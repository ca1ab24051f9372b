"""The layout's promises that a reader relies on, checked."""

import subprocess
import sys


def test_loading_the_rules_loads_no_engine_client():
    """Rules are plain decisions: importing them (as `ws`, the pages or a Kubernetes backend do) needs no Docker."""
    code = ("import sys, workspace_library.runs.rules, workspace_library.services.rules, "
            "workspace_library.registry.rules, workspace_library.access, workspace_library.quota; "
            "print(sorted(m for m in sys.modules if m == 'docker' or m.startswith('docker.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"

"""The layout's promises that a reader relies on, checked."""

import re
import subprocess
import sys
from pathlib import Path


def test_loading_the_rules_loads_no_engine_client():
    """Rules are plain decisions: importing them (as `ws`, the pages or a Kubernetes backend do) needs no Docker."""
    code = ("import sys, workspace_library.runs.rules, workspace_library.services.rules, "
            "workspace_library.registry.rules, workspace_library.access, workspace_library.quota; "
            "print(sorted(m for m in sys.modules if m == 'docker' or m.startswith('docker.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


HUB = Path(__file__).resolve().parents[2] / "workspace_hub"
LIBRARY = HUB.parent / "workspace_library"
# the Docker backends: the executor's, the Docker spawner's (DockerSpawner itself is docker-py), and env builds
DOCKER_BACKENDS = {HUB / "executor" / "docker.py", HUB / "spawner.py", HUB / "envbuild.py"}


def test_only_the_docker_backends_import_docker():
    importing = re.compile(r"^\s*(import docker|from docker[. ])", re.MULTILINE)
    offenders = [str(path.relative_to(HUB.parent)) for root in (HUB, LIBRARY) for path in sorted(root.rglob("*.py"))
                 if path not in DOCKER_BACKENDS and importing.search(path.read_text())]
    assert offenders == []


def test_one_function_decides_how_a_run_ended():
    """Exit codes, OOM and deadlines become reasons in workspace_hub/executor/outcome.py alone; the backends
    only read their engine's facts (docker's OOMKilled, a pod's terminated state) and hand them to it."""
    deciding = re.compile(r"OOMKilled|StatusCode|\"(exit-code|max-runtime|no-model)\"")
    offenders = [f"{path.relative_to(HUB.parent)}:{number}" for root in (HUB, LIBRARY)
                 for path in sorted(root.rglob("*.py")) if path.name not in ("outcome.py", "docker.py", "kubernetes.py")
                 for number, line in enumerate(path.read_text().splitlines(), 1) if deciding.search(line)]
    assert offenders == []


def library_imports() -> dict[str, set[str]]:
    """Each library module (dotted, under workspace_library) and the library modules it imports."""
    import ast

    graph = {}
    for path in sorted(LIBRARY.rglob("*.py")):
        module = ".".join(("workspace_library", *path.relative_to(LIBRARY).with_suffix("").parts))
        module = module.removesuffix(".__init__")
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(base + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                names = [f"{base}.{alias.name}" for alias in node.names]
                targets |= {base} | {n for n in names if n.startswith("workspace_library")}
            elif isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names}
        graph[module] = {t for t in targets if t.startswith("workspace_library")}
    return graph


def folder(module: str) -> str:
    """The layout's unit: a resource's package, the composition root (app), or the shared base."""
    parts = module.split(".")
    if len(parts) > 2 and (LIBRARY / parts[1]).is_dir():
        return parts[1]
    return "app" if parts[1:2] in (["app"], ["__main__"]) else "base"


def test_the_library_s_folders_import_each_other_without_a_cycle():
    import graphlib

    edges: dict[str, set[str]] = {}
    for module, targets in library_imports().items():
        edges.setdefault(folder(module), set()).update(folder(t) for t in targets if folder(t) != folder(module))
    graphlib.TopologicalSorter(edges).prepare()  # raises CycleError, naming the loop
    assert edges["base"] <= set(), f"the shared base imports {edges['base']}: only app.py composes resources"


def test_no_resource_imports_another_s_handlers():
    offenders = [f"{module} -> {target}" for module, targets in library_imports().items() for target in targets
                 if folder(module) not in ("app", "base") and target.endswith(".api")
                 and folder(target) != folder(module)]
    assert offenders == []

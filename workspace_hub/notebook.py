"""Notebooks as algorithms: check a notebook, read its parameters, describe it for ``ws build``.

- nbformat reads and validates the notebook; ``nbformat.read`` only logs schema
  problems, so :func:`nbformat.validate` is called and its error is reported
  with the cell index.
- papermill finds the cell tagged ``parameters`` and reads each parameter's
  name, type, default and trailing-comment help (``papermill.inspect_notebook``).
  This module maps them onto the handbook's contract: parameter ``epochs`` is
  set from env var ``EPOCHS``, typed from its annotation or default.
- A notebook's algorithm description lives next to it as
  ``<notebook stem>.algorithm.yaml`` (one folder may hold a training and a
  serving notebook).  ``ws build --notebook`` writes it when absent and checks
  it when present.

Serving notebooks: the function named by ``interface.name`` answers
``POST /<name>``; see :mod:`workspace_hub.nbrun`.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from .contract import BATCH_VARIABLES, DEFAULT_PORT
from .errors import WorkspaceHubError
from .algorithm import NAME, check_algorithm

PAPERMILL_TYPES = {"int": "Integer", "float": "Float", "bool": "Boolean", "str": "String"}
PYTHON_TYPES = {"Integer": int, "Float": float, "Boolean": bool, "String": str}
CLIENT_TAG = "client"  # cells that call the service; skipped when the notebook serves


class NotebookError(WorkspaceHubError, ValueError):
    """The notebook cannot be built; ``problems`` name the cell or parameter and the fix."""

    def __init__(self, path: Path, problems: list[str]):
        self.problems = problems
        super().__init__(f"{Path(path).name}: " + "; ".join(problems))


@dataclass
class Parameter:
    name: str
    type: str  # the handbook's: Integer, Float, Boolean or String
    default: object
    help: str = ""

    @property
    def env_var(self) -> str:
        return self.name.upper()

    def parse(self, text: str):
        """The env var's text as this parameter's type; ValueError names the rule."""
        if self.type == "Boolean":
            if text.lower() in ("1", "true", "yes"):
                return True
            if text.lower() in ("0", "false", "no"):
                return False
            raise ValueError(f"{self.env_var}={text!r} is not a Boolean (true/false)")
        try:
            return PYTHON_TYPES[self.type](text)
        except ValueError:
            raise ValueError(f"{self.env_var}={text!r} is not an {self.type}") from None


def read_notebook(path: str | Path):
    """Read and validate a notebook (nbformat 4); NotebookError says which cell is wrong."""
    import nbformat

    path = Path(path)
    try:
        nb = nbformat.read(path, as_version=4)
    except FileNotFoundError:
        raise NotebookError(path, [f"no such notebook: {path}"]) from None
    except (nbformat.reader.NotJSONError, ValueError, UnicodeDecodeError) as e:
        raise NotebookError(path, [f"not a notebook: the file is not valid notebook JSON ({str(e)[:200]})"]) from None
    try:
        nbformat.validate(nb)
    except nbformat.ValidationError as e:
        where = list(e.absolute_path) if hasattr(e, "absolute_path") else []
        cell = f"cell {where[1]}: " if len(where) > 1 and where[0] == "cells" else ""
        raise NotebookError(path, [f"{cell}does not follow the notebook format: {e.message}"]) from None
    return nb


def parameters_cell(nb) -> int | None:
    return next((i for i, c in enumerate(nb.cells) if "parameters" in c.get("metadata", {}).get("tags", [])), None)


def read_parameters(path: str | Path, nb=None) -> list[Parameter]:
    """The parameters of the cell tagged ``parameters``, typed for the handbook's env vars."""
    import papermill

    path = Path(path)
    nb = nb if nb is not None else read_notebook(path)
    if parameters_cell(nb) is None:
        raise NotebookError(path, ["no cell is tagged 'parameters': put the defaults (epochs = 10, ...) in one "
                                   "cell and add the tag 'parameters' (JupyterLab: the property inspector)"])
    found, problems = [], []
    for name, spec in papermill.inspect_notebook(str(path)).items():
        try:
            default = ast.literal_eval(spec["default"])
        except (ValueError, SyntaxError):
            problems.append(f"parameter {name}: its default {spec['default']!r} must be a literal "
                            "(a number, string or True/False)")
            continue
        kind = PAPERMILL_TYPES.get(spec["inferred_type_name"]) or PAPERMILL_TYPES.get(type(default).__name__)
        if kind is None:
            problems.append(f"parameter {name}: type {spec['inferred_type_name']!r} is not one of int, float, "
                            "bool or str")
            continue
        found.append(Parameter(name, kind, default, (spec.get("help") or "").strip()))
    if problems:
        raise NotebookError(path, problems)
    return found


def _arg_type(annotation, default) -> str:
    """The handbook type of a function argument, from its annotation or its default (else String)."""
    if isinstance(annotation, ast.Name) and annotation.id in PAPERMILL_TYPES:
        return PAPERMILL_TYPES[annotation.id]
    try:
        return PAPERMILL_TYPES.get(type(ast.literal_eval(default)).__name__, "String") if default else "String"
    except ValueError:
        return "String"


def functions(nb) -> dict[str, list[tuple[str, bool, str]]]:
    """Top-level functions defined in the notebook's serving cells: (argument, required, type)."""
    found = {}
    for cell in nb.cells:
        if cell.cell_type != "code" or CLIENT_TAG in cell.get("metadata", {}).get("tags", []):
            continue
        source = "\n".join(line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!")))
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
                args = node.args.args
                defaults = [None] * (len(args) - len(node.args.defaults)) + list(node.args.defaults)
                found[node.name] = [(a.arg, d is None, _arg_type(a.annotation, d)) for a, d in zip(args, defaults)]
    return found


def kernel_for(path: Path, nb, fallback: str | None = None) -> tuple[str, str | None]:
    """The kernel to run with, and a warning when the notebook's own is not in this env.

    A Python notebook whose kernel this env lacks runs with the env's kernel
    (named after the env); a notebook in another language cannot.
    """
    from jupyter_client.kernelspec import KernelSpecManager

    available = sorted(KernelSpecManager().find_kernel_specs())
    spec = nb.metadata.get("kernelspec") or {}
    wanted = spec.get("name")
    if wanted in available:
        return wanted, None
    language = spec.get("language") or (nb.metadata.get("language_info") or {}).get("name") or "python"
    if language != "python":
        raise NotebookError(path, [f"kernel {wanted!r} runs {language}; this env has only Python kernels "
                                   f"({', '.join(available)})"])
    fallback = fallback if fallback in available else (available[0] if available else "python3")
    return fallback, f"kernel {wanted!r} is not in this env; running with {fallback!r} instead"


def slug(stem: str) -> str:
    name = re.sub(r"[^a-z0-9._-]+", "-", stem.lower()).strip("-._")
    return name[:63] or "notebook"


def runner_command(kind: str, path: Path) -> list[str]:
    return ["python", "-m", "workspace_hub.nbrun", "train" if kind == "train" else "serve", path.name]


def describe(path: Path, kind: str, parameters: list[Parameter], nb, name: str | None, env: str) -> dict:
    """A generated ``algorithm.yaml`` for the notebook."""
    doc = {
        "name": name or slug(path.stem),
        "version": "1.0",
        "description": f"notebook {path.name}",
        "purpose": {"first": "other", "second": "notebook"},
        "kind": kind,
        "framework": env,
        "env": env,
        "device": "cpu",
        "notebook": path.name,
        "command": runner_command(kind, path),
        "env_vars": {p.env_var: {"type": p.type, "default": p.default, **({"description": p.help[:500]}
                                                                          if p.help else {})}
                     for p in parameters},
    }
    if kind == "predict":
        public = functions(nb)
        public = {name: args for name, args in public.items()  # <name>_batch serves <name> (nbrun's batching)
                  if not (name.endswith("_batch") and name.removesuffix("_batch") in public)}
        if len(public) != 1:
            raise NotebookError(path, [f"a serving notebook needs one function to serve; it defines "
                                       f"{', '.join(public) or 'none'}. Write {path.stem}.algorithm.yaml with "
                                       "interface.name set to the function to serve"])
        [(function, args)] = public.items()
        doc["interface"] = {"name": function, "method": "POST", "param_format": "json", "port": DEFAULT_PORT,
                            "params": [{"name": a, "type": kind, "required": required} for a, required, kind in args]}
    return doc


def description_path(path: Path) -> Path:
    """Where a notebook's ``algorithm.yaml`` lives: ``<stem>.algorithm.yaml`` next to it."""
    return path.with_name(f"{path.stem}.algorithm.yaml")


def unmatched_env_vars(doc: dict, parameters: list[Parameter]) -> list[str]:
    """Env vars a description declares that no parameter takes (the serving contract's own aside: PORT, HOST
    and the batching variables, which the runner reads)."""
    names = {p.name for p in parameters}
    return [var for var in (doc.get("env_vars") or {})
            if var.lower() not in names and var not in ("PORT", "HOST", *BATCH_VARIABLES)]


def check(path: Path, doc: dict, kind: str, parameters: list[Parameter], nb) -> list[str]:
    """What an existing description gets wrong about the notebook, each naming the fix."""
    problems = check_algorithm(doc)
    cell = parameters_cell(nb)
    for var in unmatched_env_vars(doc, parameters):
        problems.append(f"env_vars.{var}: no parameter {var.lower()!r} in the parameters cell (cell {cell}); "
                        f"add `{var.lower()} = ...` there or remove {var}")
    expected = runner_command(kind, path)
    if doc.get("command") != expected:
        problems.append(f"command: a notebook runs through the runner; set command: {expected}")
    if doc.get("kind") != kind:
        problems.append(f"kind: is {doc.get('kind')!r} but the build asked for {kind!r}")
    if kind == "predict":
        function = (doc.get("interface") or {}).get("name")
        if function not in functions(nb):
            problems.append(f"interface.name: the notebook defines no function {function!r} to serve")
    return problems


def prepare(path: str | Path, kind: str, name: str | None, env: str, log=print) -> dict:
    """Check the notebook and its ``<stem>.algorithm.yaml`` (written when absent); return the description."""
    path = Path(path).resolve()
    nb = read_notebook(path)
    parameters = read_parameters(path, nb)
    _, warning = kernel_for(path, nb, env)
    if warning:
        log(f"warning: {warning}")
    described = description_path(path)
    if described.exists():
        doc = yaml.safe_load(described.read_text(encoding="utf-8"))
        if problems := check(path, doc if isinstance(doc, dict) else {}, kind, parameters, nb):
            raise NotebookError(described, problems)
    else:
        doc = describe(path, kind, parameters, nb, name, env)
        if problems := check_algorithm(doc):
            raise NotebookError(path, problems)
        described.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8")
        log(f"wrote {described.name} from the parameters cell: edit it to set the purpose and descriptions")
    if name and not re.fullmatch(NAME, name):
        raise NotebookError(path, [f"--name {name!r} breaks the naming rule {NAME}"])
    return doc


def trial_run(path: str | Path, kind: str, log=print) -> None:
    """A trial run of the notebook before it is packed: training with its defaults (into a scratch model
    folder), serving up to the point where it would answer.  A cell that raises stops the build."""
    path = Path(path).resolve()
    log(f"trial run of {path.name} ({'training with its defaults' if kind == 'train' else 'loading the service'})")
    with tempfile.TemporaryDirectory(prefix="ws-trial-run-") as scratch:
        env = dict(os.environ, **({"MODEL_DIR": scratch} if kind == "train" else {}))
        mode = "train" if kind == "train" else "load"
        r = subprocess.run([sys.executable, "-m", "workspace_hub.nbrun", mode, str(path)], env=env,
                           capture_output=True, text=True)
    if r.returncode != 0:
        errors = [line.removeprefix("error: ") for line in r.stderr.splitlines() if line.startswith("error: ")]
        raise NotebookError(path, [f"the trial run failed: {errors[-1] if errors else r.stderr.strip()[-500:]} "
                                   "(build with --no-trial-run to skip it)"])

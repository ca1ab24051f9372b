"""New algorithm folders from the cookiecutter template, and code imported with git.

Two words, used everywhere: a *project* is a workspace (a named server with
``/project/code``, ``model``, ``docker_image``); an *algorithm folder* is one
folder under ``/project/code`` with an ``algorithm.yaml``, which ``ws build``
packs into an image tar.

``templates/project`` is one cookiecutter template with a ``kind`` (train or
api) and a ``framework``; a sample is that template baked with a preset
prefix, framework and interface.  Git imports use GitPython with its unsafe
protocols and options left off (CVE-2022-24439), plus the rules below.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from .catalog import REPO_ROOT
from .errors import WorkspaceHubError

DEFAULT_IMPORT_LIMIT = 1024**3
SAFE_SCHEMES = {"https", "http", "ssh", "git", "file"}


class ScaffoldError(WorkspaceHubError):
    """An algorithm folder cannot be made or code imported; the message says why and what to do."""


@dataclass(frozen=True)
class Sample:
    framework: str
    interface: str
    env: str
    description: str
    task: str = "classify"  # the template's task: classify, detect (json datasets) or ner (brat_ann datasets)


SAMPLES = {
    "text-classify-bayes": Sample("sklearn", "classification_param", "python",
                                  "Chinese text classification with naive Bayes (scikit-learn)"),
    "image-classify-torch": Sample("pytorch", "classify_image", "pytorch",
                                   "handwritten digit classification with PyTorch"),
    "image-classify-keras": Sample("keras", "classify_image", "keras",
                                   "handwritten digit classification with Keras 3"),
    "object-detect-torch": Sample("pytorch", "detect_objects", "pytorch",
                                  "object detection on generated shapes, a small PyTorch network from scratch",
                                  task="detect"),
    "text-ner-sklearn": Sample("sklearn", "extract_entities", "python",
                               "named-entity recognition on brat annotations (scikit-learn)", task="ner"),
}


def templates_dir() -> Path:
    """$WSHUB_TEMPLATES_DIR, the source checkout's templates/, or the copy in the env image."""
    for candidate in (os.environ.get("WSHUB_TEMPLATES_DIR"), REPO_ROOT / "templates", "/opt/workspace-hub/templates"):
        if candidate and (Path(candidate) / "project" / "cookiecutter.json").is_file():
            return Path(candidate)
    raise ScaffoldError("the project templates are missing; set WSHUB_TEMPLATES_DIR to a templates/ folder")


def workspace_root() -> Path:
    return Path(os.environ.get("WORKSPACE_ROOT", "/project"))


def code_dir() -> Path:
    """Where new algorithm folders go: /project/code in a workspace, else the current folder."""
    code = workspace_root() / "code"
    return code if code.is_dir() else Path.cwd()


def new_algorithm_folder(kind: str, prefix: str, interface: str, framework: str, output_dir: Path | None = None,
                         slug: str | None = None, task: str = "classify") -> Path:
    """Bake one algorithm folder; the template's pre_gen hook refuses bad input with the rule."""
    from cookiecutter.exceptions import CookiecutterException, FailedHookException, OutputDirExistsException
    from cookiecutter.main import cookiecutter

    # the hook prints the rule; cookiecutter's own log would add a traceback
    logging.getLogger("cookiecutter").setLevel(logging.CRITICAL)
    context = {"prefix": prefix, "kind": kind, "framework": framework, "interface_name": interface, "task": task}
    if slug:
        context["project_slug"] = slug
    try:
        return Path(cookiecutter(str(templates_dir() / "project"), no_input=True, extra_context=context,
                                 output_dir=str(output_dir or code_dir())))
    except OutputDirExistsException as e:
        raise ScaffoldError(f"{e}: choose another --name or prefix, or remove the folder") from None
    except FailedHookException:
        raise ScaffoldError("the template refused this input (the rule is printed above)") from None
    except CookiecutterException as e:
        raise ScaffoldError(str(e)) from None


def new_sample(sample: str, name: str | None = None, output_dir: Path | None = None) -> list[Path]:
    """A sample's train and api algorithm folders: ``<name>-train-demo`` and ``<name>-api-demo``."""
    if sample not in SAMPLES:
        raise ScaffoldError(f"unknown sample {sample!r}: choose one of {', '.join(SAMPLES)} (ws list samples)")
    preset, prefix = SAMPLES[sample], name or sample
    return [new_algorithm_folder(kind, prefix, preset.interface, preset.framework, output_dir,
                                 slug=f"{prefix}-{kind}-demo", task=preset.task) for kind in ("train", "api")]


def _check_git_url(url: str) -> None:
    if url.startswith("-"):
        raise ScaffoldError(f"{url!r} looks like an option, not a repository URL")
    if "::" in url or url.startswith("ext:"):
        raise ScaffoldError(f"{url!r}: transport helpers such as ext:: run commands and are refused; "
                           "use an https://, ssh:// or git@host:path URL")
    parsed = urlparse(url)
    local = parsed.scheme in ("", "file") and not ("@" in url and ":" in url.split("@", 1)[1])
    if local:
        path = Path(parsed.path if parsed.scheme == "file" else url).resolve()
        root = workspace_root().resolve()
        if root not in (path, *path.parents):
            raise ScaffoldError(f"{url!r} is a local path outside the workspace ({root}); "
                               "clone from a URL, or copy the repository into the workspace first")
    elif parsed.scheme and parsed.scheme not in SAFE_SCHEMES:
        raise ScaffoldError(f"{url!r}: the {parsed.scheme}:// protocol is not allowed; "
                           f"use one of {', '.join(sorted(SAFE_SCHEMES))}")


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def git_message(error) -> str:
    """What git printed, without the quoting GitPython wraps around it (``  stderr: '...'``)."""
    text = (error.stderr or "").strip()
    if text.startswith("stderr: '") and text.endswith("'"):
        text = text[len("stderr: '"):-1].strip()
    return text or str(error)


def import_git(url: str, branch: str | None = None, name: str | None = None,
               limit: int | None = None) -> Path:
    """Clone *url* with depth 1 into /project/code/<name> (outside a workspace: ./<name>).

    Refused: options and transport helpers (ext::, fd::), protocols other than
    https, http, ssh, git and file, local paths outside the workspace, an
    existing target, and repositories over the size limit.
    """
    from git import GitCommandError, Repo

    _check_git_url(url)
    name = name or Path(urlparse(url).path.rstrip("/")).name.removesuffix(".git") or "repository"
    if "/" in name or name.startswith("."):
        raise ScaffoldError(f"--name {name!r}: use a plain folder name")
    target = code_dir() / name
    if target.exists():
        raise ScaffoldError(f"{target} already exists: pass --name for another folder, or remove it")
    limit = limit or int(os.environ.get("WSHUB_IMPORT_MAX_BYTES", DEFAULT_IMPORT_LIMIT))
    try:
        Repo.clone_from(url, target, depth=1, single_branch=True, **({"branch": branch} if branch else {}))
    except GitCommandError as e:
        shutil.rmtree(target, ignore_errors=True)
        raise ScaffoldError(f"git clone failed: {git_message(e)}") from None
    if (size := _size(target)) > limit:
        shutil.rmtree(target, ignore_errors=True)
        raise ScaffoldError(f"the repository is {size} bytes, over the {limit}-byte import limit "
                           "(WSHUB_IMPORT_MAX_BYTES); keep data and models out of git")
    return target

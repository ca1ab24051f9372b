"""Publishing from a workspace: which tars and which ``algorithm.yaml`` of the caller's own project to read.

``POST api/algorithms/from-project`` (``ws publish``) names a project, never a
path; these functions find its image tars and record fields, reading regular
files inside that user's own folder only.
"""

from __future__ import annotations

from pathlib import Path

from workspace_hub.algorithm import AlgorithmError, load_algorithm
from workspace_hub.contract import TAR_NAME
from workspace_hub.projects import Project, user_dir_name

from . import rules
from ..errors import LibraryError


def project_tars(project: Project, name: str | None) -> dict[str, Path]:
    """The ``{role: path}`` tars of one algorithm in the project's docker_image folder."""
    folder = project.path / "docker_image"
    user_root = (project.data_root / "users" / user_dir_name(project.user)).resolve()
    if not folder.is_dir() or folder.is_symlink() or not folder.resolve().is_relative_to(user_root):
        raise LibraryError(404, "no-project", f"You have no project {project.name!r} with a docker_image "
                           "folder; run `ws build` in the project first.", "project")
    found: dict[str, dict[str, Path]] = {}
    for path in sorted(folder.iterdir()):
        match = TAR_NAME.match(path.name)
        if not match:
            continue
        if path.is_symlink() or not path.is_file():
            raise LibraryError(400, "symlink", f"{path.name} is a link or not a file; the service only "
                               "reads regular files inside your project.", "project")
        kind, tar_name, _ = match.groups()
        found.setdefault(tar_name, {})[kind] = path
    if name is not None:
        if name not in found:
            raise LibraryError(404, "no-image", f"no train-{name}-*.tar or predict-{name}-*.tar in "
                               f"{project.name}/docker_image; run `ws build`", "name")
        return found[name]
    if len(found) != 1:
        names = ", ".join(sorted(found)) or "none"
        raise LibraryError(400, "which-name", f"{project.name}/docker_image holds images of {names}; choose "
                           "one with --name" if found else f"{project.name}/docker_image has no image "
                           "tars; run `ws build` first", "name")
    return next(iter(found.values()))


def project_metadata(project: Project, tars: dict[str, Path]) -> dict:
    """Record fields from the matching ``algorithm.yaml`` files under ``code/`` (labels fill the rest)."""
    name = TAR_NAME.match(next(iter(tars.values())).name).group(2)
    fields = {"name": name}
    code = project.path / "code"
    for path in sorted(code.glob("*/algorithm.yaml")) + sorted(code.glob("algorithm.yaml")):
        if path.is_symlink() or path.parent.is_symlink():
            continue
        try:
            doc = load_algorithm(path.parent)
        except AlgorithmError as e:
            raise LibraryError(400, "algorithm-yaml", str(e).replace(str(project.path), project.name)) from None
        if doc["name"] == name and doc["kind"] in tars:
            own = rules.fields_from_algorithm_yaml(doc)
            fields = {**own, **fields, **{k: own[k] for k in ("train", "predict") if k in own}}
    fields.setdefault("version", "1.0")
    return fields

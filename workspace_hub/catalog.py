"""The base-environment catalog: one folder per env under ``base-envs/``.

Each folder holds a ``Dockerfile`` (built on the shared ``base`` layer) and an
``env.yaml`` entry.  This module only reads entries; building is in
:mod:`workspace_hub.envbuild`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .errors import WorkspaceHubError

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CATALOG_DIR = REPO_ROOT / "base-envs"
# Folders of base-envs/ that are build layers, not selectable envs.
LAYER_DIRS = {"base", "workspace"}
IMAGE_PREFIX = "workspace-hub/"


class CatalogError(WorkspaceHubError, ValueError):
    """An env.yaml entry is missing or malformed."""


@dataclass(frozen=True)
class WorkspaceEnv:
    """A base env a workspace can start: a catalog entry, or an env registered in the library.

    (The library's own record of a base env is :class:`workspace_library.models.BaseEnv`.)
    """

    id: str
    display_name: str
    framework: str
    device: str
    description: str
    mem_limit: str | None = None
    cpu_limit: float | None = None
    framework_module: str = "sys"
    parent: str | None = None
    base_image: str | None = None
    build_args: dict = field(default_factory=dict)
    image: str = ""
    folder: Path | None = None

    @property
    def gpu(self) -> bool:
        return self.device == "gpu"


def _entry(folder: Path) -> WorkspaceEnv:
    path = folder / "env.yaml"
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise CatalogError(f"{path}: cannot read the catalog entry: {e}") from None
    missing = [k for k in ("id", "display_name", "framework", "device") if k not in data]
    if missing:
        raise CatalogError(f"{path}: missing keys {', '.join(missing)}")
    if data["id"] != folder.name:
        raise CatalogError(f"{path}: id {data['id']!r} must equal the folder name {folder.name!r}")
    if data["device"] not in ("cpu", "gpu"):
        raise CatalogError(f"{path}: device must be 'cpu' or 'gpu', not {data['device']!r}")
    limits = data.get("limits") or {}
    return WorkspaceEnv(
        id=data["id"],
        display_name=data["display_name"],
        framework=data["framework"],
        device=data["device"],
        description=data.get("description", ""),
        mem_limit=limits.get("mem"),
        cpu_limit=float(limits["cpu"]) if "cpu" in limits else None,
        framework_module=data.get("framework_module", "sys"),
        parent=data.get("parent"),
        base_image=data.get("base_image"),
        build_args={k: str(v) for k, v in (data.get("build_args") or {}).items()},
        image=data.get("image") or f"{IMAGE_PREFIX}{data['id']}:latest",
        folder=folder,
    )


def load_catalog(directory: str | Path = DEFAULT_CATALOG_DIR) -> dict[str, WorkspaceEnv]:
    """Read every env entry under *directory*, keyed by id, in folder order."""
    directory = Path(directory)
    folders = sorted(p for p in directory.iterdir() if (p / "env.yaml").is_file())
    catalog = {env.id: env for env in map(_entry, folders) if env.id not in LAYER_DIRS}
    for env in catalog.values():
        if env.parent is not None and env.parent not in catalog:
            raise CatalogError(f"{env.folder / 'env.yaml'}: parent {env.parent!r} is not an env in the catalog")
    return catalog

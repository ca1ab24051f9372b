"""Projects on disk: names, the data-root layout and the mount plan.

A project is a JupyterHub named server.  Its files live on the host under
``<data_root>/users/<user>/<project>/`` and outlive every container::

    <data_root>/
      help_doc/                       the handbook, mounted read-only
      library/trees/<manifest>/       a dataset version (the library's), mounted read-only when chosen
      users/<user>/<project>/
        code/ model/ docker_image/    mounted read-write under /project
        .home/                        the persistent home (pip --user, settings)
        project.json                  the env and dataset the project was made with

The mount plan is plain data (paths relative to the data root), so the Docker,
local and Kubernetes spawners can each turn it into their own volume format.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from jupyterhub.slugs import is_valid_safe_slug, safe_slug

from .contract import BASE_IMAGE_MOUNT, DATASET_DIR, TEST_DATASET_DIR, WORKSPACE_ROOT
from .errors import WorkspaceHubError

PROJECT_DIRS = ("code", "model", "docker_image")
WORKSPACE_HOME = "/home/jovyan"
MAX_NAME_LENGTH = 30
DATASET_TARGETS = {"train": DATASET_DIR, "test": TEST_DATASET_DIR}


class InvalidChoice(WorkspaceHubError, ValueError):
    """A spawn option that cannot be honoured; the message names the rule and the fix."""


@dataclass(frozen=True)
class DatasetMount:
    """An online dataset version, as the library lists it: its key, a label, and each split's tree
    (relative to the data root)."""

    key: str
    label: str
    mounts: dict


@dataclass(frozen=True)
class Mount:
    """One bind mount: *source* is relative to the data root."""

    source: str
    target: str
    read_only: bool


def check_project_name(name: str) -> str:
    """Return *name* if it is a valid project name, else raise :class:`InvalidChoice`.

    The rule is JupyterHub's own server-name rule (``is_valid_safe_slug``).
    """
    if not name:
        raise InvalidChoice("A project needs a name: 1-30 lowercase letters, digits and hyphens.")
    if not is_valid_safe_slug(name, max_length=MAX_NAME_LENGTH):
        raise InvalidChoice(
            f"Invalid project name {name[:40]!r}: use 1-{MAX_NAME_LENGTH} lowercase ASCII letters, "
            "digits and single hyphens, starting with a letter and ending with a letter or digit "
            "(for example 'text-classify')."
        )
    return name


def user_dir_name(username: str) -> str:
    """The on-disk folder for a user; no two user names share one.

    A name that is a valid safe slug (JupyterHub's rule: lowercase letters,
    digits and single hyphens) is its own folder.  Any other name becomes a
    readable prefix, ``--`` and 128 bits of its sha256.  A safe slug never
    contains ``--``, so the two kinds never meet, and a 128-bit hash has no
    collision anyone can search for (JupyterHub's ``safe_slug`` keeps 32 bits
    and returns some escaped names unchanged, so it is not used here).
    """
    if is_valid_safe_slug(username, max_length=63):
        return username
    prefix = re.sub(r"[^a-z0-9]+", "-", username.lower()).strip("-")[:20].strip("-") or "user"
    return f"{prefix}--{hashlib.sha256(username.encode('utf-8', 'surrogatepass')).hexdigest()[:32]}"


def migrate_user_dir(data_root: Path, username: str, user_exists) -> Path | None:
    """Move a user's folder from the old name (JupyterHub's ``safe_slug``) to :func:`user_dir_name`.

    Before this version, ``a.b`` and a user literally named ``a-b-2e7336dc`` shared
    one folder.  It moves only when no user holds the old name as their own
    (*user_exists* asks the hub); otherwise it stays for an admin to split, and
    the user starts with a new, empty folder.  Returns the new path if it moved.
    """
    old, new = safe_slug(username), user_dir_name(username)
    users = data_root / "users"
    if old == new or not (users / old).is_dir() or (users / new).exists() or user_exists(old):
        return None
    os.replace(users / old, users / new)
    return users / new


@dataclass(frozen=True)
class Project:
    """A user's project under a data root."""

    data_root: Path
    user: str
    name: str

    @property
    def relative(self) -> str:
        return f"users/{user_dir_name(self.user)}/{self.name}"

    @property
    def path(self) -> Path:
        return self.data_root / self.relative

    @property
    def record_path(self) -> Path:
        return self.path / "project.json"

    def load_record(self) -> dict | None:
        try:
            return json.loads(self.record_path.read_text())
        except FileNotFoundError:
            return None

    def save_record(self, env: str, dataset: DatasetMount | None, env_label: str = "") -> None:
        record = {"env": env, "dataset": dataset.key if dataset else None,
                  "dataset_label": dataset.label if dataset else None, "env_label": env_label or env}
        self.record_path.write_text(json.dumps(record, indent=2) + "\n")

    def create_dirs(self, uid: int, gid: int) -> None:
        """Create the project's folders owned by the workspace user (uid 1000 by default)."""
        for sub in (*PROJECT_DIRS, ".home"):
            path = self.path / sub
            path.mkdir(parents=True, exist_ok=True)
            _chown(path, uid, gid)
        for parent in (self.path, self.path.parent):
            _chown(parent, uid, gid)


def _chown(path: Path, uid: int, gid: int) -> None:
    st = path.stat()
    if (st.st_uid, st.st_gid) != (uid, gid) and os.geteuid() == 0:
        os.chown(path, uid, gid)


def base_image_export(data_root: Path, env_id: str) -> str | None:
    """The env image's `docker save` folder (written by `ws envs build`), relative to the data root."""
    relative = f"base-images/{env_id}/current"
    return relative if (data_root / relative / "manifest.json").is_file() else None


def pinned_image(data_root: Path, env) -> str:
    """A catalog env's image by the ID recorded when ``ws envs build`` built it, if recorded.

    Workspaces then start that exact image whatever a tag says later.
    """
    if not env.image.startswith("workspace-hub/"):
        return env.image
    link = data_root / "base-images" / env.id / "current"
    try:
        image_id = os.readlink(link)
    except OSError:
        return env.image
    return f"sha256:{image_id}" if re.fullmatch(r"[0-9a-f]{64}", image_id) else env.image


def mount_plan(project: Project, dataset: DatasetMount | None, base_image: str | None = None) -> list[Mount]:
    """The mounts of a workspace, in the order they are applied."""
    mounts = [Mount(f"{project.relative}/{d}", f"{WORKSPACE_ROOT}/{d}", False) for d in PROJECT_DIRS]
    mounts.append(Mount(f"{project.relative}/.home", WORKSPACE_HOME, False))
    mounts.append(Mount("help_doc", f"{WORKSPACE_ROOT}/help_doc", True))
    if base_image:
        mounts.append(Mount(base_image, BASE_IMAGE_MOUNT, True))
    if dataset:
        mounts += [Mount(dataset.mounts[split], target, True) for split, target in DATASET_TARGETS.items()
                   if split in dataset.mounts]
    return mounts



"""Model rules, without HTTP: registration from runs, visibility and sharing, aliases, deletion.

- A model folder can also be uploaded by hand (zip or tar.gz), extracted under the dataset rules.
- A succeeded run registers its model: the regular files of its model folder go into the
  content-addressed store (links, fifos and devices a run wrote there are skipped, never
  followed), under the run's name, as the next version.  Versions are immutable.
- Visibility: private, public or preset (admins), plus sharing a private model with one user
  (a grant, matched by exact name), which copies nothing.  Others see neither a private model nor its files.
- Aliases (``production``) point at one version of a model name; every move is kept.
- Deleting a version frees exactly the stored objects no other model or dataset uses.  What the
  owner is told (and a dry run tells) is their own usage the delete releases, never which objects
  are freed: that would confirm whether another user stored the same content.  Admins also see the
  freed objects.  An aliased version is deleted with its aliases, and the history says so.  A version
  that a service serves is not deleted (409).
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from workspace_hub.algorithm import NAME
from workspace_hub.contract import MAX_MODEL_BYTES, MAX_MODEL_FILES

from ..models import (Algorithm, Dataset, Model, ModelAlias, ModelAliasEvent, ModelGrant, Run, Service, Status,
                      Visibility)
from ..access import Who, can_see, require_change
from ..errors import LibraryError
from ..quota import Quota
from ..rules import TEXT, VISIBILITY, require_not_in_use, schema
from ..datasets import importer
from ..store import ObjectStore

ALIAS = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
SCHEMAS = {
    "model-edit": schema({"description": TEXT, "visibility": VISIBILITY}, []),
    "model-share": schema({"user": {"type": "string", "minLength": 1, "maxLength": 255}}, ["user"]),
}


def lineage_for(session: Session, model: Model, who: Who) -> dict:
    """The lineage a viewer who is not the owner sees: the inputs they may see themselves; no run settings,
    no digests (a manifest digest would confirm a guessed dataset's content)."""
    shown = {}
    for key, kind, item_id in (("algorithm", Algorithm, model.algorithm_id), ("dataset", Dataset, model.dataset_id),
                               ("parent", Model, model.parent_id)):
        item = session.get(kind, item_id) if item_id else None
        if item is not None and can_see(item, who) and key in model.lineage:
            shown[key] = model.lineage[key]
    return shown


def share(session: Session, model: Model, user: str, who: Who) -> None:
    """Grant one user, by exact name, sight and use of a private model (nothing is copied)."""
    require_change(model, who)
    if user not in model.shared_with:
        model.grants.append(ModelGrant(user=user, by=who.name))
    session.commit()


def unshare(session: Session, model: Model, user: str, who: Who) -> None:
    require_change(model, who)
    model.grants = [grant for grant in model.grants if grant.user != user]
    session.commit()


def model_files(folder: Path) -> list[tuple[str, Path]]:
    """The regular files under *folder*, by relative name; links and special files are left out."""
    out, total = [], 0
    for root, dirs, files in os.walk(folder, followlinks=False):
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(root, d))]
        for name in files:
            path = Path(root) / name
            info = path.lstat()
            if not stat.S_ISREG(info.st_mode):
                continue
            total += info.st_size
            if len(out) >= MAX_MODEL_FILES or total > MAX_MODEL_BYTES:
                raise LibraryError(413, "model-too-large", f"the model passes {MAX_MODEL_FILES} files or "
                                   f"{MAX_MODEL_BYTES} bytes")
            out.append((path.relative_to(folder).as_posix(), path))
    return sorted(out)


def register(session: Session, objects: ObjectStore, run: Run, folder: Path, quota: Quota | None = None) -> Model:
    """The model a succeeded run wrote, as the next version of the run's name (blocking: file copies).
    The run's owner's *quota* must hold its files (a 413 ``quota`` otherwise: nothing is stored)."""
    files = model_files(folder)
    if quota is not None:
        quota.require(session, Who(run.owner), sum(path.lstat().st_size for _, path in files),
                      what="the run's model")
    entries = []
    for name, path in files:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            digest, size = objects.add_file(path, fd)
        finally:
            os.close(fd)
        entries.append((name, digest, size))
    manifest = objects.add_manifest(entries)
    objects.build_tree(manifest)  # what a transfer-training run mounts
    versions = [int(v) for v in session.scalars(select(Model.version).where(
        Model.owner == run.owner, Model.name == run.name)) if v.isdigit()]
    model = Model(name=run.name, version=str(max(versions, default=0) + 1), owner=run.owner,
                  description=run.description, visibility=Visibility.private, status=Status.ready, progress="",
                  errors=[], run_id=run.id, algorithm_id=run.algorithm_id, dataset_id=run.dataset_id,
                  parent_id=run.parent_model_id, manifest=manifest,
                  size=sum(e[2] for e in entries), files=len(entries), metrics=run.metrics or {},
                  lineage={"run": {"id": run.id, "name": run.name}, "algorithm": run.algorithm_label,
                           "dataset": run.dataset_label, "hyperparameters": run.hyperparameters,
                           "train_ratio": run.train_ratio, "seed": run.seed, "image_digest": run.image_digest,
                           "dataset_manifests": run.dataset_manifests, "parent": run.parent_model_id})
    session.add(model)
    session.flush()
    return model


def register_upload(session: Session, objects: ObjectStore, who: Who, name: str, version: str, archive: Path,
                    staging: Path, limits, quota: Quota) -> Model:
    """A model folder uploaded by hand (zip or tar.gz), extracted under the dataset rules in the importer's
    child process; a refused archive is a 400 with the archive rule's code (blocking: call off the loop)."""
    if not re.fullmatch(NAME, name):
        raise LibraryError(400, "invalid-field", f"name must match {NAME}, such as news-classifier", "name")
    if session.scalars(select(Model.id).where(Model.owner == who.name, Model.name == name,
                                              Model.version == version)).first():
        raise LibraryError(409, "exists", f"{who.name}/{name} version {version} exists; upload a new version",
                           "version")
    result = importer.run({"model": archive}, staging, importer.MODEL, limits)
    if "crashed" in result:
        raise LibraryError(400, "import-crashed", result["crashed"])
    part = result["splits"]["model"]
    if not part["ok"]:
        raise LibraryError(400, part["code"], part["message"])
    quota.require(session, who, sum(m[2] for m in part["members"]), what="the extracted model")
    entries = []
    for member_name, staged, size, digest in part["members"]:
        objects.add(staging / "model" / staged, digest)
        entries.append((member_name, digest, size))
    manifest = objects.add_manifest(entries)
    objects.build_tree(manifest)
    model = Model(name=name, version=version, owner=who.name, description="", visibility=Visibility.private,
                  status=Status.ready, progress="", errors=[], manifest=manifest, size=sum(e[2] for e in entries),
                  files=len(entries), metrics={}, lineage={"uploaded_by": who.name})
    session.add(model)
    session.commit()
    return model




def set_alias(session: Session, model: Model, alias: str, who: Who) -> None:
    require_change(model, who)
    if not ALIAS.match(alias):
        raise LibraryError(400, "invalid-field", "an alias is 1-40 lowercase letters, digits, '-' and '_', "
                           "starting with a letter, such as production", "alias")
    current = session.scalars(select(ModelAlias).where(ModelAlias.owner == model.owner, ModelAlias.name == model.name,
                                                       ModelAlias.alias == alias)).first()
    if current is None:
        session.add(ModelAlias(owner=model.owner, name=model.name, alias=alias, model_id=model.id, set_by=who.name))
    else:
        current.model_id, current.set_by = model.id, who.name
    session.add(ModelAliasEvent(owner=model.owner, name=model.name, alias=alias, version=model.version, by=who.name))
    session.commit()


def remove_alias(session: Session, model: Model, alias: str, who: Who) -> None:
    require_change(model, who)
    current = session.scalars(select(ModelAlias).where(ModelAlias.owner == model.owner, ModelAlias.name == model.name,
                                                       ModelAlias.alias == alias, ModelAlias.model_id == model.id)).first()
    if current is None:
        raise LibraryError(404, "not-found", f"{model.name} {model.version} has no alias {alias!r}")
    session.delete(current)
    session.add(ModelAliasEvent(owner=model.owner, name=model.name, alias=alias, version=None, by=who.name))
    session.commit()


def unreferenced(session: Session, objects: ObjectStore, model: Model) -> list[str]:
    """The objects deleting *model* frees: its manifest and files that no other model or dataset references."""
    mine = {model.manifest} | _referenced(objects, model.manifest)
    others = set()
    for manifest in session.scalars(select(Model.manifest).where(Model.id != model.id, Model.manifest != "")):
        others |= {manifest} | _referenced(objects, manifest)
    for manifests in session.scalars(select(Dataset.manifests)):
        for manifest in (manifests or {}).values():
            others |= {manifest} | _referenced(objects, manifest)
    return sorted(mine - others)


def _referenced(objects: ObjectStore, manifest: str) -> set[str]:
    """The objects a manifest names; a manifest that is gone protects nothing (its list is lost with it)."""
    try:
        return {digest for _, digest, _ in objects.manifest(manifest)}
    except FileNotFoundError:
        return set()


def delete(session: Session, objects: ObjectStore, model: Model, who: Who) -> list[str]:
    """Delete a version and the objects only it used; the aliases it held are removed, in their history."""
    require_change(model, who)
    serving = session.execute(select(Service.owner, Service.name).where(Service.model_id == model.id).limit(100))
    require_not_in_use(model, [tuple(s) for s in serving], "services", "redo or delete those services first", who)
    freed = unreferenced(session, objects, model)
    for alias in session.scalars(select(ModelAlias).where(ModelAlias.model_id == model.id)):
        session.add(ModelAliasEvent(owner=model.owner, name=model.name, alias=alias.alias, version=None, by=who.name))
    session.delete(model)
    session.commit()
    for digest in freed:
        objects.path(digest).unlink(missing_ok=True)
    return freed

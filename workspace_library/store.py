"""The library's content-addressed store under ``<data root>/library/``.

- :class:`TarStore`: image tars, ``sha256/<ab>/<digest>.tar``.
- :class:`ObjectStore`: dataset (and later model) files, ``objects/<ab>/<digest>``, read-only, one copy
  per content whoever uploads it; a manifest (itself an object) lists one version's names and digests,
  and ``trees/<manifest digest>/`` is that version as a folder of hard links, mounted read-only.

Image tars:

A tar arrives in ``<root>/incoming/`` (upload, copy from a project, or
``docker save`` of a pulled image) while it is hashed, and moves to its digest
path with one rename when it is complete.  A tar that never completes is never
renamed, so it never becomes a record: :meth:`TarStore.clean_incoming` removes
such leftovers when the service starts.  Stored tars no record points at are
removed by :meth:`TarStore.remove_unreferenced`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path

CHUNK = 1024 * 1024


class TooLarge(Exception):
    """A tar passed the configured size limit."""


class Incoming:
    """A tar being received: write chunks, then :meth:`commit` (or :meth:`discard`)."""

    def __init__(self, store: TarStore, limit: int):
        self.store = store
        self.limit = limit
        self.path = store.root / "incoming" / f"{uuid.uuid4().hex}.part"
        self.file = open(self.path, "wb")
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.limit:
            raise TooLarge(f"the tar passes the {self.limit}-byte limit")
        self.hash.update(data)
        self.file.write(data)

    def commit(self) -> tuple[str, int]:
        """Move the complete tar to its digest path; return (sha256, size)."""
        self.file.close()
        digest = self.hash.hexdigest()
        target = self.store.path(digest)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.path, target)  # the same bytes may already be there: replacing is harmless
        return digest, self.size

    def discard(self) -> None:
        self.file.close()
        self.path.unlink(missing_ok=True)


class TarStore:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        (self.root / "incoming").mkdir(parents=True, exist_ok=True)
        (self.root / "sha256").mkdir(exist_ok=True)

    def path(self, digest: str) -> Path:
        return self.root / "sha256" / digest[:2] / f"{digest}.tar"

    def receive(self, limit: int) -> Incoming:
        return Incoming(self, limit)

    def copy_in(self, source, limit: int) -> tuple[str, int]:
        """Copy an open binary file into the store while hashing it."""
        incoming = self.receive(limit)
        try:
            while chunk := source.read(CHUNK):
                incoming.write(chunk)
            return incoming.commit()
        except BaseException:
            incoming.discard()
            raise

    def link_in(self, source: Path) -> tuple[str, int]:
        """Store the platform's own tar *source* (a preset ``ws up`` built) by a hard link where the
        filesystem allows, else by a copy; return (sha256, size).  The builder replaces such files, never
        rewrites them, so the stored bytes stay what was hashed."""
        partial = self.root / "incoming" / f"{uuid.uuid4().hex}.part"
        try:
            os.link(source, partial)
        except OSError:
            shutil.copyfile(source, partial)
        try:
            digest = hashlib.sha256()
            with open(partial, "rb") as f:
                while chunk := f.read(CHUNK):
                    digest.update(chunk)
            target = self.path(digest.hexdigest())
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(partial, target)  # a no-op when both are links to one file already: then unlink it
        finally:
            partial.unlink(missing_ok=True)
        return digest.hexdigest(), target.stat().st_size

    def clean_incoming(self) -> list[Path]:
        """Remove partial tars (from interrupted uploads or a crash); return what was removed."""
        removed = sorted((self.root / "incoming").glob("*.part"))
        for path in removed:
            path.unlink(missing_ok=True)
        return removed

    def remove_unreferenced(self, referenced: set[str]) -> list[Path]:
        removed = [p for p in (self.root / "sha256").glob("*/*.tar") if p.stem not in referenced]
        for path in removed:
            path.unlink(missing_ok=True)
        return removed


class ObjectStore:
    """Files by digest, manifests, and trees of hard links built from a manifest.

    A manifest is canonical JSON, ``{"files": [[name, sha256, size], ...]}`` sorted by name, so the
    same content always has the same manifest digest and tree.  A new version that changes one file
    adds that file's object and a new manifest, nothing else.  Trees are built in a temporary folder
    and renamed into place, so a tree that exists is complete; hard links need no copy and no space.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        for folder in ("objects", "trees"):
            (self.root / folder).mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        return self.root / "objects" / digest[:2] / digest

    def tree(self, manifest: str) -> Path:
        return self.root / "trees" / manifest

    def add(self, staged: Path, digest: str) -> bool:
        """Move a staged file (already hashed) into the store; False when that content was stored."""
        target = self.path(digest)
        if target.exists():
            staged.unlink(missing_ok=True)
            return False
        target.parent.mkdir(exist_ok=True)
        os.chmod(staged, 0o444)
        os.replace(staged, target)
        return True

    def add_bytes(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        target = self.path(digest)
        if not target.exists():
            target.parent.mkdir(exist_ok=True)
            part = target.with_name(f".{uuid.uuid4().hex}.part")
            part.write_bytes(data)
            self.add(part, digest)
        return digest

    def add_stream(self, source) -> tuple[str, int]:
        """Copy an open binary file into the store while hashing it; return (digest, size)."""
        digest, size = hashlib.sha256(), 0
        part = self.root / "objects" / f".{uuid.uuid4().hex}.part"
        try:
            with open(part, "wb") as out:
                while chunk := source.read(CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
            self.add(part, digest.hexdigest())
        finally:
            part.unlink(missing_ok=True)
        return digest.hexdigest(), size

    def add_file(self, path: Path, fd: int) -> tuple[str, int]:
        """Store the regular file *path*, open at *fd* (opened without following links): hashed in place and
        hard-linked into the store when it is on the store's filesystem (a run's model folder is), else
        copied.  The link is checked to be the very file that was hashed, or the copy is made from *fd*."""
        import stat as stat_module

        info = os.fstat(fd)
        if not stat_module.S_ISREG(info.st_mode):
            raise OSError("not a regular file")
        digest, size = hashlib.sha256(), 0
        while chunk := os.read(fd, CHUNK):
            digest.update(chunk)
            size += len(chunk)
        target = self.path(digest.hexdigest())
        if not target.exists():
            target.parent.mkdir(exist_ok=True)
            part = target.with_name(f".{uuid.uuid4().hex}.part")
            linked = False
            if info.st_dev == os.stat(self.root / "objects").st_dev:
                os.link(path, part, follow_symlinks=False)
                same = os.lstat(part)
                linked = (same.st_ino, same.st_dev) == (info.st_ino, info.st_dev)
                if not linked:  # the path changed since it was opened: copy what was hashed instead
                    part.unlink()
            if linked:
                os.chmod(part, 0o444)
                os.replace(part, target)
            else:
                os.lseek(fd, 0, os.SEEK_SET)
                with os.fdopen(os.dup(fd), "rb") as source:
                    self.add_stream(source)
        return digest.hexdigest(), size

    def add_manifest(self, files: list[tuple[str, str, int]]) -> str:
        document = {"files": sorted([name, digest, size] for name, digest, size in files)}
        return self.add_bytes(json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode())

    def manifest(self, digest: str) -> list[tuple[str, str, int]]:
        return [tuple(f) for f in json.loads(self.path(digest).read_bytes())["files"]]

    def build_tree(self, manifest: str) -> Path:
        """The tree of *manifest*, built once (a second call finds it)."""
        target = self.tree(manifest)
        if target.is_dir():
            return target
        building = self.root / "trees" / f".building-{uuid.uuid4().hex}"
        made = set()
        for name, digest, _ in self.manifest(manifest):
            path = building / name
            if path.parent not in made:
                path.parent.mkdir(parents=True, exist_ok=True)
                made.add(path.parent)
            os.link(self.path(digest), path)
        building.mkdir(exist_ok=True)  # an empty split is an empty folder
        try:
            os.rename(building, target)
        except OSError:  # built meanwhile by another job: keep that one
            shutil.rmtree(building, ignore_errors=True)
        return target

    def clean_building(self) -> None:
        for path in (self.root / "trees").glob(".building-*"):
            shutil.rmtree(path, ignore_errors=True)

    def stored_bytes(self) -> int:
        return sum(p.stat().st_size for p in (self.root / "objects").glob("*/*"))

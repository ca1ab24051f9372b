"""Image tars kept under the data root, content-addressed: ``<root>/sha256/<ab>/<digest>.tar``.

A tar arrives in ``<root>/incoming/`` (upload, copy from a project, or
``docker save`` of a pulled image) while it is hashed, and moves to its digest
path with one rename when it is complete.  A tar that never completes is never
renamed, so it never becomes a record: :meth:`TarStore.clean_incoming` removes
such leftovers when the service starts.  Stored tars no record points at are
removed by :meth:`TarStore.remove_unreferenced`.
"""

from __future__ import annotations

import hashlib
import os
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

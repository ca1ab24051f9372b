"""Every byte a user makes the library keep counts against one quota, checked before the bytes arrive.

What counts: image tars (algorithm versions and base envs), datasets (their archives' declared sizes, so a
larger ``Upload-Length`` is checked before a byte of it is accepted, then their extracted files, checked
before they are stored), models, whether uploaded by hand or registered from a run, and what a run writes
while it trains (a guard stops it past what is left), and uploads still arriving (:class:`Reservations`).
Sizes are what the user's records hold: content stored once for two users still counts for each, so a
quota never tells one user what another stored.  Admins have no quota; the per-file limit holds for
everyone.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .access import Who
from .errors import LibraryError
from .models import Algorithm, BaseEnv, Dataset, Image, Model


def size_text(size: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size} bytes" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def bytes_used(session: Session, who: Who) -> int:
    """The bytes the records of *who* hold."""
    def total(query) -> int:
        return int(session.scalar(query) or 0)

    used = total(select(func.coalesce(func.sum(Dataset.size), 0)).where(Dataset.owner == who.name))
    used += total(select(func.coalesce(func.sum(Model.size), 0)).where(Model.owner == who.name))
    for kind, key in ((Algorithm, Image.algorithm_id), (BaseEnv, Image.env_id)):
        used += total(select(func.coalesce(func.sum(Image.size), 0)).join(kind, key == kind.id)
                      .where(kind.owner == who.name))
    return used


class Reservations:
    """Bytes of uploads still arriving, per user: counted as used until the upload is a record or is gone, so
    that two uploads at once cannot each take what is left."""

    def __init__(self):
        self._lock = threading.Lock()
        self._held: dict[str, int] = {}

    def held(self, user: str) -> int:
        with self._lock:
            return self._held.get(user, 0)

    def take(self, user: str, size: int):
        """Hold *size* bytes for *user*; return the function that lets them go (once)."""
        with self._lock:
            self._held[user] = self._held.get(user, 0) + size
        released = threading.Event()

        def release() -> None:
            if not released.is_set():
                released.set()
                with self._lock:
                    self._held[user] -= size

        return release


@dataclass(frozen=True)
class Quota:
    """The admin's limits: bytes per user (``LibraryService.user_quota_bytes``) and per file
    (``LibraryService.max_upload_bytes``), and the uploads in flight."""

    per_user: int
    per_file: int
    reservations: Reservations = field(default_factory=Reservations)

    def left(self, session: Session, who: Who, releasing: int = 0) -> int | None:
        """What *who* may still add (None: no quota), when *releasing* bytes of theirs are replaced."""
        if who.admin:
            return None
        used = bytes_used(session, who) + self.reservations.held(who.name)
        return max(0, self.per_user - used + releasing)

    def room(self, session: Session, who: Who) -> int:
        """The most one upload of *who* may send now: the per-file limit or what the quota leaves."""
        left = self.left(session, who)
        return self.per_file if left is None else min(self.per_file, left)

    def require(self, session: Session, who: Who, size: int, releasing: int = 0, what: str = "this upload",
                field: str | None = None) -> None:
        """A 413 naming the limit and the usage unless *size* more bytes (replacing *releasing*) fit."""
        if size > self.per_file:
            raise LibraryError(413, "too-large", f"{what} is {size_text(size)}; the limit per file is "
                               f"{size_text(self.per_file)}", field)
        left = self.left(session, who, releasing)
        if left is not None and size > left:
            used = bytes_used(session, who) + self.reservations.held(who.name) - releasing
            raise LibraryError(413, "quota", f"{what} needs {size_text(size)}, but your quota is "
                               f"{size_text(self.per_user)} and you use {size_text(used)} ({size_text(left)} "
                               "left); delete models, datasets or algorithm versions you no longer need, or ask "
                               "an admin for a larger quota", field)

"""Uploads and imports of dataset archives: receive, extract and check, store, build the tree.

Files under ``<data root>/library/``:

``uploads/<key>/<split>.part``  an archive as it arrives (its size is the upload offset), kept across
                                 restarts so a dropped upload resumes; removed once imported
``uploads/<key>/staging/``       the importer's output, moved into the store or removed
``objects/``, ``trees/``         the content-addressed store (:class:`..store.ObjectStore`)

An import runs in a thread of a small pool, which waits on the importer's
child process (:mod:`.importer`) and then moves the staged files into the
store.  A dataset is ``validating`` only while an import owns it; after a
restart :meth:`Imports.recover` starts again every import whose archives are
complete, from the archives (the staging folder is removed first).
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from ..access import Who
from ..errors import LibraryError
from ..models import Dataset, Status
from ..quota import Quota
from ..store import CHUNK, ObjectStore
from . import importer
from .archive import ArchiveLimits
from .rules import splits

log = logging.getLogger("workspace_library")


class Imports:
    def __init__(self, sessions: sessionmaker, root: Path, limits: ArchiveLimits, workers: int = 1,
                 quota: Quota | None = None):
        self.quota = quota  # the owners', which extracted files count against
        self.sessions = sessions
        self.root = root
        self.objects = ObjectStore(root)
        self.limits = limits
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="dataset-import")
        self._hashes: dict[tuple[str, str], tuple[int, object]] = {}  # (key, split) -> (offset, sha256)
        self._receiving: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self.last_peak_rss_kib = 0  # the importer child's, for the logs and benchmarks/datasets.py

    # -- uploads -------------------------------------------------------------------------------
    def part(self, dataset: Dataset, split: str) -> Path:
        return self.root / "uploads" / dataset.key / f"{split}.part"

    def offset(self, dataset: Dataset, split: str) -> int:
        try:
            return self.part(dataset, split).stat().st_size
        except FileNotFoundError:
            return 0

    def claim(self, key: str, split: str) -> bool:
        """One request at a time appends to an archive."""
        with self._lock:
            if (key, split) in self._receiving:
                return False
            self._receiving.add((key, split))
            return True

    def release(self, key: str, split: str) -> None:
        with self._lock:
            self._receiving.discard((key, split))

    def open_part(self, dataset: Dataset, split: str, offset: int):
        """The archive's file, opened to append at *offset* (0 starts over), and its running hash.
        After a restart the hash of what is on disk is computed again (blocking: call off the loop)."""
        path = self.part(dataset, split)
        path.parent.mkdir(parents=True, exist_ok=True)
        if offset == 0:
            path.unlink(missing_ok=True)
        known = self._hashes.get((dataset.key, split))
        if known is None or known[0] != offset:
            digest = hashlib.sha256()
            if offset:
                with open(path, "rb") as f:
                    while chunk := f.read(CHUNK):
                        digest.update(chunk)
            known = (offset, digest)
        return open(path, "ab"), known[1]

    def received(self, dataset: Dataset, split: str, digest) -> None:
        self._hashes[(dataset.key, split)] = (self.offset(dataset, split), digest)

    def complete(self, dataset: Dataset) -> bool:
        """Whether every archive has arrived; if so, record their digests (the caller commits)."""
        uploads = dict(dataset.uploads)
        for split in splits(dataset):
            if self.offset(dataset, split) != uploads[split]["size"]:
                return False
        for split in splits(dataset):
            offset, digest = self._hashes.pop((dataset.key, split), (None, None))
            uploads[split] = {**uploads[split], "sha256": digest.hexdigest() if digest else None}
        dataset.uploads = uploads
        return True

    def discard(self, dataset: Dataset) -> None:
        shutil.rmtree(self.root / "uploads" / dataset.key, ignore_errors=True)

    # -- imports -------------------------------------------------------------------------------
    def submit(self, dataset_id: int, online: bool = False):
        """Import in the pool; *online* brings the dataset online once it is ready (presets)."""
        return self.pool.submit(self._run_logged, dataset_id, online)

    def recover(self) -> list[int]:
        """After a restart: remove upload folders no upload or import needs (a stop between an import's end
        and its cleanup leaves one), then start again the imports a stop interrupted."""
        self.objects.clean_building()
        with self.sessions() as session:
            live = set(session.scalars(select(Dataset.key).where(Dataset.status.in_(
                [Status.uploading, Status.validating]))))
        uploads = self.root / "uploads"
        for folder in uploads.iterdir() if uploads.is_dir() else ():
            if folder.name not in live:
                shutil.rmtree(folder, ignore_errors=True)
            else:
                shutil.rmtree(folder / "staging", ignore_errors=True)
        with self.sessions() as session:
            ids = list(session.scalars(select(Dataset.id).where(Dataset.status == Status.validating)))
            for dataset in session.scalars(select(Dataset).where(Dataset.id.in_(ids))):
                dataset.progress = "resumed after a service restart"
            session.commit()
        for dataset_id in ids:
            self.submit(dataset_id)
        return ids

    def _run_logged(self, dataset_id: int, online: bool) -> None:
        try:
            self._import(dataset_id, online)
        except Exception as e:  # an import must end in a final state whatever happens
            log.exception("import of dataset %s crashed", dataset_id)
            self._finish(dataset_id, Status.failed, [{"code": "internal", "message": f"the import stopped: {e}",
                                                      "file": None, "line": None, "split": None}])

    def _progress(self, dataset_id: int, text: str) -> None:
        with self.sessions() as session:
            dataset = session.get(Dataset, dataset_id)
            if dataset is not None:
                dataset.progress = text
                session.commit()

    def _finish(self, dataset_id: int, status: Status, errors: list, **columns) -> None:
        with self.sessions() as session:
            dataset = session.get(Dataset, dataset_id)
            if dataset is None:  # deleted meanwhile
                return
            dataset.status, dataset.errors, dataset.progress = status, errors, ""
            for key, value in columns.items():
                setattr(dataset, key, value)
            session.commit()
            self.discard(dataset)

    def _import(self, dataset_id: int, online: bool) -> None:
        with self.sessions() as session:
            dataset = session.get(Dataset, dataset_id)
            if dataset is None or dataset.status != Status.validating:
                return
            key, fmt, wanted = dataset.key, dataset.format, splits(dataset)
            archives = {split: self.part(dataset, split) for split in wanted}
        staging = self.root / "uploads" / key / "staging"
        shutil.rmtree(staging, ignore_errors=True)
        self._progress(dataset_id, "extracting and checking")
        result = importer.run(archives, staging, fmt, self.limits)
        self.last_peak_rss_kib = result.get("peak_rss_kib", 0)
        log.info("dataset %s: the importer peaked at %d MiB", dataset_id, self.last_peak_rss_kib // 1024)
        if "crashed" in result:
            shutil.rmtree(staging, ignore_errors=True)
            return self._finish(dataset_id, Status.failed, [{"code": "import-crashed", "message": result["crashed"],
                                                              "file": None, "line": None, "split": None}])
        errors, report = [], {}
        for split, part in result["splits"].items():
            if not part["ok"]:
                errors.append({"code": part["code"], "message": part["message"], "file": part["entry"],
                               "line": None, "split": split})
                continue
            errors += [{**p, "split": split} for p in part["report"]["problems"]]
            members = part["members"]
            report[split] = {**{k: v for k, v in part["report"].items() if k != "problems"},
                             "files": len(members), "bytes": sum(m[2] for m in members), "dropped": part["dropped"]}
        extracted = sum(r["bytes"] for r in report.values())
        refusal = None if errors else self._over_quota(dataset_id, extracted)
        if refusal is not None:
            errors.append({"code": refusal.code, "message": refusal.message, "file": None, "line": None,
                           "split": None})
        if errors:
            shutil.rmtree(staging, ignore_errors=True)
            return self._finish(dataset_id, Status.failed, errors, report=report)
        self._progress(dataset_id, "storing")
        manifests = {}
        for split, part in result["splits"].items():
            for _, staged, _, digest in part["members"]:
                self.objects.add(staging / split / staged, digest)
            manifests[split] = self.objects.add_manifest([(name, digest, size) for name, _, size, digest
                                                          in part["members"]])
            self.objects.build_tree(manifests[split])
        shutil.rmtree(staging, ignore_errors=True)
        self._finish(dataset_id, Status.online if online else Status.ready, [], manifests=manifests, report=report,
                     was_online=online, size=extracted)  # what the library keeps from now on: the files

    def _over_quota(self, dataset_id: int, extracted: int) -> LibraryError | None:
        """The refusal when the extracted files (which replace the archives the quota counted) pass what the
        owner's quota leaves: an archive that expands is checked before its files are stored."""
        if self.quota is None:
            return None
        with self.sessions() as session:
            dataset = session.get(Dataset, dataset_id)
            try:
                self.quota.require(session, Who(dataset.owner), extracted, releasing=dataset.size,
                                   what="the extracted dataset")
            except LibraryError as e:
                return e
        return None

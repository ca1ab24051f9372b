"""The datasets' REST endpoints (``<prefix>api/datasets...``), in ``openapi.yaml`` with the others.

Uploads are resumable with a small offset protocol shaped like tus's core:

- ``POST api/datasets`` declares the archives' sizes (the quota counts them);
- ``HEAD api/datasets/<id>/archives/<split>`` answers ``Upload-Offset`` (bytes received) and
  ``Upload-Length``;
- ``PATCH`` with ``Upload-Offset: <n>`` and ``Content-Type: application/offset+octet-stream`` appends
  the body at *n* (a mismatch is a 409 that carries the right offset).  A dropped connection keeps
  what arrived; the client asks HEAD and goes on.  When every archive is complete the import starts.

Bytes are hashed as they arrive.  Only an authenticated owner may send a large
body, and never more than the archive's declared remaining bytes.
"""

from __future__ import annotations

import re

from tornado import web

from .. import access, rules
from ..base import ListHandler, RecordHandler as ItemHandler, iso_time
from ..models import Dataset, Status, Visibility
from ..errors import LibraryError
from ..streaming import send_archive, stored
from . import rules as dataset_rules
from .formats import is_text

FILTERS = {"owner": str, "status": Status, "visibility": Visibility, "format": str, "purpose_first": str,
           "purpose_second": str, "name": str, "version": str, "test_mode": str}
SPLIT = r"(?P<split>train|test)"
OCTETS = ("application/offset+octet-stream", "application/octet-stream")
IMAGE_TYPES = {b"\x89PNG": "image/png", b"\xff\xd8\xff": "image/jpeg", b"GIF8": "image/gif", b"BM": "image/bmp"}


def mounts(dataset: Dataset) -> dict:
    """Each split's read-only tree, relative to the data root (what a workspace or run mounts)."""
    if dataset.status not in (Status.ready, Status.online, Status.offline):
        return {}
    return {split: f"library/trees/{digest}" for split, digest in dataset.manifests.items()}


def dataset_json(dataset: Dataset, detail: bool = True, received: dict | None = None) -> dict:
    data = {"id": dataset.id, "key": dataset.key, "name": dataset.name, "version": dataset.version,
            "owner": dataset.owner, "description": dataset.description,
            "purpose": {"first": dataset.purpose_first, "second": dataset.purpose_second},
            "annotation": dataset.annotation, "format": dataset.format, "test_mode": dataset.test_mode,
            "visibility": dataset.visibility.value, "status": dataset.status.value, "progress": dataset.progress,
            "errors": dataset.errors, "was_online": dataset.was_online, "size": dataset.size,
            "uploads": {split: {**u, **({"received": received[split]} if received else {})}
                        for split, u in dataset.uploads.items()},
            "mounts": mounts(dataset), "created": iso_time(dataset.created), "updated": iso_time(dataset.updated)}
    if detail:
        data["report"] = dataset.report
        data["manifests"] = dataset.manifests
    else:
        data["counts"] = {split: sum((r.get("counts") or {}).values()) for split, r in dataset.report.items()}
    return data


class DatasetMixin:
    kind = Dataset

    async def manifest(self, dataset: Dataset, split: str) -> list:
        """The split's files, read off the loop; a split that is not (or no longer) stored is a 404."""
        if split not in dataset.manifests:
            raise LibraryError(404, "not-found", f"{dataset.name} has no stored {split} split (status "
                               f"{dataset.status.value})", "split")
        try:
            return await self.service.offload(self.service.imports.objects.manifest, dataset.manifests[split])
        except FileNotFoundError:
            raise LibraryError(404, "content-missing", f"the stored files of {dataset.name} are missing; ask an "
                               "admin to restore the data root, or upload the dataset again") from None

    def as_json(self, dataset, detail: bool = True):
        received = ({s: self.service.imports.offset(dataset, s) for s in dataset.uploads}
                    if dataset.status == Status.uploading else None)
        return dataset_json(dataset, detail, received)


class DatasetListHandler(DatasetMixin, ListHandler):
    filters = FILTERS

    def post(self):
        who = self.who
        data = rules.check_input(dataset_rules.SCHEMAS["dataset-create"], self.json_body())
        uploads = dataset_rules.check_archives(data)
        size = sum(u["size"] for u in uploads.values())
        self.service.quota.require(self.db, who, size, what="the archives", field="archives")
        fields = {k: v for k, v in data.items() if k != "archives"}
        dataset = rules.create(self.db, Dataset, who, fields, status=Status.uploading, uploads=uploads, size=size,
                               manifests={}, report={})
        self.send(self.as_json(dataset), 201)


class DatasetItemHandler(DatasetMixin, ItemHandler):
    def patch(self, item_id):
        dataset = self.item(item_id)
        access.require_change(dataset, self.who)
        data = rules.check_input(dataset_rules.SCHEMAS["dataset-edit"], self.json_body())
        dataset_rules.check_edit(dataset, data)
        if data.get("test_mode", dataset.test_mode) != dataset.test_mode:
            raise LibraryError(409, "immutable", "the test-set mode is chosen when the dataset is created; create "
                               "a new version", "test_mode")
        self.send(self.as_json(rules.edit(self.db, dataset, self.who, data)))

    async def delete(self, item_id):
        dataset = self.item(item_id)
        rules.check_deletable(dataset, self.who)
        rules.require_no_active_runs(self.db, dataset, self.who)
        key = dataset.key
        self.release_db()
        await self.service.offload(self.service.check_unused, dataset)
        dataset = self.item(item_id)
        if dataset.key != key:
            raise LibraryError(409, "changed", "the dataset changed meanwhile; try again")
        self.service.imports.discard(dataset)
        self.db.delete(dataset)
        self.db.commit()
        self.set_status(204)
        self.finish()


class DatasetStatusHandler(DatasetMixin, ItemHandler):
    """POST .../online or .../offline."""

    SUPPORTED_METHODS = ("POST",)

    def post(self, item_id, action):
        dataset = self.item(item_id)
        rules.set_online(self.db, dataset, self.who, action == "online")
        self.send(self.as_json(dataset))


def _header_int(handler, name: str) -> int | None:
    raw = handler.request.headers.get(name)
    if raw is None:
        return None
    if not re.fullmatch(r"\d{1,15}", raw.strip()):
        raise LibraryError(400, "invalid-header", f"{name} must be a whole number of bytes", name)
    return int(raw)


@web.stream_request_body
class ArchiveHandler(DatasetMixin, ItemHandler):
    """HEAD: how much of the archive arrived.  PATCH: append bytes at Upload-Offset."""

    SUPPORTED_METHODS = ("HEAD", "PATCH")
    file = digest = refusal = offset_hint = None
    claimed = False

    def write_error(self, status_code, **kwargs):
        if self.offset_hint is not None:
            self.set_header("Upload-Offset", str(self.offset_hint))
        super().write_error(status_code, **kwargs)

    def set_default_headers(self):
        super().set_default_headers()
        self.set_header("Cache-Control", "no-store")

    def head(self, item_id, split):
        dataset = self.item(item_id)
        if split not in dataset.uploads:
            raise LibraryError(404, "not-found", f"{dataset.name} has no {split} archive")
        self.set_header("Upload-Offset", str(self.service.imports.offset(dataset, split)))
        self.set_header("Upload-Length", str(dataset.uploads[split]["size"]))
        self.finish()

    async def prepare(self):
        if self.request.method != "PATCH":
            return
        try:
            await self._prepare_patch()
        except LibraryError as e:
            self.refuse_upload(e)
        finally:
            self.release_db()

    async def _prepare_patch(self):
        who = self.who
        split = self.path_kwargs["split"]
        dataset = access.get_visible(self.db, Dataset, int(self.path_kwargs["item_id"]), who)
        access.require_change(dataset, who)
        if self.request.headers.get("Content-Type", "").split(";")[0].strip() not in OCTETS:
            raise LibraryError(415, "content-type", f"send the bytes as {OCTETS[0]}")
        offset = _header_int(self, "Upload-Offset")
        if offset is None:
            raise LibraryError(400, "invalid-header", "send Upload-Offset: the bytes already received (HEAD tells)",
                               "Upload-Offset")
        imports = self.service.imports
        current = imports.offset(dataset, split) if split in dataset.uploads else 0
        length = _header_int(self, "Upload-Length")
        if offset not in (0, current):
            self.offset_hint = current
            raise LibraryError(409, "offset", f"{current} bytes of this archive have arrived; send from there",
                               "Upload-Offset")
        if length is not None and split in dataset.uploads and length != dataset.uploads[split]["size"]:
            # a new declared size counts against the quota before it is kept
            declared = sum(u["size"] for s, u in dataset.uploads.items() if s != split) + length
            self.service.quota.require(self.db, who, declared, releasing=dataset.size, what="the archives",
                                       field="Upload-Length")
        dataset_rules.start_upload(dataset, split, offset, length)
        remaining = dataset.uploads[split]["size"] - offset
        sent = int(self.request.headers.get("Content-Length") or 0)
        if sent > remaining:
            raise LibraryError(413, "too-large", f"the body is {sent} bytes but only {remaining} remain of the "
                               "declared archive; declare the new size with Upload-Length at offset 0",
                               "Content-Length")
        self.db.commit()
        if not imports.claim(dataset.key, split):
            raise LibraryError(409, "busy", "another request is uploading this archive; wait for it or let it "
                               "time out")
        self.claimed, self.key, self.split, self.dataset_id = True, dataset.key, split, dataset.id
        self.file, self.digest = await self.service.offload(imports.open_part, dataset, split, offset)
        self.request.connection.set_max_body_size(remaining)

    def data_received(self, chunk):
        if self.file is not None:
            self.digest.update(chunk)
            self.file.write(chunk)

    def _close(self):
        if self.file is not None:
            self.file.close()
            self.file = None
            self.service.imports.received(self.db.get(Dataset, self.dataset_id), self.split, self.digest)
            self.release_db()
        if self.claimed:
            self.service.imports.release(self.key, self.split)
            self.claimed = False

    def on_connection_close(self):  # a dropped upload keeps what arrived
        self._close()

    def on_finish(self):
        self._close()
        super().on_finish()

    def patch(self, item_id, split):
        if self.refusal is not None:
            raise self.refusal
        self._close()
        dataset = self.db.get(Dataset, self.dataset_id)
        imports = self.service.imports
        self.set_header("Upload-Offset", str(imports.offset(dataset, split)))
        if dataset.status == Status.uploading and imports.complete(dataset):
            dataset.status, dataset.progress = Status.validating, "queued"
            self.db.commit()
            imports.submit(dataset.id)
        self.set_status(204)
        self.finish()


class DownloadHandler(DatasetMixin, ItemHandler):
    """GET ?split=train|test: the split as a zip, streamed as it is written."""

    SUPPORTED_METHODS = ("GET",)

    async def get(self, item_id):
        dataset = self.item(item_id)
        split = self.get_query_argument("split", "train")
        files = await self.manifest(dataset, split)
        objects = self.service.imports.objects
        filename = re.sub(r"[^A-Za-z0-9._-]", "_", f"{dataset.name}-{dataset.version}-{split}.zip")
        self.release_db()
        await send_archive(self, files, stored(objects.path), filename)


class FileHandler(DatasetMixin, ItemHandler):
    """GET one file of a split (sample previews).  Only images the magic bytes prove are shown inline;
    everything else is text/plain or a download, and a sandbox CSP keeps uploaded content inert."""

    SUPPORTED_METHODS = ("GET",)

    async def get(self, item_id, split, path):
        dataset = self.item(item_id)
        files = await self.manifest(dataset, split)
        objects = self.service.imports.objects
        found = next((f for f in files if f[0] == path), None)
        if found is None:
            raise LibraryError(404, "not-found", f"{path[:120]!r} is not a file of {dataset.name}")
        data = await self.service.offload(objects.path(found[1]).read_bytes)
        kind = next((t for magic, t in IMAGE_TYPES.items() if data.startswith(magic)), None)
        self.set_header("Content-Security-Policy", "sandbox; default-src 'none'")
        if kind:
            self.set_header("Content-Type", kind)
        elif is_text(data[:512]):
            self.set_header("Content-Type", "text/plain; charset=utf-8")
        else:
            self.set_header("Content-Type", "application/octet-stream")
            self.set_header("Content-Disposition", "attachment")
        self.finish(data)


class UsersHandler(DatasetMixin, ItemHandler):
    """GET: the running servers that mount this dataset (names for the owner and admins, a count for others)."""

    SUPPORTED_METHODS = ("GET",)

    async def get(self, item_id):
        dataset = self.item(item_id)
        mine = access.owns(dataset, self.who)
        key = dataset.key
        self.release_db()
        servers = await self.service.offload(self.service.servers_using, "dataset", key)
        self.send({"count": len(servers), "servers": servers if mine else []})


ITEM = r"(?P<item_id>\d{1,9})"
ROUTES = [
    ("api/datasets", DatasetListHandler),
    (f"api/datasets/{ITEM}", DatasetItemHandler),
    (f"api/datasets/{ITEM}/(?P<action>online|offline)", DatasetStatusHandler),
    (f"api/datasets/{ITEM}/archives/{SPLIT}", ArchiveHandler),
    (f"api/datasets/{ITEM}/download", DownloadHandler),
    (f"api/datasets/{ITEM}/files/{SPLIT}/(?P<path>.+)", FileHandler),
    (f"api/datasets/{ITEM}/users", UsersHandler),
]
OPENAPI_SCHEMAS = {"DatasetCreate": dataset_rules.SCHEMAS["dataset-create"],
                   "DatasetEdit": dataset_rules.SCHEMAS["dataset-edit"]}

"""Handlers and rules shared by the records that hold image tars: algorithm versions and base envs.

Each is created as a draft, gets its tars by upload (multipart, streamed: python-multipart parses the
parts as they arrive and the file part is hashed into the store's ``incoming/`` folder; only a complete
part becomes a record) or by a pull, is validated, and goes online.  ``algorithms/`` and ``envs/`` bind
these handlers to their ``kind``, schemas and filters.

Every item tar the engine holds has one platform name, ``algorithms/<key>/<name>:<version>-<role>`` or
``envs/<key>/<name>:<version>`` (:func:`platform_tag`); no upload or pull may name one
(:func:`platform_repository`).
"""

from __future__ import annotations

import os

from python_multipart.multipart import MultipartParser, parse_options_header
from sqlalchemy.orm import Session
from tornado import web

from workspace_hub.contract import TAR_NAME

from . import access, rules
from .base import MULTIPART_SLACK, ListHandler, RecordHandler, iso_time
from .errors import LibraryError
from .models import Algorithm, BaseEnv, Image, ImageStatus, Status
from .store import TooLarge

# Repositories the platform itself names: never a pull source (docker.io's spellings included).
PLATFORM_NAMESPACES = ("workspace-hub/", "algorithms/", "envs/")
ROLES = {Algorithm: ("train", "predict"), BaseEnv: ("env",)}  # the image tars each kind of item takes


def platform_tag(item, role: str) -> str:
    """``algorithms/<key>/<name>:<version>-<role>`` or ``envs/<key>/<name>:<version>``: one item, one name."""
    version = "".join(c if c.isalnum() or c in "._-" else "-" for c in item.version)
    if isinstance(item, Algorithm):
        return f"algorithms/{item.key}/{item.name}:{version}-{role}"
    return f"envs/{item.key}/{item.name}:{version}"


def platform_repository(reference: str, registry: str = "") -> bool:
    """Whether *reference* names one of the platform's repositories, however it is spelled (on Docker Hub,
    or on the site's *registry*, where the library pushes them)."""
    name = reference.lower()
    hosts = ("docker.io/", "index.docker.io/", "registry-1.docker.io/", *([f"{registry.lower()}/"] if registry else []))
    for prefix in hosts:
        name = name.removeprefix(prefix)
    name = name.removeprefix("library/")
    return name.startswith(PLATFORM_NAMESPACES)


def stored_filename(item, role: str) -> str:
    """The name the checks apply to a tar that came without one that follows the naming rule."""
    return f"env-{item.name}.tar" if role == "env" else f"{role}-{item.name}-{item.device}.tar"


def start_validation(session: Session, validations, item, images: list, online: bool = False) -> None:
    """Attach stored *images* to *item* and hand it to the validations (to go *online* once it passes)."""
    if item.status == Status.validating:
        raise LibraryError(409, "validating", "Validation is running; wait for it to end.")
    if item.was_online:
        raise LibraryError(409, "immutable", f"{item.name} {item.version} has been online; its images are "
                           "frozen. Publish a new version.")
    for image in images:
        for old in [i for i in item.images if i.role == image.role]:
            item.images.remove(old)
        item.images.append(image)
    item.status, item.errors, item.progress = Status.validating, [], "queued"
    session.commit()
    validations.submit(type(item), item.id, online)


def image_json(image: Image) -> dict:
    return {"id": image.id, "role": image.role, "filename": image.filename, "sha256": image.sha256,
            "size": image.size, "tag": image.tag, "status": image.status.value,
            "errors": (image.report or {}).get("errors", []), "warnings": (image.report or {}).get("warnings", [])}


def item_json(item, detail: bool = True) -> dict:
    data = {"id": item.id, "name": item.name, "version": item.version, "owner": item.owner,
            "description": item.description, "framework": item.framework, "device": item.device,
            "visibility": item.visibility.value, "status": item.status.value, "progress": item.progress,
            "errors": item.errors, "smoke": item.smoke, "was_online": item.was_online,
            "created": iso_time(item.created), "updated": iso_time(item.updated)}
    if isinstance(item, Algorithm):
        data.update(purpose={"first": item.purpose_first, "second": item.purpose_second},
                    transfer_training=item.transfer_training, train=item.train, predict=item.predict)
    else:
        data.update(image=item.image)
    if detail:
        data["images"] = [image_json(i) for i in item.images]
    return data


class ItemListHandler(ListHandler):
    """GET: one page of the items of ``kind`` the caller can see.  POST (``create_schema``): a new draft."""

    as_json = staticmethod(item_json)
    create_schema: dict = {}

    def post(self):
        data = rules.check_input(self.create_schema, self.json_body())
        item = rules.create(self.db, self.kind, self.who, data, smoke=self.service.smoke_by_default)
        self.send(item_json(item), 201)


class ItemHandler(RecordHandler):
    """GET, PATCH (``edit_schema``), DELETE one item of ``kind``."""

    as_json = staticmethod(item_json)
    edit_schema: dict = {}

    def patch(self, item_id):
        item = self.item(item_id)
        data = rules.check_input(self.edit_schema, self.json_body())
        self.send(item_json(rules.edit(self.db, item, self.who, data)))

    async def delete(self, item_id):
        item = self.item(item_id)
        rules.check_deletable(item, self.who)
        if isinstance(item, Algorithm):
            rules.require_no_active_runs(self.db, item, self.who)
        if isinstance(item, BaseEnv):
            await self.service.offload(self.service.check_unused, item)
        else:
            await self.service.offload(self.service.services.end_trial, item.key)
        await self.service.offload(self.service.validations.forget, item)
        self.db.delete(item)
        self.db.commit()
        self.set_status(204)
        self.finish()


class StatusHandler(ItemHandler):
    """POST .../online or .../offline."""

    SUPPORTED_METHODS = ("POST",)

    def post(self, item_id, action):
        item = self.item(item_id)
        rules.set_online(self.db, item, self.who, action == "online")
        if action == "offline" and isinstance(item, Algorithm):
            self.service.services.end_trial(item.key)
        self.send(self.as_json(item))


@web.stream_request_body
class UploadHandler(ItemHandler):
    """POST multipart/form-data with one file part named ``train``, ``predict`` (algorithms) or ``env``."""

    SUPPORTED_METHODS = ("POST",)
    parser = incoming = part = refusal = None

    def prepare(self):
        """Check the caller and the headers before any byte is stored.

        A refusal is answered once the (small) body has been read, so the client
        sees the error rather than a reset connection; a body that announces more
        than the limit is refused at once and the connection closed.
        """
        self.received: list[tuple[str, str, str, int]] = []
        try:
            self.item_id = int(self.path_kwargs["item_id"])
            item = access.get_visible(self.db, self.kind, self.item_id, self.who)
            access.require_change(item, self.who)
            self.limit = self.service.quota.room(self.db, self.who)
            length = int(self.request.headers.get("Content-Length") or 0)
            if length > self.limit + MULTIPART_SLACK:
                self.service.quota.require(self.db, self.who, length - MULTIPART_SLACK, what="the upload")
            content_type, params = parse_options_header(self.request.headers.get("Content-Type", ""))
            if content_type != b"multipart/form-data" or b"boundary" not in params:
                raise LibraryError(415, "multipart", "send the tar as multipart/form-data "
                                   "(curl -F train=@file.tar)")
            self.hold(max(0, length - MULTIPART_SLACK) if length else self.limit)  # until it is a record
        except LibraryError as e:
            self.refuse_upload(e)
            return
        finally:
            self.release_db()  # no connection is held while the body streams in
        # only an authenticated owner may send a large body; everyone else has the server's small limit
        self.request.connection.set_max_body_size(self.limit + MULTIPART_SLACK)
        self.parser = MultipartParser(params[b"boundary"], callbacks={
            "on_part_begin": self._part_begin, "on_header_field": self._header_field,
            "on_header_value": self._header_value, "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data, "on_part_end": self._part_end})

    def _part_begin(self):
        self.headers, self.field, self.value = {}, b"", b""

    def _header_field(self, data, start, end):
        self.field += data[start:end]

    def _header_value(self, data, start, end):
        self.value += data[start:end]
        self.headers[self.field.lower()] = self.value
        self.field, self.value = b"", b""

    def _headers_finished(self):
        _, params = parse_options_header(self.headers.get(b"content-disposition", b""))
        role = params.get(b"name", b"").decode("utf-8", "replace")
        filename = os.path.basename(params.get(b"filename", b"").decode("utf-8", "replace"))
        roles = ROLES[self.kind]
        if role not in roles:
            raise LibraryError(400, "part-name", f"name the file part {' or '.join(roles)}, not {role!r}", role)
        self.part = (role, filename)
        self.limit -= sum(size for *_, size in self.received)
        self.incoming = self.service.store.receive(self.limit)

    def _part_data(self, data, start, end):
        self.incoming.write(data[start:end])

    def _part_end(self):
        if self.incoming is not None:
            digest, size = self.incoming.commit()
            self.received.append((*self.part, digest, size))
            self.incoming = None

    def data_received(self, chunk):
        if self.parser is None or self._finished:  # refused in prepare, or refused earlier in the body
            return
        try:
            self.parser.write(chunk)
        except TooLarge as e:
            self.refusal = LibraryError(413, "too-large", str(e))
        except LibraryError as e:
            self.refusal = e
        except Exception as e:  # python-multipart's parse errors
            self.refusal = LibraryError(400, "multipart", f"the multipart body is malformed: {e}")
        if self.refusal is not None:
            self.parser = None
            self._discard()

    def _discard(self):
        if self.incoming is not None:  # the client went away mid-file, or it was refused: nothing is kept
            self.incoming.discard()
            self.incoming = None

    def on_connection_close(self):
        self._discard()
        super().on_connection_close()

    def on_finish(self):
        self._discard()
        super().on_finish()

    def post(self, item_id):
        if self.refusal is not None:
            raise self.refusal
        self.parser.finalize()
        if self.incoming is not None:
            self.incoming.discard()
            raise LibraryError(400, "truncated", "the upload ended in the middle of the file")
        if not self.received:
            raise LibraryError(400, "no-file", "the upload has no file part")
        item = access.get_visible(self.db, self.kind, self.item_id, self.who)
        images = [self.image_for(item, role, filename, digest, size)
                  for role, filename, digest, size in self.received]
        start_validation(self.db, self.service.validations, item, images)
        self.send(item_json(item), 202)

    def image_for(self, item, role: str, filename: str, digest: str, size: int) -> Image:
        if role == "env" or not TAR_NAME.match(filename or ""):
            filename = stored_filename(item, role)
        return Image(role=role, filename=filename, sha256=digest, size=size, status=ImageStatus.pending)


class PullHandler(ItemHandler):
    """POST {"reference": "host:port/repo:tag", "role": "train"|"predict"}: pull, store, validate."""

    SUPPORTED_METHODS = ("POST",)

    async def post(self, item_id):
        item = self.item(item_id)
        access.require_change(item, self.who)
        data = rules.check_input("pull", self.json_body())
        reference = data["reference"]
        if platform_repository(reference, self.service.registry):
            raise LibraryError(400, "platform-name", f"{reference} is in one of the platform's own namespaces "
                               f"({', '.join(PLATFORM_NAMESPACES)}); pull from your own registry path",
                               "reference")
        roles = ROLES[self.kind]
        role = data.get("role", roles[0] if len(roles) == 1 else None)
        if role not in roles:
            raise LibraryError(400, "invalid-field", f"role must be {' or '.join(roles)}", "role")
        limit = self.service.quota.room(self.db, self.who)
        self.hold(limit)  # a pull's size is known once it is in
        self.release_db()
        if await self.service.offload(self.service.validations.name_taken, reference):
            raise LibraryError(409, "name-taken", f"the engine already holds an image named {reference}, and a "
                               "pull would move that name; push your image under a new name or tag", "reference")
        try:
            digest, size = await self.service.offload(self.service.validations.pull, reference, limit)
        except Exception as e:
            raise LibraryError(422, "pull-failed", f"could not pull {reference}: {e}", "reference") from None
        item = self.item(item_id)
        image = Image(role=role, filename=stored_filename(item, role), sha256=digest, size=size)
        start_validation(self.db, self.service.validations, item, [image])
        self.send(item_json(item), 202)


def bind(kind, filters: dict, create_schema: dict, edit_schema: dict) -> tuple:
    """The items' handlers for one *kind* of item: (list, item, status, upload, pull)."""
    fields = {"kind": kind, "filters": filters, "create_schema": create_schema, "edit_schema": edit_schema}
    return tuple(type(f"{kind.__name__}{handler.__name__}", (handler,), fields)
                 for handler in (ItemListHandler, ItemHandler, StatusHandler, UploadHandler, PullHandler))


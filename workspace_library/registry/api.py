"""The model registry's REST endpoints (``<prefix>api/models...``), in ``openapi.yaml`` with the others.

Downloads stream a zip or tar.gz of the version's files; a single file
answers HTTP ``Range`` requests (one range), so a client can resume a large
weight file.
"""

from __future__ import annotations

import re
import shutil
import uuid

from sqlalchemy import select
from tornado import web

from .. import access, rules
from ..base import BaseHandler, int_arg, iso_time
from ..models import Model, ModelAlias, ModelAliasEvent
from ..errors import LibraryError
from ..streaming import FORMATS, send_archive, stored
from . import rules as model_rules

RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def model_json(session, model: Model, who, detail: bool = True) -> dict:
    """A model as *who* may see it: who it is shared with, and its alias history, are its owner's; the lineage
    names only the algorithm, dataset and parent that *who* may see too."""
    owner = access.owns(model, who)
    data = {"id": model.id, "key": model.key, "name": model.name, "version": model.version, "owner": model.owner,
            "description": model.description, "visibility": model.visibility.value, "size": model.size,
            "files": model.files, "metrics": model.metrics,
            "lineage": model.lineage if owner else model_rules.lineage_for(session, model, who),
            "run_id": model.run_id if owner else None, "algorithm_id": model.algorithm_id,
            "dataset_id": model.dataset_id, "parent_id": model.parent_id,
            "shared_with": model.shared_with if owner else [], "created": iso_time(model.created),
            "aliases": sorted(session.scalars(select(ModelAlias.alias).where(ModelAlias.model_id == model.id)))}
    if detail and owner:
        events = session.scalars(select(ModelAliasEvent).where(ModelAliasEvent.owner == model.owner,
                                                               ModelAliasEvent.name == model.name)
                                 .order_by(ModelAliasEvent.at.desc(), ModelAliasEvent.id.desc()).limit(100))
        data["alias_history"] = [{"alias": e.alias, "version": e.version, "by": e.by, "at": iso_time(e.at)}
                                 for e in events]
    elif detail:
        data["alias_history"] = []
    return data


class ModelHandler(BaseHandler):
    def model(self, model_id) -> Model:
        return access.get_visible(self.db, Model, int(model_id), self.who)

    @property
    def objects(self):
        return self.service.imports.objects

    async def files(self, model: Model) -> list:
        try:
            return await self.service.offload(self.objects.manifest, model.manifest)
        except FileNotFoundError:
            raise LibraryError(404, "content-missing", f"the stored files of {model.name} {model.version} are "
                               "missing; ask an admin to restore the data root") from None


class ModelListHandler(ModelHandler):
    def get(self):
        who = self.who
        where = [access.visible(Model, who)]
        for name in ("owner", "name", "version"):
            value = self.get_query_argument(name, None)
            if value is not None:
                where.append(getattr(Model, name) == value[:255])
        scope = self.get_query_argument("scope", "")
        if scope not in ("", "mine", "shared"):
            raise LibraryError(400, "invalid-query", "scope must be mine or shared", "scope")
        if scope:  # mine, or the shared model center: what others made public, preset or shared with the caller
            where.append(Model.owner == who.name if scope == "mine" else Model.owner != who.name)
        run = self.get_query_argument("run", None)
        if run is not None:  # the model a run registered (the run page links it)
            where.append(Model.run_id == int_arg(self, "run", 0, 0, 999_999))
        result = self.page_of(Model, where, (Model.created.desc(), Model.id.desc()))
        self.send({**result, "items": [model_json(self.db, m, self.who, detail=False) for m in result["items"]]})


class ModelItemHandler(ModelHandler):
    def get(self, model_id):
        self.send(model_json(self.db, self.model(model_id), self.who))

    def patch(self, model_id):
        model = self.model(model_id)
        access.require_change(model, self.who)
        data = rules.check_input(model_rules.SCHEMAS["model-edit"], self.json_body())
        rules.require_visibility_allowed(data.get("visibility"), self.who)
        rules.apply_fields(model, data)
        self.db.commit()
        self.send(model_json(self.db, model, self.who))

    async def delete(self, model_id):
        """``?dry_run=1`` lists what would be freed without deleting."""
        model = self.model(model_id)
        access.require_change(model, self.who)
        releases = {"bytes": model.size, "files": model.files}  # the caller's own usage, whoever shares content
        dry_run = self.get_query_argument("dry_run", "") in ("1", "true")
        if dry_run:
            freed = await self.service.offload(model_rules.unreferenced, self.db, self.objects, model)
        else:
            freed = await self.service.offload(model_rules.delete, self.db, self.objects, model, self.who)
        self.send({"dry_run": dry_run, "releases": releases, **({"freed": freed} if self.who.admin else {})})


class AliasHandler(ModelHandler):
    """PUT: point *alias* of this model's name at this version.  DELETE: remove it from this version."""

    SUPPORTED_METHODS = ("PUT", "DELETE")

    def put(self, model_id, alias):
        model = self.model(model_id)
        model_rules.set_alias(self.db, model, alias, self.who)
        self.send(model_json(self.db, model, self.who))

    def delete(self, model_id, alias):
        model = self.model(model_id)
        model_rules.remove_alias(self.db, model, alias, self.who)
        self.send(model_json(self.db, model, self.who))


class ShareHandler(ModelHandler):
    """POST {"user"}: share a private model with one user (nothing is copied)."""

    SUPPORTED_METHODS = ("POST",)

    def post(self, model_id):
        model = self.model(model_id)
        user = rules.check_input(model_rules.SCHEMAS["model-share"], self.json_body())["user"]
        model_rules.share(self.db, model, user, self.who)
        self.send(model_json(self.db, model, self.who))


class UnshareHandler(ModelHandler):
    """DELETE: stop sharing with one user."""

    SUPPORTED_METHODS = ("DELETE",)

    def delete(self, model_id, user):
        model = self.model(model_id)
        model_rules.unshare(self.db, model, user, self.who)
        self.send(model_json(self.db, model, self.who))


class DownloadHandler(ModelHandler):
    """GET ?format=zip|tar.gz: every file of the version, streamed."""

    SUPPORTED_METHODS = ("GET",)

    async def get(self, model_id):
        model = self.model(model_id)
        fmt = self.get_query_argument("format", "zip")
        if fmt not in FORMATS:
            raise LibraryError(400, "invalid-query", f"format must be {' or '.join(FORMATS)}", "format")
        files = await self.files(model)
        filename = re.sub(r"[^A-Za-z0-9._-]", "_", f"{model.name}-{model.version}.{fmt}")
        self.release_db()
        await send_archive(self, files, stored(self.objects.path), filename, fmt)


class FileHandler(ModelHandler):
    """GET one file, whole or one ``Range`` of it (206), always as a download."""

    SUPPORTED_METHODS = ("GET",)

    async def get(self, model_id, path):
        model = self.model(model_id)
        files = await self.files(model)
        found = next((f for f in files if f[0] == path), None)
        if found is None:
            raise LibraryError(404, "not-found", f"{path[:120]!r} is not a file of {model.name} {model.version}")
        _, digest, size = found
        start, end = 0, size - 1
        wanted = self.request.headers.get("Range")
        if wanted:
            match = RANGE.match(wanted.strip())
            if not match or (not match.group(1) and not match.group(2)):
                raise LibraryError(416, "range", "send one range, such as bytes=0-1023", "Range")
            if match.group(1):
                start = int(match.group(1))
                end = min(int(match.group(2)), size - 1) if match.group(2) else size - 1
            else:
                start = max(0, size - int(match.group(2)))
            if start > end or start >= size:
                self.set_header("Content-Range", f"bytes */{size}")
                raise LibraryError(416, "range", f"the file has {size} bytes", "Range")
            self.set_status(206)
            self.set_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.set_header("Accept-Ranges", "bytes")
        self.set_header("Content-Type", "application/octet-stream")
        self.set_header("Content-Disposition", "attachment")
        self.release_db()
        with open(self.objects.path(digest), "rb") as f:
            f.seek(start)
            left = end - start + 1
            while left > 0:
                chunk = await self.service.offload(f.read, min(left, 1 << 20))
                if not chunk:
                    break
                left -= len(chunk)
                self.write(chunk)
                await self.flush()
        self.finish()


@web.stream_request_body
class UploadHandler(ModelHandler):
    """POST ``?name=&version=`` with the zip or tar.gz of a model folder as the body (streamed to disk)."""

    SUPPORTED_METHODS = ("POST",)
    file = refusal = None

    def prepare(self):
        try:
            who = self.who
            limit = self.service.quota.room(self.db, who)
            length = int(self.request.headers.get("Content-Length") or 0)
            if length > limit:
                self.service.quota.require(self.db, who, length, what="the upload")
            self.hold(length or limit)  # until it is a model
        except LibraryError as e:
            self.refuse_upload(e)
            return
        finally:
            self.release_db()
        self.request.connection.set_max_body_size(limit)
        self.folder = self.service.imports.root / "uploads" / f"model-{uuid.uuid4().hex}"
        self.folder.mkdir(parents=True)
        self.file = open(self.folder / "archive.part", "wb")

    def data_received(self, chunk):
        if self.file is not None:
            self.file.write(chunk)

    def on_finish(self):
        if self.file is not None:
            self.file.close()
            shutil.rmtree(self.folder, ignore_errors=True)
        super().on_finish()

    async def post(self):
        if self.refusal is not None:
            raise self.refusal
        self.file.flush()
        name = self.get_query_argument("name", "")
        version = self.get_query_argument("version", "1")
        if not re.fullmatch(r"[0-9A-Za-z][0-9A-Za-z._-]{0,31}", version):
            raise LibraryError(400, "invalid-field", "version: 1-32 letters, digits, '.', '_' and '-'", "version")
        self.let_go()  # the extracted files are checked against the quota as they become the model
        model = await self.service.offload(model_rules.register_upload, self.db, self.objects, self.who, name, version,
                                       self.folder / "archive.part", self.folder / "staging",
                                       self.service.imports.limits, self.service.quota)
        self.send(model_json(self.db, model, self.who), 201)


MODEL = r"(?P<model_id>\d{1,9})"
ROUTES = [
    ("api/models", ModelListHandler),
    ("api/models/upload", UploadHandler),
    (f"api/models/{MODEL}", ModelItemHandler),
    (f"api/models/{MODEL}/aliases/(?P<alias>[^/]{{1,64}})", AliasHandler),
    (f"api/models/{MODEL}/share", ShareHandler),
    (f"api/models/{MODEL}/share/(?P<user>[^/]{{1,255}})", UnshareHandler),
    (f"api/models/{MODEL}/download", DownloadHandler),
    (f"api/models/{MODEL}/files/(?P<path>.+)", FileHandler),
]
OPENAPI_SCHEMAS = {"ModelEdit": model_rules.SCHEMAS["model-edit"], "ModelShare": model_rules.SCHEMAS["model-share"]}

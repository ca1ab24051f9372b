"""The REST API (``<prefix>api/...``), described by ``openapi.yaml`` next to this file.

Every error is ``{"error": {"status", "code", "message", "field"}}`` with a 4xx
status; a 500 means a bug.  Lists are paginated (``page``, ``per_page`` up to
100) and answer ``{"items", "total", "page", "per_page"}``.

Uploads are streamed: tornado's ``stream_request_body`` hands the body over in
chunks, python-multipart parses the parts as they arrive, and the file part is
hashed into the store's ``incoming/`` folder; only a complete part becomes a
record.
"""

from __future__ import annotations

import hmac
import json
import math
import os
import re
from pathlib import Path

import yaml
from jupyterhub.services.auth import HubOAuthenticated
from python_multipart.multipart import MultipartParser, parse_options_header
from tornado import web

from workspace_hub.contract import TAR_NAME
from workspace_hub.projects import InvalidChoice, Project, check_project_name

from . import access, rules
from .datasets import rules as dataset_schemas
from .registry import rules as model_schemas
from .runs import rules as run_schemas
from .services import rules as service_schemas
from .from_project import project_metadata, project_tars
from .jobs import PLATFORM_NAMESPACES, platform_repository
from .models import Algorithm, BaseEnv, Image, ImageStatus, Status
from .access import Who
from .errors import LibraryError
from .store import TooLarge

OPENAPI = Path(__file__).with_name("openapi.yaml")
MULTIPART_SLACK = 64 * 1024  # part headers and boundaries around the largest accepted tar
REFUSED_BODY_READ = 16 * 1024**2  # a logged-in caller's refused upload up to this size is read (and dropped)
SCHEMA_PREFIX = {Algorithm: "algorithm", BaseEnv: "env"}
ROLES = {Algorithm: ("train", "predict"), BaseEnv: ("env",)}  # the image tars each kind of item takes
FILTERS = {
    Algorithm: {"owner": str, "status": Status, "visibility": rules.Visibility, "framework": str,
                "device": str, "purpose_first": str, "purpose_second": str, "name": str, "version": str},
    BaseEnv: {"owner": str, "status": Status, "visibility": rules.Visibility, "framework": str,
              "device": str, "name": str},
}


def _time(value) -> str | None:
    return value.isoformat() if value else None


def image_json(image: Image) -> dict:
    return {"id": image.id, "role": image.role, "filename": image.filename, "sha256": image.sha256,
            "size": image.size, "tag": image.tag, "status": image.status.value,
            "errors": (image.report or {}).get("errors", []), "warnings": (image.report or {}).get("warnings", [])}


def item_json(item, detail: bool = True) -> dict:
    data = {"id": item.id, "name": item.name, "version": item.version, "owner": item.owner,
            "description": item.description, "framework": item.framework, "device": item.device,
            "visibility": item.visibility.value, "status": item.status.value, "progress": item.progress,
            "errors": item.errors, "smoke": item.smoke, "was_online": item.was_online,
            "created": _time(item.created), "updated": _time(item.updated)}
    if isinstance(item, Algorithm):
        data.update(purpose={"first": item.purpose_first, "second": item.purpose_second},
                    transfer_training=item.transfer_training, train=item.train, predict=item.predict)
    else:
        data.update(image=item.image)
    if detail:
        data["images"] = [image_json(i) for i in item.images]
    return data


class BaseHandler(HubOAuthenticated, web.RequestHandler):
    """Hub identity (OAuth cookie or API token, checked by JupyterHub's mixin), a session, JSON errors."""

    def initialize(self):
        self.hub_auth = self.settings["hub_auth"]
        self.service = self.settings["service"]

    def get_current_user(self):
        """The hub's identity for the caller; the library's own token (the hub's spawner uses it to list
        envs for a user) is recognized here, so the hub never waits on a request that waits on the hub."""
        own = self.settings.get("own_token")
        sent = self.request.headers.get("Authorization", "").removeprefix("token ").strip()
        if own and sent and hmac.compare_digest(sent.encode(), own.encode()):
            return {"kind": "service", "name": self.settings["service_name"], "admin": False}
        return super().get_current_user()

    def set_default_headers(self):
        # the library's pages carry forms that act for the user: no other site may frame them
        self.set_header("Content-Security-Policy", "frame-ancestors 'self'")
        self.set_header("X-Content-Type-Options", "nosniff")

    _db = None

    @property
    def db(self):
        """A session, opened on first use; handlers release it before they wait on anything."""
        if self._db is None:
            self._db = self.service.sessions()
        return self._db

    def release_db(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def on_finish(self):
        self.release_db()

    @property
    def who(self) -> Who:
        model = self.current_user
        if not model:
            raise LibraryError(401, "login", "Log in through the hub, or send 'Authorization: token <hub API "
                               "token>' (inside a workspace: $JUPYTERHUB_API_TOKEN).")
        if model.get("kind") == "service":
            return Who(name=f"service:{model['name']}", admin=bool(model.get("admin")), kind="service")
        return Who(name=model["name"], admin=bool(model.get("admin")))

    def write_error(self, status_code, **kwargs):
        error = kwargs.get("exc_info", (None, None))[1]
        if isinstance(error, LibraryError):
            self.set_status(error.status)
            body = error.as_dict()
        else:
            reason = getattr(error, "log_message", None) or self._reason
            body = {"error": {"status": status_code, "code": "http", "message": reason, "field": None}}
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))

    def log_exception(self, typ, value, tb):
        if not isinstance(value, LibraryError):
            super().log_exception(typ, value, tb)

    def refuse_upload(self, error: LibraryError) -> None:
        """Answer *error* to a streamed upload once its body is in: a logged-in caller's body of up to
        :data:`REFUSED_BODY_READ` bytes is read and dropped, so that the client reads the refusal instead of
        a reset connection; anyone else's, or a larger one, meets the server's small limit and is cut off."""
        self.refusal = error
        length = self.request.headers.get("Content-Length", "")
        if self.current_user and length.isdigit() and int(length) <= REFUSED_BODY_READ:
            self.request.connection.set_max_body_size(int(length))

    def json_body(self) -> dict:
        """The body as a JSON object; ``NaN``, ``Infinity`` and numbers too large for a float are refused here,
        before any schema or rule sees them (Python's json module would accept them)."""
        try:
            data = json.loads(self.request.body or b"{}", parse_constant=_not_finite, parse_float=_finite)
        except ValueError as e:
            raise LibraryError(400, "invalid-json", f"the body is not JSON: {e}") from None
        if not isinstance(data, dict):
            raise LibraryError(400, "invalid-json", "the body must be a JSON object")
        return data

    def send(self, data, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data, ensure_ascii=False))


def _not_finite(text: str):
    raise ValueError(f"{text} is not a JSON number; send a finite number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is too large for a number; send a finite number")
    return value


class NotFoundHandler(BaseHandler):
    def prepare(self):
        raise LibraryError(404, "not-found", f"{self.request.path} is not part of this service; see "
                           f"{self.settings['service_prefix']}api/openapi.json")


class OpenAPIHandler(BaseHandler):
    def get(self):
        document = yaml.safe_load(OPENAPI.read_text())
        # the request schemas are the ones the handlers validate with: one source of truth
        schemas = {**rules.SCHEMAS, **dataset_schemas.SCHEMAS, **run_schemas.SCHEMAS, **model_schemas.SCHEMAS,
                   **service_schemas.SCHEMAS}
        document["components"]["schemas"].update(
            {name: schemas[key] for name, key in (("AlgorithmCreate", "algorithm-create"),
             ("AlgorithmEdit", "algorithm-edit"), ("EnvCreate", "env-create"), ("EnvEdit", "env-edit"),
             ("DatasetCreate", "dataset-create"), ("DatasetEdit", "dataset-edit"), ("RunCreate", "run-create"),
             ("RunEdit", "run-edit"), ("ModelEdit", "model-edit"), ("ModelShare", "model-share"),
             ("ServiceCreate", "service-create"), ("ServiceEdit", "service-edit"))})
        document["servers"] = [{"url": self.settings["service_prefix"].rstrip("/") + "/api"}]
        self.send(document)


class MeHandler(BaseHandler):
    def get(self):
        who = self.who
        self.send({"name": who.name, "admin": who.admin, "kind": who.kind})


def _int_arg(handler, name: str, default: int, low: int, high: int) -> int:
    raw = handler.get_query_argument(name, str(default))
    if not re.fullmatch(r"\d{1,6}", raw) or not low <= int(raw) <= high:
        raise LibraryError(400, "invalid-query", f"{name} must be a whole number from {low} to {high}", name)
    return int(raw)


class ListHandler(BaseHandler):
    """GET: one page of what the caller can see.  POST: a new draft owned by the caller."""

    model = Algorithm
    as_json = staticmethod(item_json)
    filters = FILTERS[Algorithm]

    def caller(self) -> Who:
        who = self.who
        for_user = self.get_query_argument("for_user", None)
        if for_user is not None:  # the hub's spawner asks which envs a user may start
            # a *user* may be named "service:library": the kind, set by the hub, tells them apart
            if who.kind != "service" or who.name != f"service:{self.settings['service_name']}":
                raise LibraryError(403, "for-user", "Only the hub may list on behalf of a user.", "for_user")
            return Who(name=for_user)
        return who

    def get(self):
        who = self.caller()
        filters = {}
        for key, kind in self.filters.items():
            value = self.get_query_argument(key, None)
            if value is None:
                continue
            if kind is not str:
                try:
                    value = kind(value)
                except ValueError:
                    raise LibraryError(400, "invalid-query", f"{key} must be one of "
                                       f"{', '.join(v.value for v in kind)}", key) from None
            elif len(value) > 255:
                raise LibraryError(400, "invalid-query", f"{key} is longer than 255 characters", key)
            filters[key] = value
        q = self.get_query_argument("q", None)
        if q is not None and len(q) > 200:
            raise LibraryError(400, "invalid-query", "q is longer than 200 characters", "q")
        sort = self.get_query_argument("sort", "-updated")
        if sort.lstrip("-") not in rules.SORTABLE:
            raise LibraryError(400, "invalid-query", f"sort must be one of {', '.join(sorted(rules.SORTABLE))}"
                               " with an optional leading '-'", "sort")
        page = _int_arg(self, "page", 1, 1, 100000)
        per_page = _int_arg(self, "per_page", 20, 1, 100)
        result = rules.listing(self.db, self.model, who, filters, q, page, per_page, sort)
        result["items"] = [self.as_json(i, detail=False) for i in result["items"]]
        self.send(result)

    def post(self):
        data = rules.check_input(f"{SCHEMA_PREFIX[self.model]}-create", self.json_body())
        item = rules.create(self.db, self.model, self.who, data, smoke=self.service.smoke_by_default)
        self.send(item_json(item), 201)


class EnvListHandler(ListHandler):
    model = BaseEnv
    filters = FILTERS[BaseEnv]


class ItemHandler(BaseHandler):
    model = Algorithm
    as_json = staticmethod(item_json)

    def item(self, item_id: str):
        return access.get_visible(self.db, self.model, int(item_id), self.who)

    def get(self, item_id):
        self.send(self.as_json(self.item(item_id)))

    def patch(self, item_id):
        item = self.item(item_id)
        data = rules.check_input(f"{SCHEMA_PREFIX[self.model]}-edit", self.json_body())
        self.send(item_json(rules.edit(self.db, item, self.who, data)))

    async def delete(self, item_id):
        item = self.item(item_id)
        rules.check_deletable(item, self.who)
        if isinstance(item, Algorithm):
            rules.require_no_active_runs(self.db, item, self.who)
        if isinstance(item, BaseEnv):
            await self.service.offload(self.service.check_unused, item)
        else:
            await self.service.offload(self.service.serving.stop, item)
        await self.service.offload(self.service.jobs.forget, item)
        self.db.delete(item)
        self.db.commit()
        self.set_status(204)
        self.finish()


class EnvItemHandler(ItemHandler):
    model = BaseEnv


class StatusHandler(ItemHandler):
    """POST .../online or .../offline."""

    SUPPORTED_METHODS = ("POST",)

    def post(self, item_id, action):
        item = self.item(item_id)
        rules.set_online(self.db, item, self.who, action == "online")
        if action == "offline" and isinstance(item, Algorithm):
            self.service.serving.stop(item)
        self.send(self.as_json(item))


class EnvStatusHandler(StatusHandler):
    model = BaseEnv


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
            item = access.get_visible(self.db, self.model, self.item_id, self.who)
            access.require_change(item, self.who)
            self.limit = self.service.quota.room(self.db, self.who)
            length = int(self.request.headers.get("Content-Length") or 0)
            if length > self.limit + MULTIPART_SLACK:
                self.service.quota.require(self.db, self.who, length - MULTIPART_SLACK, what="the upload")
            content_type, params = parse_options_header(self.request.headers.get("Content-Type", ""))
            if content_type != b"multipart/form-data" or b"boundary" not in params:
                raise LibraryError(415, "multipart", "send the tar as multipart/form-data "
                                   "(curl -F train=@file.tar)")
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
        roles = ROLES[self.model]
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
            self.on_connection_close()

    def on_connection_close(self):
        if self.incoming is not None:  # the client went away mid-file: nothing becomes a record
            self.incoming.discard()
            self.incoming = None

    def on_finish(self):
        self.on_connection_close()
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
        item = access.get_visible(self.db, self.model, self.item_id, self.who)
        images = [self.image_for(item, role, filename, digest, size)
                  for role, filename, digest, size in self.received]
        rules.start_validation(self.db, self.service.jobs, item, images)
        self.send(item_json(item), 202)

    def image_for(self, item, role: str, filename: str, digest: str, size: int) -> Image:
        if role == "env" or not TAR_NAME.match(filename or ""):
            filename = rules.stored_filename(item, role)
        return Image(role=role, filename=filename, sha256=digest, size=size, status=ImageStatus.pending)


class EnvUploadHandler(UploadHandler):
    model = BaseEnv


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
        roles = ROLES[self.model]
        role = data.get("role", roles[0] if len(roles) == 1 else None)
        if role not in roles:
            raise LibraryError(400, "invalid-field", f"role must be {' or '.join(roles)}", "role")
        limit = self.service.quota.room(self.db, self.who)
        self.release_db()
        if await self.service.offload(self.service.jobs.name_taken, reference):
            raise LibraryError(409, "name-taken", f"the engine already holds an image named {reference}, and a "
                               "pull would move that name; push your image under a new name or tag", "reference")
        try:
            digest, size = await self.service.offload(self.service.jobs.pull, reference, limit)
        except Exception as e:
            raise LibraryError(422, "pull-failed", f"could not pull {reference}: {e}", "reference") from None
        item = self.item(item_id)
        image = Image(role=role, filename=rules.stored_filename(item, role), sha256=digest, size=size)
        rules.start_validation(self.db, self.service.jobs, item, [image])
        self.send(item_json(item), 202)


class EnvPullHandler(PullHandler):
    model = BaseEnv


class OnlineTestHandler(ItemHandler):
    """POST {"params": {...}}: call the algorithm's predict interface (test values by default)."""

    SUPPORTED_METHODS = ("POST",)

    async def post(self, item_id):
        item = self.item(item_id)
        if not (item.predict or {}).get("interface") or not any(i.role == "predict" and i.tag for i in item.images):
            raise LibraryError(409, "no-predict", f"{item.name} has no validated predict image to test.")
        if item.status != Status.online and not access.owns(item, self.who):
            raise LibraryError(409, "status", f"{item.name} is {item.status.value}; only online algorithms "
                               "can be tested by others.")
        interface = item.predict["interface"]
        params = rules.check_input("test", self.json_body()).get("params")
        if params is None:
            params = {p["name"]: p.get("test_value") for p in interface["params"]}
        self.release_db()
        status, response = await self.service.offload(self.service.serving.call, item, params, call=True)
        self.send({"status": status, "response": response})


class FromProjectHandler(BaseHandler):
    """POST {"project": P, "name": N?}: publish the tars in the caller's own project ``P/docker_image``."""

    async def post(self):
        who = self.who
        data = rules.check_input("from-project", self.json_body())
        rules.require_smoke_allowed(data, who)
        rules.require_visibility_allowed(data.get("visibility"), who)
        try:
            project = Project(Path(self.service.data_root).resolve(), who.name, check_project_name(str(data.get("project", ""))))
        except InvalidChoice as e:
            raise LibraryError(400, "invalid-field", f"project: {e}", "project") from None
        tars = project_tars(project, data.get("name"))
        fields = project_metadata(project, tars)
        fields.update({k: data[k] for k in ("smoke", "visibility") if k in data})
        fields = rules.check_input("algorithm-create", fields)
        item, created = rules.create_or_reopen(self.db, who, fields, smoke=self.service.smoke_by_default)
        limit = self.service.quota.room(self.db, who)
        self.release_db()
        try:
            images = []
            for role, path in sorted(tars.items()):
                with open(path, "rb", opener=_no_follow) as source:
                    digest, size = await self.service.offload(self.service.store.copy_in, source, limit)
                limit -= size
                images.append(Image(role=role, filename=path.name, sha256=digest, size=size))
        except (OSError, TooLarge) as e:
            if created:
                self.db.delete(self.db.get(Algorithm, item.id))
                self.db.commit()
            raise LibraryError(400, "unreadable", f"could not read the image tar: {e}") from None
        item = self.db.get(Algorithm, item.id)
        rules.start_validation(self.db, self.service.jobs, item, images)
        self.send(item_json(item), 202)


def _no_follow(path, flags):
    return os.open(path, flags | os.O_NOFOLLOW)

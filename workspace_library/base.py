"""The library's HTTP plumbing, shared by every resource: the hub's identity, JSON bodies and errors, lists.

Every error is ``{"error": {"status", "code", "message", "field"}}`` with a 4xx
status; a 500 means a bug.  Lists are paginated (``page``, ``per_page`` up to
100) and answer ``{"items", "total", "page", "per_page"}``.  Each resource
(``algorithms/``, ``envs/``, ``datasets/``, ``runs/``, ``registry/``,
``services/``) has an ``api.py`` with its handlers, its ``ROUTES`` and the
``OPENAPI_SCHEMAS`` it validates with; :meth:`LibraryService.make_app`
collects them.  Nothing here imports a resource.
"""

from __future__ import annotations

import hmac
import json
import math
import re
from pathlib import Path

import yaml
from jupyterhub.services.auth import HubOAuthenticated
from tornado import web

from workspace_hub.executor import EngineUnavailable

from . import access, rules
from .access import Who
from .errors import LibraryError

OPENAPI = Path(__file__).with_name("openapi.yaml")
MULTIPART_SLACK = 64 * 1024  # part headers and boundaries around the largest accepted tar
REFUSED_BODY_READ = 16 * 1024**2  # a logged-in caller's refused upload up to this size is read (and dropped)


def iso_time(value) -> str | None:
    return value.isoformat() if value else None


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

    def hold(self, size: int) -> None:
        """Count *size* bytes of this request's upload against the caller's quota until the request ends."""
        self._holds = [*getattr(self, "_holds", []), self.service.quota.reservations.take(self.who.name, size)]

    def let_go(self) -> None:
        for release in getattr(self, "_holds", []):
            release()

    def on_connection_close(self):
        self.let_go()
        super().on_connection_close()

    def on_finish(self):
        self.let_go()
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
        if isinstance(error, EngineUnavailable):  # the engine or the cluster is down: not the caller's fault
            error = LibraryError(503, "engine-unavailable", f"{error} (try again once an admin has started it)")
        if isinstance(error, LibraryError):
            self.set_status(error.status)
            body = error.as_dict()
        else:
            reason = getattr(error, "log_message", None) or self._reason
            body = {"error": {"status": status_code, "code": "http", "message": reason, "field": None}}
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))

    def log_exception(self, typ, value, tb):
        if not isinstance(value, (LibraryError, EngineUnavailable)):
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

    def page_of(self, kind, where: list, order: tuple) -> dict:
        """The page of rows of *kind* matching *where* that the query's ``page`` and ``per_page`` ask for."""
        return rules.paginate(self.db, kind, where, order, int_arg(self, "page", 1, 1, 100000),
                              int_arg(self, "per_page", 20, 1, 100))

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
        document["components"]["schemas"].update(self.settings["schemas"])
        document["servers"] = [{"url": self.settings["service_prefix"].rstrip("/") + "/api"}]
        self.send(document)


class MeHandler(BaseHandler):
    def get(self):
        who = self.who
        self.send({"name": who.name, "admin": who.admin, "kind": who.kind})


def int_arg(handler, name: str, default: int, low: int, high: int) -> int:
    raw = handler.get_query_argument(name, str(default))
    if not re.fullmatch(r"\d{1,6}", raw) or not low <= int(raw) <= high:
        raise LibraryError(400, "invalid-query", f"{name} must be a whole number from {low} to {high}", name)
    return int(raw)


class ListHandler(BaseHandler):
    """GET: one page of the records of ``kind`` the caller can see, filtered by ``filters`` (query arguments
    and their types), a search (``q``) and a sort."""

    kind = None
    filters: dict = {}

    def as_json(self, record, detail: bool = True) -> dict:
        raise NotImplementedError

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
        self.send(self.listing())

    def listing(self) -> dict:
        """The page of records :meth:`get` sends."""
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
        result = self.page_of(self.kind, *rules.listing(self.kind, who, filters, q, sort))
        return {**result, "items": [self.as_json(i, detail=False) for i in result["items"]]}


class RecordHandler(BaseHandler):
    """GET: one record of ``kind`` the caller can see (404 otherwise)."""

    kind = None

    def as_json(self, record, detail: bool = True) -> dict:
        raise NotImplementedError

    def item(self, item_id: str):
        return access.get_visible(self.db, self.kind, int(item_id), self.who)

    def get(self, item_id):
        self.send(self.as_json(self.item(item_id)))

"""Inference services' REST endpoints (``<prefix>api/services...``) and their stable address.

The address of a service is ``<prefix>serve/<owner>/<name>/``: the hub's proxy routes it to the library,
which checks the caller's hub identity (token or cookie) against the service's visibility and forwards the
request to a healthy replica.  Stopping and starting keep the address.  There is deliberately no
unauthenticated loopback port per service: on the docker profile every workspace shares the host's
loopback, so such a port would let any user call any private service.
"""

from __future__ import annotations

import json
import re
import time
from urllib.parse import quote

from prometheus_client import CONTENT_TYPE_LATEST

from .. import access, rules
from ..base import BaseHandler, iso_time
from ..errors import LibraryError
from ..models import Service, ServiceStatus, Status
from . import metrics
from .rules import SCHEMAS, inputs, predict_source

MAX_BODY = 10 * 1024**2
# what the address forwards: printable text; control characters (NUL, CR, LF, TAB) never reach a replica
CONTROL = re.compile(r"[\x00-\x20\x7f]")
# what an answer may be shown as, on the hub's origin; anything else (HTML, SVG, scripts) is a download
INLINE = {"application/json", "text/plain", "image/png", "image/jpeg", "image/gif", "image/webp"}
# a replica's answer is never a page of the hub's origin: no script runs, nothing loads, nothing frames it
ANSWER_CSP = "sandbox; default-src 'none'; frame-ancestors 'none'"


def service_json(service: Service, prefix: str) -> dict:
    return {"id": service.id, "name": service.name, "owner": service.owner, "description": service.description,
            "visibility": service.visibility.value, "status": service.state.value, "message": service.message,
            "replicas": service.replicas, "image": service.image, "model_id": service.model_id,
            "algorithm_id": service.algorithm_id, "interface": service.interface, "revision": service.revision,
            "address": f"{prefix}serve/{service.owner}/{service.name}/", "created": iso_time(service.created)}


class ServiceHandler(BaseHandler):
    def one(self, service_id) -> Service:
        return access.get_visible(self.db, Service, int(service_id), self.who)

    def json(self, service: Service) -> dict:
        return service_json(service, self.settings["service_prefix"])

    @property
    def services(self):
        return self.service.services


class ServiceListHandler(ServiceHandler):
    def get(self):
        who = self.who
        result = self.page_of(Service, [access.visible(Service, who)], (Service.created.desc(), Service.id.desc()))
        self.send({**result, "items": [self.json(s) for s in result["items"]]})

    async def post(self):
        who = self.who
        data = rules.check_input(SCHEMAS["service-create"], self.json_body())
        columns = predict_source(self.db, who, data)
        fields = {k: data[k] for k in ("name", "description", "visibility") if k in data}
        service = rules.create(self.db, Service, who, {**fields, "version": "1"}, status=Status.online,
                               state=ServiceStatus.stopped, replicas=0, message="", revision=1, **columns)
        replicas = data.get("replicas", 1)
        service_id = service.id
        self.release_db()
        if replicas:
            await self.service.offload(self.services.scale, service_id, replicas)
        self.send(self.json(self.one(service_id)), 201)


class ServiceItemHandler(ServiceHandler):
    def get(self, service_id):
        service = self.one(service_id)
        self.send({**self.json(service), "metrics": self.services.metrics(service.id)})

    def patch(self, service_id):
        service = self.one(service_id)
        access.require_change(service, self.who)
        data = rules.check_input(SCHEMAS["service-edit"], self.json_body())
        rules.require_visibility_allowed(data.get("visibility"), self.who)
        rules.apply_fields(service, data)
        self.db.commit()
        self.send(self.json(service))

    async def delete(self, service_id):
        service = self.one(service_id)
        access.require_change(service, self.who)
        service_id, key, label = service.id, service.key, f"{service.owner}/{service.name}"
        self.db.delete(service)
        self.db.commit()
        await self.service.offload(self.services.forget, service_id, key, label)
        self.set_status(204)
        self.finish()


class ServiceActionHandler(ServiceHandler):
    """POST .../start {"replicas"}, .../stop, .../scale {"replicas"}, .../redo {"model" | "algorithm"},
    .../test {"params"}."""

    SUPPORTED_METHODS = ("POST",)

    async def post(self, service_id, action):
        service = self.one(service_id)
        if action == "test":
            return await self.test(service)
        access.require_change(service, self.who)
        body = self.json_body()
        service_id = service.id
        if action == "redo":
            data = rules.check_input(SCHEMAS["service-redo"], body)
            columns = predict_source(self.db, access.acting_for(service, self.who),
                                     data or {"algorithm": service.algorithm_id})
            self.release_db()
            ok, message = await self.service.offload(self.services.redo, service_id, columns["image"],
                                                 columns["model_manifest"])
            if not ok:
                raise LibraryError(409, "redo-failed", message)
            service = self.one(service_id)
            service.model_id, service.algorithm_id = columns["model_id"], columns["algorithm_id"]
            service.interface = columns["interface"]
            self.db.commit()
            return self.send(self.json(service))
        if action == "stop":
            rules.check_input("empty", body)
            replicas = 0
        else:
            default = {"replicas": max(1, service.replicas)} if action == "start" else {}
            replicas = rules.check_input(SCHEMAS["service-scale"], {**default, **body})["replicas"]
            if replicas:  # more replicas start: the caller must still be allowed what they serve
                predict_source(self.db, access.acting_for(service, self.who), inputs(service))
        self.release_db()
        await self.service.offload(self.services.scale, service_id, replicas)
        self.send(self.json(self.one(service_id)))

    async def test(self, service: Service):
        """Call the interface with *params* (its test values by default): status, response and latency."""
        interface = service.interface
        params = rules.check_input("test", self.json_body()).get("params")
        if params is None:
            params = {p["name"]: p.get("test_value") for p in interface.get("params", [])}
        service_id = service.id
        self.release_db()
        started = time.perf_counter()
        status, body, _ = await self.service.offload(
            self.services.call, service_id, interface.get("method", "POST"), f"/{interface['name']}",
            json.dumps(params).encode(), {"Content-Type": "application/json"}, call=True)
        latency = round((time.perf_counter() - started) * 1000, 1)
        try:
            response = json.loads(body)
        except ValueError:
            response = body.decode("utf-8", "replace")[:2000]
        self.send({"status": status, "response": response, "latency_ms": latency})


class ServiceLogsHandler(ServiceHandler):
    """GET: the kept log of removed replicas, then the last lines of each running one."""

    async def get(self, service_id):
        service = self.one(service_id)
        access.require_logs(service, self.who)
        kept = self.services.log_file(service)
        service_id, key = service.id, service.key
        self.release_db()
        text = await self.service.offload(lambda: kept.read_text() if kept.exists() else "")
        live = await self.service.offload(self.services.live_log, service_id, key)
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(text + live)


class ServeHandler(BaseHandler):
    """Any method on ``serve/<owner>/<name>/<path>``: the service's stable address, with hub authentication."""

    SUPPORTED_METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH")

    def check_xsrf_cookie(self):
        """API clients send a token; a browser's cookie call is the hub's usual XSRF check."""
        if not self.request.headers.get("Authorization"):
            super().check_xsrf_cookie()

    async def serve(self, owner, name, path):
        service = access.service_at(self.db, owner, name, self.who)
        if service.state == ServiceStatus.stopped:
            raise LibraryError(503, "stopped", f"{owner}/{name} is stopped; start it to serve this address again")
        body = self.request.body or None
        if body and len(body) > MAX_BODY:
            raise LibraryError(413, "too-large", f"the body is over {MAX_BODY} bytes")
        path = path or "/"
        if CONTROL.search(path):
            raise LibraryError(400, "bad-path", "the path holds a control character or a space (NUL, CR, LF, TAB); "
                               "send the interface's path, such as /predict")
        query = f"?{quote(self.request.query, safe='=&+%/:@!$()*,;-._~')}" if self.request.query else ""
        headers = {"Content-Type": self.request.headers.get("Content-Type", "application/json")}
        service_id = service.id
        self.release_db()
        status, answer, content_type = await self.service.services.acall(
            service_id, self.request.method, quote(path, safe="/:@!$&'()*+,;=-._~") + query, body, headers,
            label=f"{owner}/{name}")
        self.set_status(status)
        self.set_header("Content-Security-Policy", ANSWER_CSP)
        if content_type.split(";")[0].strip().lower() in INLINE:
            self.set_header("Content-Type", content_type)
        else:  # a service that answers HTML would run its script as whoever opened the link
            self.set_header("Content-Type", "application/octet-stream")
            self.set_header("Content-Disposition", "attachment")
        self.finish(answer)

    get = post = put = delete = patch = serve


class MetricsHandler(BaseHandler):
    """GET ``metrics``: the services' calls in Prometheus's text format, for admins (as the hub's own
    ``/hub/metrics`` needs ``read:metrics``): it names every service and its traffic."""

    def get(self):
        if not self.who.admin:
            raise LibraryError(403, "admin-only", "the metrics name every service; scrape them with an admin's "
                               "token (Authorization: token ...)")
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.finish(metrics.text())


SERVICE = r"(?P<service_id>\d{1,9})"
ROUTES = [
    ("api/services", ServiceListHandler),
    (f"api/services/{SERVICE}", ServiceItemHandler),
    (f"api/services/{SERVICE}/(?P<action>start|stop|scale|redo|test)", ServiceActionHandler),
    (f"api/services/{SERVICE}/logs", ServiceLogsHandler),
    (r"serve/(?P<owner>[^/]{1,255})/(?P<name>[^/]{1,63})(?P<path>/.*)?", ServeHandler),
    ("metrics", MetricsHandler),
]
OPENAPI_SCHEMAS = {"ServiceCreate": SCHEMAS["service-create"], "ServiceEdit": SCHEMAS["service-edit"]}

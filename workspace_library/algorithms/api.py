"""The algorithms' REST endpoints (``<prefix>api/algorithms...``): the items' handlers bound to
:class:`~..models.Algorithm`, the online test, and publishing from the caller's own project; and the list
page, which also names the preset algorithms this host has not built."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tornado import web

from workspace_hub.executor import EngineError, ProbeFailed
from workspace_hub.projects import InvalidChoice, Project, check_project_name

from .. import access, items, rules
from ..base import BaseHandler
from ..errors import LibraryError
from ..models import SYSTEM_OWNER, Algorithm, Image, Status
from ..pages import PageHandler
from ..store import TooLarge
from . import presets
from . import rules as algorithm_rules
from .from_project import project_metadata, project_tars

FILTERS = {"owner": str, "status": Status, "visibility": rules.Visibility, "framework": str, "device": str,
           "purpose_first": str, "purpose_second": str, "name": str, "version": str}


ListHandler, ItemHandler, StatusHandler, UploadHandler, PullHandler = items.bind(
    Algorithm, FILTERS, algorithm_rules.SCHEMAS["algorithm-create"], algorithm_rules.SCHEMAS["algorithm-edit"])


class OnlineTestHandler(ItemHandler):
    """POST {"params": {...}}: call the algorithm's predict interface (test values by default), as an online test:
    a short-lived service of one replica (:meth:`~..services.replicas.Services.try_out`)."""

    SUPPORTED_METHODS = ("POST",)

    async def post(self, item_id):
        item = self.item(item_id)
        predict = [i.tag for i in item.images if i.role == "predict" and i.tag]
        if not (item.predict or {}).get("interface") or not predict:
            raise LibraryError(409, "no-predict", f"{item.name} has no validated predict image to test.")
        if item.status != Status.online and not access.owns(item, self.who):
            raise LibraryError(409, "status", f"{item.name} is {item.status.value}; only online algorithms "
                               "can be tested by others.")
        interface = item.predict["interface"]
        params = rules.check_input("test", self.json_body()).get("params")
        if params is None:
            params = {p["name"]: p.get("test_value") for p in interface["params"]}
        key, model = item.key, self.service.validations.model_dir(item)
        self.release_db()
        await self.service.offload(model.mkdir, 0o755, True, True)
        try:
            status, body, _ = await self.service.offload(
                self.service.services.try_out, key, predict[0], model, interface.get("method", "POST"),
                f"/{interface['name']}", json.dumps(params).encode(), {"Content-Type": "application/json"},
                call=True)
        except (ProbeFailed, EngineError) as e:
            raise LibraryError(502, "service-down", f"the predict image did not answer /health: "
                               f"{str(e)[-500:]}") from None
        try:
            response = json.loads(body)
        except ValueError:
            response = body.decode("utf-8", "replace")[:2000]
        self.send({"status": status, "response": response})


class FromProjectHandler(BaseHandler):
    """POST {"project": P, "name": N?}: publish the tars in the caller's own project ``P/docker_image``."""

    async def post(self):
        who = self.who
        data = rules.check_input(algorithm_rules.SCHEMAS["from-project"], self.json_body())
        rules.require_smoke_allowed(data, who)
        rules.require_visibility_allowed(data.get("visibility"), who)
        try:
            project = Project(Path(self.service.data_root).resolve(), who.name, check_project_name(data["project"]))
        except InvalidChoice as e:
            raise LibraryError(400, "invalid-field", f"project: {e}", "project") from None
        tars = project_tars(project, data.get("name"))
        fields = project_metadata(project, tars)
        fields.update({k: data[k] for k in ("smoke", "visibility") if k in data})
        fields = rules.check_input(algorithm_rules.SCHEMAS["algorithm-create"], fields)
        item, created = algorithm_rules.create_or_reopen(self.db, who, fields, smoke=self.service.smoke_by_default)
        limit = self.service.quota.room(self.db, who)
        self.hold(limit)  # the tars' sizes are known once they are copied
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
        items.start_validation(self.db, self.service.validations, item, images)
        self.send(items.item_json(item), 202)


class AlgorithmsPage(PageHandler):
    """The algorithms list, with the preset algorithms this host has not built and the command that builds them."""

    @web.authenticated
    def get(self):
        missing = presets.missing(self.service.data_root, self.db, SYSTEM_OWNER)
        self.release_db()
        self.finish(self.render_page(self.template, missing_presets=missing))


def _no_follow(path, flags):
    return os.open(path, flags | os.O_NOFOLLOW)


ITEM = r"(?P<item_id>\d{1,9})"
ROUTES = [
    ("", AlgorithmsPage),
    ("api/algorithms", ListHandler),
    ("api/algorithms/from-project", FromProjectHandler),
    (f"api/algorithms/{ITEM}", ItemHandler),
    (f"api/algorithms/{ITEM}/(?P<action>online|offline)", StatusHandler),
    (f"api/algorithms/{ITEM}/images", UploadHandler),
    (f"api/algorithms/{ITEM}/pull", PullHandler),
    (f"api/algorithms/{ITEM}/test", OnlineTestHandler),
]
OPENAPI_SCHEMAS = {"AlgorithmCreate": algorithm_rules.SCHEMAS["algorithm-create"],
                   "AlgorithmEdit": algorithm_rules.SCHEMAS["algorithm-edit"]}

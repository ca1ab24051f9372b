"""The base envs' REST endpoints (``<prefix>api/envs...``): the items' handlers bound to
:class:`~..models.BaseEnv`."""

from __future__ import annotations

from workspace_hub.executor import EngineError, EngineUnavailable

from .. import items, rules
from ..models import BaseEnv, Status
from .rules import SCHEMAS

FILTERS = {"owner": str, "status": Status, "visibility": rules.Visibility, "framework": str, "device": str,
           "name": str}


BoundListHandler, BoundItemHandler, StatusHandler, UploadHandler, PullHandler = items.bind(
    BaseEnv, FILTERS, SCHEMAS["env-create"], SCHEMAS["env-edit"])


def unavailable(service, envs: list[dict]) -> None:
    """Set each env's ``unavailable``: why no workspace can start from it on this host (``""`` when one can).
    An env is online by an admin's choice; whether this host can run it is asked of the engine here (blocking:
    call through ``offload``)."""
    present: dict[str, bool | None] = {}
    for env in envs:
        image = env.get("image") or ""
        if image and image not in present:
            try:
                present[image] = service.executor.has_image(image)
            except (EngineUnavailable, EngineError):
                present[image] = None
        if env["device"] == "gpu" and not service.gpu:
            env["unavailable"] = "needs a GPU: this host's engine has no GPU runtime"
        elif image and present[image] is None:
            env["unavailable"] = "the engine does not answer, so whether its image is built is unknown"
        elif image and not present[image]:
            env["unavailable"] = (f"not built on this host: run `ws envs build {env['name']}`"
                                  if env["version"] == "catalog" else
                                  "its image is not on this host's engine: upload the env's tar again")
        else:
            env["unavailable"] = ""


class ListHandler(BoundListHandler):
    async def get(self):
        data = self.listing()
        self.release_db()
        await self.service.offload(unavailable, self.service, data["items"])
        self.send(data)


class ItemHandler(BoundItemHandler):
    async def get(self, item_id):
        data = self.as_json(self.item(item_id))
        self.release_db()
        await self.service.offload(unavailable, self.service, [data])
        self.send(data)


ITEM = r"(?P<item_id>\d{1,9})"
ROUTES = [
    ("api/envs", ListHandler),
    (f"api/envs/{ITEM}", ItemHandler),
    (f"api/envs/{ITEM}/(?P<action>online|offline)", StatusHandler),
    (f"api/envs/{ITEM}/images", UploadHandler),
    (f"api/envs/{ITEM}/pull", PullHandler),
]
OPENAPI_SCHEMAS = {"EnvCreate": SCHEMAS["env-create"], "EnvEdit": SCHEMAS["env-edit"]}

"""The base envs' REST endpoints (``<prefix>api/envs...``): the items' handlers bound to
:class:`~..models.BaseEnv`."""

from __future__ import annotations

from .. import items, rules
from ..models import BaseEnv, Status
from .rules import SCHEMAS

FILTERS = {"owner": str, "status": Status, "visibility": rules.Visibility, "framework": str, "device": str,
           "name": str}


ListHandler, ItemHandler, StatusHandler, UploadHandler, PullHandler = items.bind(
    BaseEnv, FILTERS, SCHEMAS["env-create"], SCHEMAS["env-edit"])


ITEM = r"(?P<item_id>\d{1,9})"
ROUTES = [
    ("api/envs", ListHandler),
    (f"api/envs/{ITEM}", ItemHandler),
    (f"api/envs/{ITEM}/(?P<action>online|offline)", StatusHandler),
    (f"api/envs/{ITEM}/images", UploadHandler),
    (f"api/envs/{ITEM}/pull", PullHandler),
]
OPENAPI_SCHEMAS = {"EnvCreate": SCHEMAS["env-create"], "EnvEdit": SCHEMAS["env-edit"]}

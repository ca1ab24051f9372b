"""Service rules, without HTTP: what a service serves, and its input schemas.

A service runs the predict image of an online algorithm, with a model mounted read-only (a model version,
whose algorithm's predict image serves it, or no model for an algorithm that carries its own).  It is
visible like the library's other records (private, public, preset) and changed by its owner or an admin;
calling it needs only that the caller may see it, and its log is its owner's.
"""

from __future__ import annotations

from workspace_hub.algorithm import NAME

from ..access import Who, require_usable
from ..errors import LibraryError
from ..models import Status
from ..rules import TEXT, VISIBILITY, schema

FIELDS = {"name": {"type": "string", "pattern": NAME}, "description": TEXT, "visibility": VISIBILITY,
          "model": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
          "algorithm": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
          "replicas": {"type": "integer", "minimum": 0, "maximum": 8}}
SCHEMAS = {
    "service-create": schema(FIELDS, ["name"]),
    "service-edit": schema({"description": TEXT, "visibility": VISIBILITY}, []),
    "service-scale": schema({"replicas": FIELDS["replicas"]}, ["replicas"]),
    "service-redo": schema({"model": FIELDS["model"], "algorithm": FIELDS["algorithm"]}, []),
}


def predict_source(session, who, data: dict) -> dict:
    """The image, model and interface a service runs: a model (its algorithm's predict image) or an algorithm.
    Checked as *who* at each create, start, scale and redo: the model and the algorithm behind it must both
    be visible to the caller now."""
    if not data.get("model") and not data.get("algorithm"):
        raise LibraryError(400, "invalid-field", "name a model (served with its algorithm's predict image) or an "
                           "algorithm with a predict image", "model")
    algorithm, model = require_usable(session, who, data.get("algorithm"), model_id=data.get("model"),
                                      algorithm_of_model=bool(data.get("model")), model_field="model")
    predict = [i for i in algorithm.images if i.role == "predict" and i.tag]
    interface = (algorithm.predict or {}).get("interface") or {}
    if not predict or not interface or algorithm.status != Status.online:
        raise LibraryError(409, "no-predict", "the algorithm behind this service has no online, validated predict "
                           "image with an interface; publish its api project first", "model" if model else "algorithm")
    return {"algorithm_id": algorithm.id, "model_id": model.id if model else None, "image": predict[0].tag,
            "model_manifest": model.manifest if model else "", "interface": interface}


def inputs(service) -> dict:
    """What a service serves now, as the request that names it (re-checked before each start)."""
    return {"model": service.model_id} if service.model_id else {"algorithm": service.algorithm_id}


def require_still_usable(session, service) -> None:
    """The service's owner may still use its model and the algorithm behind it (the monitor asks before it
    starts a replica, and on every pass: a withdrawn grant or a private model stops what it served)."""
    data = inputs(service)
    require_usable(session, Who(service.owner), data.get("algorithm"), model_id=data.get("model"),
                   algorithm_of_model="model" in data, model_field="model")

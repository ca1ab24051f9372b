"""Service rules, without HTTP: what a service serves, and its input schemas.

A service runs the predict image of an online algorithm, with a model mounted read-only (a model version,
whose algorithm's predict image serves it, or no model for an algorithm that carries its own).  It is
visible like the library's other records (private, public, preset) and changed by its owner or an admin;
calling it needs only that the caller may see it.
"""

from __future__ import annotations

from workspace_hub.algorithm import NAME

from ..models import Algorithm, Model, Status
from ..registry.rules import can_see as model_can_see
from ..rules import TEXT, VISIBILITY, LibraryError, _schema, can_see

FIELDS = {"name": {"type": "string", "pattern": NAME}, "description": TEXT, "visibility": VISIBILITY,
          "model": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
          "algorithm": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
          "replicas": {"type": "integer", "minimum": 0, "maximum": 8}}
SCHEMAS = {
    "service-create": _schema(FIELDS, ["name"]),
    "service-edit": _schema({"description": TEXT, "visibility": VISIBILITY}, []),
    "service-scale": _schema({"replicas": FIELDS["replicas"]}, ["replicas"]),
    "service-redo": _schema({"model": FIELDS["model"], "algorithm": FIELDS["algorithm"]}, []),
}


def predict_source(session, who, data: dict) -> dict:
    """The image, model and interface a service runs: a model (its algorithm's predict image) or an algorithm."""
    model = None
    if data.get("model"):
        model = session.get(Model, data["model"])
        if model is None or not model_can_see(model, who):
            raise LibraryError(404, "not-found", f"No model with id {data['model']} is visible to you.", "model")
        algorithm = session.get(Algorithm, model.algorithm_id) if model.algorithm_id else None
    elif data.get("algorithm"):
        algorithm = session.get(Algorithm, data["algorithm"])
        if algorithm is None or not can_see(algorithm, who):
            raise LibraryError(404, "not-found", f"No algorithm with id {data['algorithm']} is visible to you.",
                               "algorithm")
    else:
        raise LibraryError(400, "invalid-field", "name a model (served with its algorithm's predict image) or an "
                           "algorithm with a predict image", "model")
    predict = [i for i in (algorithm.images if algorithm else []) if i.role == "predict" and i.tag]
    interface = ((algorithm.predict or {}).get("interface") if algorithm else None) or {}
    if algorithm is None or not predict or not interface or algorithm.status != Status.online:
        raise LibraryError(409, "no-predict", "the algorithm behind this service has no online, validated predict "
                           "image with an interface; publish its api project first", "model" if model else "algorithm")
    return {"algorithm_id": algorithm.id, "model_id": model.id if model else None, "image": predict[0].tag,
            "model_manifest": model.manifest if model else "", "interface": interface}

"""Algorithm rules, without HTTP: the record's fields and schemas, publishing in two steps, and what an
``algorithm.yaml`` (or an image's label) prefills.

Once an algorithm version has been online its definition is frozen; a new version is a new row.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from workspace_hub.algorithm import NAME, SCHEMA
from workspace_hub.contract import DEFAULT_PORT

from ..access import Who
from ..errors import LibraryError
from ..models import Algorithm, Status
from ..rules import DEVICE, FRAMEWORK, PURPOSE, TEXT, VERSION, VISIBILITY, create, apply_fields, \
    require_smoke_allowed, require_visibility_allowed, schema

INTERFACE = SCHEMA["properties"]["interface"]
PART = {
    "type": "object", "additionalProperties": False,
    "properties": {
        "command": {"type": "array", "items": {"type": "string", "maxLength": 500}, "minItems": 1, "maxItems": 50},
        "args": {"type": "array", "items": {"type": "string", "maxLength": 500}, "maxItems": 50},
        "env_vars": SCHEMA["properties"]["env_vars"],
        "device": DEVICE,
        "port": {"type": "integer", "minimum": 1, "maximum": 65535},
        "interface": INTERFACE,
        "dataset_format": SCHEMA["properties"]["dataset_format"],
    },
}
ALGORITHM_FIELDS = {
    "name": {"type": "string", "pattern": NAME},
    "version": VERSION,
    "purpose": PURPOSE,
    "description": TEXT,
    "framework": FRAMEWORK,
    "visibility": VISIBILITY,
    "device": DEVICE,
    "transfer_training": {"type": "boolean"},
    "smoke": {"type": "boolean"},
    "train": PART,
    "predict": PART,
}
SCHEMAS = {
    "algorithm-create": schema(ALGORITHM_FIELDS, ["name", "version"]),
    "algorithm-edit": schema({k: v for k, v in ALGORITHM_FIELDS.items() if k not in ("name", "version")}, []),
    "from-project": schema({"project": {"type": "string", "maxLength": 255}, "name": ALGORITHM_FIELDS["name"],
                            "smoke": {"type": "boolean"}, "visibility": VISIBILITY}, ["project"]),
}


def create_or_reopen(session: Session, who: Who, data: dict, smoke: bool = True) -> tuple[Algorithm, bool]:
    """The algorithm version *data* names: a new draft, or the caller's own version that was never online.

    Publishing in two steps (the train project first, the api project later) adds the second image
    to the same version; only a version that has been online is frozen (409).  Returns (item, created).
    """
    existing = session.scalars(select(Algorithm).where(Algorithm.owner == who.name, Algorithm.name == data["name"],
                                                       Algorithm.version == data["version"])).first()
    if existing is None:
        return create(session, Algorithm, who, data, smoke=smoke), True
    if existing.was_online:
        raise LibraryError(409, "exists", f"{who.name}/{data['name']} version {data['version']} exists and has "
                           "been online, so it is frozen; publish a new version.", "version")
    if existing.status == Status.validating:
        raise LibraryError(409, "validating", "Validation is running; wait for it to end.")
    require_visibility_allowed(data.get("visibility"), who)
    require_smoke_allowed(data, who)
    apply_fields(existing, {k: v for k, v in data.items() if k not in ("name", "version")})
    session.commit()
    return existing, False


def part_from_algorithm_yaml(doc: dict) -> dict:
    """The train or predict part of a record, from an ``algorithm.yaml`` document (or image label)."""
    part = {key: doc[key] for key in ("command", "args", "env_vars", "device", "dataset_format") if key in doc}
    if doc.get("kind") == "predict" and "interface" in doc:
        part["interface"] = doc["interface"]
        part["port"] = int(doc["interface"].get("port", DEFAULT_PORT))
    return part


def fields_from_algorithm_yaml(doc: dict) -> dict:
    """Record fields an ``algorithm.yaml`` document prefills."""
    fields = {key: doc[key] for key in ("name", "version", "description", "framework", "device") if key in doc}
    if "purpose" in doc:
        fields["purpose"] = doc["purpose"]
    if doc.get("kind") == "train" and "transfer_training" in doc:
        fields["transfer_training"] = doc["transfer_training"]
    fields[doc["kind"]] = part_from_algorithm_yaml(doc)
    return fields

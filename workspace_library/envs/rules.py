"""Base env rules, without HTTP: the record's fields and schemas (the rest is every image item's)."""

from __future__ import annotations

from ..rules import DEVICE, FRAMEWORK, SLUG, TEXT, VERSION, VISIBILITY, schema

ENV_FIELDS = {
    "name": SLUG,
    "version": VERSION,
    "description": TEXT,
    "framework": FRAMEWORK,
    "visibility": VISIBILITY,
    "device": DEVICE,
    "smoke": {"type": "boolean"},
}
SCHEMAS = {
    "env-create": schema(ENV_FIELDS, ["name", "version"]),
    "env-edit": schema({k: v for k, v in ENV_FIELDS.items() if k != "name"}, []),
}

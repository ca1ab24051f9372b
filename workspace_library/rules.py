"""The library's rules, independent of HTTP: who sees and changes what, and how status moves.

- Private items are visible to their owner and admins only; to anyone else
  they do not exist (404).  Public and preset items are visible to every user.
- Owners and admins change an item; only admins set ``preset`` or change a
  preset item.
- Status: draft -> validating -> ready -> online <-> offline, or failed with
  the validator's errors.  Once an algorithm version has been online its
  definition is frozen; a new version is a new row.  An online item cannot be
  deleted, only taken offline.

Inputs are checked with JSON schemas (jsonschema, as for ``algorithm.yaml``);
each problem becomes a :class:`LibraryError` that names the field.
"""

from __future__ import annotations

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from workspace_hub.algorithm import NAME, SCHEMA, Draft202012Validator, _key
from workspace_hub.contract import DEFAULT_PORT
from .access import Who, require_change, speaks_for, visible
from .errors import LibraryError
from .models import Algorithm, BaseEnv, Run, RunStatus, Status, Visibility

VERSION = SCHEMA["properties"]["version"]
PURPOSE = SCHEMA["properties"]["purpose"]
INTERFACE = SCHEMA["properties"]["interface"]
TEXT = {"type": "string", "maxLength": 2000}
VISIBILITY = {"enum": [v.value for v in Visibility]}
DEVICE = {"enum": ["cpu", "gpu"]}
FRAMEWORK = {"type": "string", "pattern": r"^[a-z0-9._-]{0,40}$"}

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
ENV_FIELDS = {
    "name": {"type": "string", "pattern": r"^[a-z0-9][a-z0-9-]{0,39}$"},
    "version": VERSION,
    "description": TEXT,
    "framework": FRAMEWORK,
    "visibility": VISIBILITY,
    "device": DEVICE,
    "smoke": {"type": "boolean"},
}


def _schema(fields: dict, required: list[str]) -> dict:
    return {"type": "object", "additionalProperties": False, "properties": fields, "required": required}


SCHEMAS = {
    "algorithm-create": _schema(ALGORITHM_FIELDS, ["name", "version"]),
    "algorithm-edit": _schema({k: v for k, v in ALGORITHM_FIELDS.items() if k not in ("name", "version")}, []),
    "env-create": _schema(ENV_FIELDS, ["name", "version"]),
    "env-edit": _schema({k: v for k, v in ENV_FIELDS.items() if k != "name"}, []),
    "pull": _schema({"reference": {"type": "string", "pattern": r"^[a-z0-9][a-z0-9._:/@-]{0,254}$"},
                     "role": {"enum": ["train", "predict", "env"]}}, ["reference"]),
    "from-project": _schema({"project": {"type": "string", "maxLength": 255}, "name": ALGORITHM_FIELDS["name"],
                             "smoke": {"type": "boolean"}, "visibility": VISIBILITY}, ["project"]),
    # an online test: the interface's values by name (its test values when left out)
    "test": _schema({"params": {"type": "object", "maxProperties": 64}}, []),
    "empty": _schema({}, []),
}
# Fields of an algorithm that stay editable after it has been online.
ALWAYS_EDITABLE = {"visibility", "description"}


def check_input(schema: str | dict, data) -> dict:
    """Return *data* if it satisfies the schema (or the one :data:`SCHEMAS` names), else raise a 400 naming
    the first bad field."""
    schema = SCHEMAS[schema] if isinstance(schema, str) else schema
    errors = sorted(Draft202012Validator(schema).iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        field = _key(first.absolute_path)
        more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
        raise LibraryError(400, "invalid-field", f"{field}: {first.message}{more}", field)
    return data


def require_visibility_allowed(visibility: str | None, who: Who) -> None:
    if visibility == Visibility.preset and not who.admin:
        raise LibraryError(403, "preset", "Only admins publish presets; choose private or public.",
                           "visibility")


def require_smoke_allowed(data: dict, who: Who) -> None:
    if data.get("smoke") is False and not who.admin:
        raise LibraryError(403, "smoke-admin", "Only admins skip the smoke run; leave 'smoke' out.", "smoke")


def apply_fields(item, data: dict) -> None:
    for key, value in data.items():
        if key == "purpose":
            item.purpose_first, item.purpose_second = value["first"], value["second"]
        elif key == "visibility":
            item.visibility = Visibility(value)
        elif key in ("train", "predict"):
            setattr(item, key, {**(getattr(item, key) or {}), **value})
        else:
            setattr(item, key, value)


def create(session: Session, model, who: Who, data: dict, **columns):
    """Insert a draft (or *columns*' status) owned by *who*; a taken name (and version) is a 409, decided by
    the database."""
    require_visibility_allowed(data.get("visibility"), who)
    require_smoke_allowed(data, who)
    item = model(owner=who.name, errors=[], progress="", **{"status": Status.draft, **columns})
    apply_fields(item, data)
    session.add(item)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        if model is BaseEnv:
            message = f"A base env named {data['name']!r} exists; choose another name or edit that one."
        else:
            verb = "publish" if model is Algorithm else "upload"
            message = f"{who.name}/{data['name']} version {data['version']} exists; {verb} a new version."
        raise LibraryError(409, "exists", message, "name" if model is BaseEnv else "version") from None
    return item


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


def edit(session: Session, item, who: Who, data: dict):
    require_change(item, who)
    require_visibility_allowed(data.get("visibility"), who)
    require_smoke_allowed(data, who)
    frozen = sorted(set(data) - ALWAYS_EDITABLE)
    if item.was_online and frozen:
        raise LibraryError(409, "immutable", f"{item.name} {item.version} has been online, so "
                           f"{', '.join(frozen)} can no longer change; publish a new version.", frozen[0])
    if item.status == Status.validating and frozen:
        raise LibraryError(409, "validating", "Wait until validation ends before editing.", frozen[0])
    apply_fields(item, data)
    session.commit()
    return item


def set_online(session: Session, item, who: Who, online: bool):
    require_change(item, who)
    allowed = (Status.ready, Status.offline, Status.online) if online else (Status.online, Status.offline)
    if item.status not in allowed:
        verb = "brought online" if online else "taken offline"
        raise LibraryError(409, "status", f"{item.name} is {item.status.value}; only "
                           f"{' or '.join(s.value for s in allowed)} items can be {verb}.")
    item.status = Status.online if online else Status.offline
    item.was_online = item.was_online or online
    session.commit()
    return item


def check_deletable(item, who: Who) -> None:
    require_change(item, who)
    if item.status == Status.online:
        raise LibraryError(409, "in-use", f"{item.name} is online; take it offline before deleting it.")
    if item.status == Status.validating:
        raise LibraryError(409, "validating", "Wait until validation ends before deleting.")


SORTABLE = {"name", "created", "updated", "status", "owner"}


def listing(session: Session, model, who: Who, filters: dict, q: str | None, page: int, per_page: int,
            sort: str = "-updated") -> dict:
    """One page of the items *who* can see, filtered by exact column values and a name/description search."""
    where = [visible(model, who)]
    for column, value in filters.items():
        where.append(getattr(model, column) == value)
    if q:
        pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where.append(or_(model.name.ilike(pattern, escape="\\"), model.description.ilike(pattern, escape="\\")))
    column = getattr(model, sort.lstrip("-"))
    order = column.desc() if sort.startswith("-") else column.asc()
    return paginate(session, model, where, (order, model.id.desc()), page, per_page)


def paginate(session: Session, model, where: list, order: tuple, page: int, per_page: int) -> dict:
    """One page of the rows of *model* that match *where*, and their total: the one listing query."""
    total = session.scalar(select(func.count()).select_from(model).where(*where))
    rows = session.scalars(select(model).where(*where).order_by(*order)
                          .offset((page - 1) * per_page).limit(per_page)).all()
    return {"items": rows, "total": total, "page": page, "per_page": per_page}


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


def stored_filename(item, role: str) -> str:
    """The name the checks apply to a tar that came without one that follows the naming rule."""
    return f"env-{item.name}.tar" if role == "env" else f"{role}-{item.name}-{item.device}.tar"


def start_validation(session: Session, jobs, item, images: list) -> None:
    """Attach stored *images* to *item* and hand it to a validation job."""
    if item.status == Status.validating:
        raise LibraryError(409, "validating", "Validation is running; wait for it to end.")
    if item.was_online:
        raise LibraryError(409, "immutable", f"{item.name} {item.version} has been online; its images are "
                           "frozen. Publish a new version.")
    for image in images:
        for old in [i for i in item.images if i.role == image.role]:
            item.images.remove(old)
        item.images.append(image)
    item.status, item.errors, item.progress = Status.validating, [], "queued"
    session.commit()
    jobs.submit(type(item), item.id)


def require_not_in_use(record, users: list[tuple[str, str]], what: str, fix: str, who: Who) -> None:
    """A 409 when *users* (owner, name) use *record*: the caller's own by name, other users' as a count only
    (their names are theirs)."""
    if not users:
        return
    mine = [name for owner, name in users if speaks_for(owner, who)]
    others = len(users) - len(mine)
    listed = ", ".join(mine[:5]) + (" and " if mine and others else "") + \
        (f"{others} of other users" if others else "")
    raise LibraryError(409, "in-use", f"{record.name} is used by {what} ({listed}); {fix}")


def require_no_active_runs(session: Session, record, who: Who) -> None:
    """An algorithm or dataset that a queued or active run uses cannot be deleted."""
    column = Run.algorithm_id if isinstance(record, Algorithm) else Run.dataset_id
    users = session.execute(select(Run.owner, Run.name).where(column == record.id,
                                                              Run.status.in_(RunStatus.unfinished())).limit(100))
    require_not_in_use(record, [tuple(u) for u in users], "training runs", "stop them first", who)

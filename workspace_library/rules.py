"""The rules every record shares, independent of HTTP: creating, editing and listing, and how status moves.

Who may see, change and use a record is :mod:`.access`; each resource's own rules are in its package.

- Only admins set ``preset`` or change a preset item.
- Status: draft -> validating -> ready -> online <-> offline, or failed with
  the validator's errors.  Once a version has been online its definition is
  frozen (:data:`ALWAYS_EDITABLE` excepted); a new version is a new row.  An
  online item cannot be deleted, only taken offline.

Inputs are checked with JSON schemas (jsonschema, as for ``algorithm.yaml``);
each problem becomes a :class:`LibraryError` that names the field.
"""

from __future__ import annotations

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from workspace_hub.algorithm import SCHEMA, Draft202012Validator, field_name
from .access import Who, require_change, speaks_for, visible
from .errors import LibraryError
from .models import Algorithm, BaseEnv, Run, RunStatus, Status, Visibility

VERSION = SCHEMA["properties"]["version"]
PURPOSE = SCHEMA["properties"]["purpose"]
TEXT = {"type": "string", "maxLength": 2000}
VISIBILITY = {"enum": [v.value for v in Visibility]}
DEVICE = {"enum": ["cpu", "gpu"]}
FRAMEWORK = {"type": "string", "pattern": r"^[a-z0-9._-]{0,40}$"}
SLUG = {"type": "string", "pattern": r"^[a-z0-9][a-z0-9-]{0,39}$"}  # base env and dataset names


def schema(fields: dict, required: list[str]) -> dict:
    return {"type": "object", "additionalProperties": False, "properties": fields, "required": required}


SCHEMAS = {
    "pull": schema({"reference": {"type": "string", "pattern": r"^[a-z0-9][a-z0-9._:/@-]{0,254}$"},
                     "role": {"enum": ["train", "predict", "env"]}}, ["reference"]),
    # an online test: the interface's values by name (its test values when left out)
    "test": schema({"params": {"type": "object", "maxProperties": 64}}, []),
    "empty": schema({}, []),
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
        field = field_name(first.absolute_path)
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


def create(session: Session, kind, who: Who, data: dict, **columns):
    """Insert a draft (or *columns*' status) owned by *who*; a taken name (and version) is a 409, decided by
    the database."""
    require_visibility_allowed(data.get("visibility"), who)
    require_smoke_allowed(data, who)
    item = kind(owner=who.name, errors=[], progress="", **{"status": Status.draft, **columns})
    apply_fields(item, data)
    session.add(item)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        if kind is BaseEnv:
            message = f"A base env named {data['name']!r} exists; choose another name or edit that one."
        else:
            verb = "publish" if kind is Algorithm else "upload"
            message = f"{who.name}/{data['name']} version {data['version']} exists; {verb} a new version."
        raise LibraryError(409, "exists", message, "name" if kind is BaseEnv else "version") from None
    return item


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


def listing(kind, who: Who, filters: dict, q: str | None, sort: str = "-updated") -> tuple[list, tuple]:
    """(where, order) for the items *who* can see, filtered by exact column values and a name/description
    search, sorted by *sort* (a column, ``-`` first for descending)."""
    where = [visible(kind, who)]
    for column, value in filters.items():
        where.append(getattr(kind, column) == value)
    if q:
        pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where.append(or_(kind.name.ilike(pattern, escape="\\"), kind.description.ilike(pattern, escape="\\")))
    column = getattr(kind, sort.lstrip("-"))
    return where, (column.desc() if sort.startswith("-") else column.asc(), kind.id.desc())


def paginate(session: Session, kind, where: list, order: tuple, page: int, per_page: int) -> dict:
    """One page of the rows of *kind* that match *where*, and their total: the one listing query."""
    total = session.scalar(select(func.count()).select_from(kind).where(*where))
    rows = session.scalars(select(kind).where(*where).order_by(*order)
                          .offset((page - 1) * per_page).limit(per_page)).all()
    return {"items": rows, "total": total, "page": page, "per_page": per_page}


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

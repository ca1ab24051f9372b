"""Who may see, change and use what: the one place the library decides it.

Every handler asks here; none builds a visibility query of its own (a unit test greps for them).

- **See.** Private records are visible to their owner and admins only; to anyone else they do not
  exist (404).  Public and preset records are visible to every user.  A private model is also
  visible to each user it is granted to (:class:`~.models.ModelGrant`, an exact name).  Runs are
  always private to their owner.
- **Change.** Owners and admins change a record; only admins change a preset.
- **Read logs.** A service's log holds its callers' requests: public means "may call", not "may
  read", so its log is for its owner and admins, as a run's log is.
- **Use.** Whatever starts a container (a run's start, rerun or transfer, a service's create, start,
  scale or redo) calls :func:`require_usable` at that moment, with *every* input: the algorithm
  version, each dataset version, the parent model, and the algorithm behind a model.  What was
  visible when a draft was saved, or when a run first ran, proves nothing later.
"""

from __future__ import annotations

import time
import uuid
import weakref
from dataclasses import dataclass

from sqlalchemy import event, exists, or_, select
from sqlalchemy.orm import Session

from .errors import LibraryError
from .models import Algorithm, Dataset, Model, ModelGrant, Run, Service, Visibility


@dataclass(frozen=True)
class Who:
    """The caller, as the hub identified it."""

    name: str
    admin: bool = False
    kind: str = "user"


def owns(item, who: Who) -> bool:
    """The owner, or an admin: who reads what a record's users did (its log, who mounts it)."""
    return speaks_for(item.owner, who)


def speaks_for(owner: str, who: Who) -> bool:
    """Whether *who* may see what the user *owner* named (their runs' and services' names)."""
    return who.admin or owner == who.name


def can_see(item, who: Who) -> bool:
    if owns(item, who):
        return True
    if isinstance(item, Run):
        return False
    if item.visibility != Visibility.private:
        return True
    return isinstance(item, Model) and who.name in item.shared_with


def visible(kind, who: Who):
    """A WHERE clause: the rows of the table *kind* that *who* may see."""
    if who.admin:
        return True
    if kind is Run:
        return Run.owner == who.name
    clauses = [kind.visibility != Visibility.private, kind.owner == who.name]
    if kind is Model:
        clauses.append(exists().where(ModelGrant.model_id == Model.id, ModelGrant.user == who.name))
    return or_(*clauses)


def _missing(kind, what, field: str | None) -> LibraryError:
    return LibraryError(404, "not-found", f"No {kind.KIND} with id {what} is visible to you.", field)


def get_visible(session: Session, kind, item_id: int, who: Who, field: str | None = None):
    """The record of *kind* with *item_id*, or a 404 (naming *field*) that says nothing of whether it exists."""
    item = session.get(kind, item_id)
    if item is None or not can_see(item, who):
        raise _missing(kind, item_id, field)
    return item


@dataclass(frozen=True)
class Address:
    """What the serve address needs of a service's row: kept between calls, checked for each caller."""

    id: int
    owner: str
    name: str
    visibility: Visibility
    state: object
    KIND = "service"


_ADDRESSES: dict[tuple[str, str, str], tuple[float, Address]] = {}  # (database, owner, name)
ADDRESS_TTL = 5.0  # seconds a row is kept at most; any change of a service drops them all at once


@event.listens_for(Session, "after_flush")
def _forget_addresses(session, _context) -> None:
    """A service created, changed (visibility, state) or deleted in this process: look them up again, once
    it is flushed and once it is committed (a call in between could have read the row before the commit)."""
    if any(isinstance(o, Service) for o in (*session.new, *session.dirty, *session.deleted)):
        _ADDRESSES.clear()
        session.info["services-changed"] = True


@event.listens_for(Session, "after_commit")
def _forget_addresses_again(session) -> None:
    if session.info.pop("services-changed", False):
        _ADDRESSES.clear()


_DATABASES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # engine -> a key no other engine gets


def _database(session: Session) -> str:
    """A key for the database behind *session* that no other engine in the process shares, ever."""
    engine = session.get_bind()
    if engine not in _DATABASES:
        _DATABASES[engine] = uuid.uuid4().hex
    return _DATABASES[engine]


def service_at(session: Session, owner: str, name: str, who: Who) -> Address:
    """The service behind the address ``serve/<owner>/<name>/``, if *who* may call it.

    The row is read once and kept (a call costs no query) until any service changes, so that a service
    made private is private for the next call; *who* is checked on every call."""
    now, key = time.monotonic(), (_database(session), owner, name)
    found = _ADDRESSES.get(key)
    if found is None or found[0] < now:
        service = session.scalars(select(Service).where(Service.owner == owner, Service.name == name)).first()
        address = None if service is None else Address(service.id, service.owner, service.name,
                                                       service.visibility, service.state)
        if address is not None:
            _ADDRESSES[key] = (now + ADDRESS_TTL, address)
    else:
        address = found[1]
    if address is None or not can_see(address, who):
        raise LibraryError(404, "not-found", f"No service {owner}/{name} is visible to you.")
    return address


def require_change(item, who: Who) -> None:
    """Owners and admins change items; preset items are for admins only."""
    if who.admin:
        return
    if item.visibility == Visibility.preset:
        raise LibraryError(403, "preset", f"{item.name} is a preset; only admins change presets.")
    if item.owner != who.name:
        raise LibraryError(403, "not-owner", f"{item.name} belongs to {item.owner}; only its owner or an "
                           "admin can change it.")


def require_logs(item, who: Who) -> None:
    """A service's log is its owner's (and admins'): calling a public service is not reading its traffic."""
    if not owns(item, who):
        raise LibraryError(403, "not-owner", f"the log of {item.owner}/{item.name} holds its callers' requests, "
                           "so only its owner or an admin reads it; ask them for what you need")


def acting_for(record, who: Who) -> Who:
    """Whose rights an action on *record* uses: the caller's on their own record, the owner's otherwise (an
    admin who starts another user's draft or redoes their service gives it nothing the owner may not use)."""
    return who if record.owner == who.name else Who(record.owner)


def require_usable(session: Session, who: Who, algorithm_id: int | None = None,
                   dataset_ids: tuple[int, ...] = (), model_id: int | None = None,
                   algorithm_of_model: bool = False, model_field: str = "parent_model"):
    """Check, now, that *who* may use every input of what is about to start; return (algorithm, model).

    With *algorithm_of_model*, the algorithm is the one behind the model (a service's predict image),
    and it must be visible too: a public model does not publish a private algorithm's image.
    """
    model = get_visible(session, Model, model_id, who, model_field) if model_id else None
    if algorithm_of_model and model is not None:
        algorithm_id = model.algorithm_id
    algorithm = None
    if algorithm_id:
        algorithm = get_visible(session, Algorithm, algorithm_id, who, "algorithm")
    elif algorithm_of_model and model is not None:
        raise LibraryError(409, "no-predict", f"{model.name} {model.version} names no algorithm whose predict "
                           "image could serve it; serve an algorithm instead", model_field)
    for dataset_id in dataset_ids:
        get_visible(session, Dataset, dataset_id, who, "dataset")
    return algorithm, model

"""The library's rules and schema history, on a real SQLite database (no service, no hub)."""

import sqlalchemy
from alembic import command

from workspace_library.db import alembic_config, make_engine, open_database


def test_items_of_an_older_database_get_distinct_keys_on_upgrade(tmp_path):
    url = f"sqlite:///{tmp_path / 'library.sqlite'}"
    engine = make_engine(url)
    command.upgrade(alembic_config(engine), "0001")
    with engine.begin() as db:
        for name in ("a", "b"):
            db.execute(sqlalchemy.text(
                "INSERT INTO algorithms (name, version, owner, description, framework, visibility, status, progress,"
                " errors, smoke, was_online, created, updated, purpose_first, purpose_second, transfer_training,"
                " device) VALUES (:name, '1', 'olive', '', '', 'private', 'draft', '', '[]', 1, 0,"
                " '2026-01-01', '2026-01-01', 'other', 'other', 0, 'cpu')"), {"name": name})
    engine.dispose()
    open_database(url)  # upgrades to head, as the service does on start
    with make_engine(url).connect() as db:
        keys = [row[0] for row in db.execute(sqlalchemy.text("SELECT key FROM algorithms"))]
    assert len(keys) == 2 and len(set(keys)) == 2 and all(len(k) == 32 for k in keys)


def test_a_version_never_online_reopens_for_its_missing_image_and_a_frozen_one_is_409(tmp_path):
    import pytest

    from workspace_library import rules
    from workspace_library.access import Who
    from workspace_library.errors import LibraryError
    from workspace_library.models import Status

    sessions = open_database(f"sqlite:///{tmp_path / 'library.sqlite'}")
    olive = Who("olive")
    with sessions() as session:
        first, created = rules.create_or_reopen(session, olive, {"name": "bayes", "version": "1.0"})
        assert created
        again, created = rules.create_or_reopen(session, olive, {"name": "bayes", "version": "1.0",
                                                                 "description": "now with its api"})
        assert not created and again.id == first.id and again.description == "now with its api"
        # another user's same name is another item, never theirs to reopen
        other, created = rules.create_or_reopen(session, Who("oscar"), {"name": "bayes", "version": "1.0"})
        assert created and other.id != first.id
        first.status, first.was_online = Status.offline, True
        session.commit()
        with pytest.raises(LibraryError) as e:
            rules.create_or_reopen(session, olive, {"name": "bayes", "version": "1.0"})
        assert (e.value.status, e.value.code) == (409, "exists") and "frozen" in e.value.message

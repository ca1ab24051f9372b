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

    from workspace_library.algorithms import rules
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


def test_sharing_moves_to_grants_and_nothing_that_points_at_a_model_is_lost(tmp_path):
    """0007 drops models.shared_with in place: rebuilding the table would fire its foreign keys (aliases,
    grants and services' models would go)."""
    url = f"sqlite:///{tmp_path / 'library.sqlite'}"
    engine = make_engine(url)
    command.upgrade(alembic_config(engine), "0006")
    now = "'2026-01-01'"
    with engine.begin() as db:
        db.execute(sqlalchemy.text(
            "INSERT INTO models (id, key, name, version, owner, description, visibility, status, progress, errors,"
            " was_online, created, updated, manifest, size, files, metrics, lineage, shared_with) VALUES (1, 'k', 'm',"
            f" '1', 'victor', '', 'private', 'ready', '', '[]', 0, {now}, {now}, '', 0, 0, '{{}}', '{{}}',"
            " '[\"alice\", \"bob\"]')"))
        db.execute(sqlalchemy.text("INSERT INTO model_aliases (owner, name, alias, model_id, set_by, set_at) VALUES"
                                   f" ('victor', 'm', 'production', 1, 'victor', {now})"))
        db.execute(sqlalchemy.text(
            "INSERT INTO services (key, name, version, owner, description, visibility, status, progress, errors,"
            " was_online, created, updated, model_id, image, model_manifest, interface, replicas, state, message,"
            f" revision) VALUES ('s', 's', '1', 'victor', '', 'private', 'online', '', '[]', 0, {now}, {now}, 1, 'i',"
            " '', '{}',"
            " 0, 'stopped', '', 1)"))
    engine.dispose()
    open_database(url)
    with make_engine(url).connect() as db:
        grants = [tuple(r) for r in db.execute(sqlalchemy.text("SELECT model_id, user FROM model_grants ORDER BY user"))]
        aliases = db.execute(sqlalchemy.text("SELECT count(*) FROM model_aliases")).scalar()
        served = db.execute(sqlalchemy.text("SELECT model_id FROM services")).scalar()
        columns = [r[1] for r in db.execute(sqlalchemy.text("PRAGMA table_info(models)"))]
    assert grants == [(1, "alice"), (1, "bob")] and aliases == 1 and served == 1
    assert "shared_with" not in columns

"""The library's schema history: an existing database upgrades in place and keeps its rows."""

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

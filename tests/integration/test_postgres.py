"""The scale-out database: the same hub, and its library, on Postgres instead of SQLite.

CI starts PostgreSQL on loopback and sets WSHUB_TEST_POSTGRES_URL; workspaces,
users and the library's algorithms then live in Postgres and survive a restart.
"""

import os

import pytest
import sqlalchemy

from harness.library import Client
from harness.hubprocess import HubProcess

from .conftest import ARTIFACTS

pytestmark = pytest.mark.docker


@pytest.fixture
def postgres_url():
    url = os.environ.get("WSHUB_TEST_POSTGRES_URL")
    if not url:
        if os.environ.get("CI"):
            raise RuntimeError("CI must start Postgres and set WSHUB_TEST_POSTGRES_URL (.ci/run does)")
        pytest.skip("no WSHUB_TEST_POSTGRES_URL")
    engine = sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as db:  # a clean schema for the hub, a fresh database for the library
        db.execute(sqlalchemy.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        db.execute(sqlalchemy.text("DROP DATABASE IF EXISTS library_it WITH (FORCE)"))
        db.execute(sqlalchemy.text("CREATE DATABASE library_it"))
    return url


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    from workspace_library.db import MIGRATIONS

    return ScriptDirectory(str(MIGRATIONS)).get_current_head()


def library_url(url: str) -> str:
    return sqlalchemy.engine.make_url(url).set(database="library_it").render_as_string(hide_password=False)


def test_the_hub_and_its_library_run_on_postgres(engine, tmp_path, postgres_url, remove_workspaces_after):
    data_root = tmp_path / "data"
    data_root.mkdir()
    hub = HubProcess(data_root, port=18400, log_path=ARTIFACTS / "hub-postgres.log",
                     env={"WSHUB_DB_URL": postgres_url, "WSHUB_LIBRARY_DB_URL": library_url(postgres_url)})
    hub.start()
    try:
        hub.api("POST", "/users/erin")
        hub.start_project("erin", "pg", env="python")
        library = Client(f"{hub.url}/services/library/", hub.user_token("erin"))
        assert library("POST", "algorithms", json={"name": "on-postgres", "version": "1.0"}).status_code == 201
        hub.stop()
        hub.start()
        assert hub.server("erin", "pg")["ready"]
        assert library("GET", "algorithms?name=on-postgres").json()["total"] == 1
    finally:
        hub.stop()
    with sqlalchemy.create_engine(library_url(postgres_url)).connect() as db:
        assert db.execute(sqlalchemy.text("SELECT owner, name FROM algorithms")).all() == [("erin", "on-postgres")]
        assert db.execute(sqlalchemy.text("SELECT version_num FROM alembic_version")).scalar() == head_revision()
        envs = {row[0] for row in db.execute(sqlalchemy.text("SELECT name FROM base_envs"))}
    assert {"python", "pytorch", "tensorflow", "keras"} <= envs
    with sqlalchemy.create_engine(postgres_url).connect() as db:
        names = {row[0] for row in db.execute(sqlalchemy.text("SELECT name FROM users"))}
        servers = {row[0] for row in db.execute(sqlalchemy.text("SELECT name FROM spawners"))}
    assert {"admin", "erin"} <= names and "pg" in servers

"""The scale-out database: the same hub on Postgres instead of SQLite.

CI starts PostgreSQL on loopback and sets WSHUB_TEST_POSTGRES_URL; workspaces
and users then live in Postgres and survive a hub restart there.
"""

import os

import pytest
import sqlalchemy

from workspace_hub.hubprocess import HubProcess

from .conftest import ARTIFACTS

pytestmark = pytest.mark.docker


@pytest.fixture
def postgres_url():
    url = os.environ.get("WSHUB_TEST_POSTGRES_URL")
    if not url:
        if os.environ.get("CI"):
            raise RuntimeError("CI must start Postgres and set WSHUB_TEST_POSTGRES_URL (.ci/run does)")
        pytest.skip("no WSHUB_TEST_POSTGRES_URL")
    engine = sqlalchemy.create_engine(url)
    with engine.begin() as db:  # a clean schema for this test
        db.execute(sqlalchemy.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    return url


def test_the_hub_runs_on_postgres(engine, tmp_path, postgres_url, remove_workspaces_after):
    data_root = tmp_path / "data"
    data_root.mkdir()
    hub = HubProcess(data_root, port=18400, log_path=ARTIFACTS / "hub-postgres.log",
                     env={"WSHUB_DB_URL": postgres_url})
    hub.start()
    try:
        hub.api("POST", "/users/erin")
        hub.start_project("erin", "pg", env="python")
        hub.stop()
        hub.start()
        assert hub.server("erin", "pg")["ready"]
    finally:
        hub.stop()
    with sqlalchemy.create_engine(postgres_url).connect() as db:
        names = {row[0] for row in db.execute(sqlalchemy.text("SELECT name FROM users"))}
        servers = {row[0] for row in db.execute(sqlalchemy.text("SELECT name FROM spawners"))}
    assert {"admin", "erin"} <= names and "pg" in servers

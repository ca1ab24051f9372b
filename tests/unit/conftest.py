"""Fixtures shared by the library's unit tests: the service in-process on SQLite (and Postgres when CI
provides one), and a client per role."""

from __future__ import annotations

import os
import uuid

import pytest

from harness.library import Client, running_service

DATABASES = ["sqlite"] + (["postgres"] if os.environ.get("WSHUB_TEST_POSTGRES_URL") else [])


@pytest.fixture(scope="module", params=DATABASES)
def db_url(request, tmp_path_factory):
    if request.param == "sqlite":
        yield None
        return
    import sqlalchemy

    server = sqlalchemy.create_engine(os.environ["WSHUB_TEST_POSTGRES_URL"], isolation_level="AUTOCOMMIT")
    name = f"library_{uuid.uuid4().hex[:8]}"
    with server.connect() as c:
        c.execute(sqlalchemy.text(f"CREATE DATABASE {name}"))
    yield server.url.set(database=name).render_as_string(hide_password=False)
    with server.connect() as c:
        c.execute(sqlalchemy.text(f"DROP DATABASE {name} WITH (FORCE)"))
    server.dispose()


@pytest.fixture(scope="module")
def library(db_url, tmp_path_factory):
    data_root = tmp_path_factory.mktemp("library") / "data"
    with running_service(data_root, db_url, smoke_by_default=False) as (service, base):
        service.validations._load = lambda path, report, tag, loaded=False: tag  # no engine in unit tests
        yield service, base


@pytest.fixture
def as_(library):
    _, base = library
    return {role: Client(base, token) for role, token in
            {"anonymous": None, "other": "other-token", "owner": "owner-token", "admin": "admin-token",
             "hub": "hub-token"}.items()}

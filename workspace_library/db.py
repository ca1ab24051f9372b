"""The library's database: SQLite in the data root by default, or any SQLAlchemy URL (Postgres).

The schema is owned by Alembic: :func:`open_database` upgrades to the newest
revision before the service serves, so a site upgrades by restarting it.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def _sqlite_pragmas(connection, _record) -> None:
    # WAL lets the pages read while a validation job writes; NORMAL sync is safe with WAL.
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def open_database(url: str) -> sessionmaker:
    """Upgrade the schema at *url* to the newest revision; return a session factory."""
    engine = make_engine(url)
    command.upgrade(alembic_config(engine), "head")
    return sessionmaker(engine, expire_on_commit=False)

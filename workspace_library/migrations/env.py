"""Alembic environment: runs against the engine that :mod:`workspace_library.db` hands over."""

from alembic import context

from workspace_library.models import Base

engine = context.config.attributes["engine"]
with engine.begin() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()

"""a never-reused key per item, for engine tags and model folders

Revision ID: 0002
Revises: 0001

Row ids are reused by SQLite after a delete, so a new item could inherit a
deleted item's tag or ``models/<id>`` folder.  Existing rows get fresh keys.
"""

import uuid

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TABLES = ("algorithms", "base_envs")


def upgrade() -> None:
    connection = op.get_bind()
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("key", sa.String(length=32), nullable=True))
        rows = connection.execute(sa.text(f"SELECT id FROM {table}")).all()
        for (row_id,) in rows:
            connection.execute(sa.text(f"UPDATE {table} SET key = :key WHERE id = :id"),
                               {"key": uuid.uuid4().hex, "id": row_id})
        with op.batch_alter_table(table) as batch:
            batch.alter_column("key", existing_type=sa.String(length=32), nullable=False)
            batch.create_unique_constraint(f"uq_{table}_key", ["key"])


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(f"uq_{table}_key", type_="unique")
            batch.drop_column("key")

"""datasets: one row per dataset version

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("key", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False, index=True),
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.Column("owner", sa.String(length=255), nullable=False, index=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("visibility", sa.Enum("private", "public", "preset", name="visibility", native_enum=False,
                                        length=16), nullable=False, index=True),
        sa.Column("status", sa.Enum("draft", "uploading", "validating", "ready", "online", "offline", "failed",
                                    name="status", native_enum=False, length=16), nullable=False, index=True),
        sa.Column("progress", sa.String(length=200), nullable=False),
        sa.Column("errors", sa.JSON(), nullable=False),
        sa.Column("was_online", sa.Boolean(), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
        sa.Column("purpose_first", sa.String(length=16), nullable=False, index=True),
        sa.Column("purpose_second", sa.String(length=40), nullable=False, index=True),
        sa.Column("annotation", sa.String(length=40), nullable=False),
        sa.Column("format", sa.String(length=16), nullable=False, index=True),
        sa.Column("test_mode", sa.String(length=16), nullable=False),
        sa.Column("uploads", sa.JSON(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("manifests", sa.JSON(), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.UniqueConstraint("owner", "name", "version", name="uq_dataset_version"),
        sa.UniqueConstraint("key", name="uq_datasets_key"),
    )


def downgrade() -> None:
    op.drop_table("datasets")

"""models: versions from training runs, aliases and their history

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

STATUS = ("draft", "uploading", "validating", "ready", "online", "offline", "failed")


def upgrade() -> None:
    op.create_table(
        "models",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("key", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False, index=True),
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.Column("owner", sa.String(length=255), nullable=False, index=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("visibility", sa.Enum("private", "public", "preset", name="visibility", native_enum=False,
                                        length=16), nullable=False, index=True),
        sa.Column("status", sa.Enum(*STATUS, name="status", native_enum=False, length=16), nullable=False,
                  index=True),
        sa.Column("progress", sa.String(length=200), nullable=False),
        sa.Column("errors", sa.JSON(), nullable=False),
        sa.Column("was_online", sa.Boolean(), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("runs.id", ondelete="SET NULL"), nullable=True, index=True),
        sa.Column("algorithm_id", sa.Integer(), sa.ForeignKey("algorithms.id", ondelete="SET NULL"), nullable=True,
                  index=True),
        sa.Column("dataset_id", sa.Integer(), sa.ForeignKey("datasets.id", ondelete="SET NULL"), nullable=True),
        sa.Column("parent_id", sa.Integer(), sa.ForeignKey("models.id", ondelete="SET NULL"), nullable=True),
        sa.Column("manifest", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("files", sa.Integer(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("lineage", sa.JSON(), nullable=False),
        sa.Column("shared_with", sa.JSON(), nullable=False),
        sa.UniqueConstraint("owner", "name", "version", name="uq_model_version"),
        sa.UniqueConstraint("key", name="uq_models_key"),
    )
    op.create_table(
        "model_aliases",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("owner", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("alias", sa.String(length=40), nullable=False),
        sa.Column("model_id", sa.Integer(), sa.ForeignKey("models.id", ondelete="CASCADE"), nullable=False,
                  index=True),
        sa.Column("set_by", sa.String(length=255), nullable=False),
        sa.Column("set_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("owner", "name", "alias", name="uq_model_alias"),
    )
    op.create_table(
        "model_alias_events",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("owner", sa.String(length=255), nullable=False, index=True),
        sa.Column("name", sa.String(length=63), nullable=False, index=True),
        sa.Column("alias", sa.String(length=40), nullable=False),
        sa.Column("version", sa.String(length=32), nullable=True),
        sa.Column("by", sa.String(length=255), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("model_alias_events")
    op.drop_table("model_aliases")
    op.drop_table("models")

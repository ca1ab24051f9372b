"""services: online inference services with replicas

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

STATUS = ("draft", "uploading", "validating", "ready", "online", "offline", "failed")
STATE = ("stopped", "starting", "running", "degraded", "failed")


def upgrade() -> None:
    op.create_table(
        "services",
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
        sa.Column("algorithm_id", sa.Integer(), sa.ForeignKey("algorithms.id", ondelete="SET NULL"), nullable=True),
        sa.Column("model_id", sa.Integer(), sa.ForeignKey("models.id", ondelete="SET NULL"), nullable=True,
                  index=True),
        sa.Column("image", sa.String(length=255), nullable=False),
        sa.Column("model_manifest", sa.String(length=64), nullable=False),
        sa.Column("interface", sa.JSON(), nullable=False),
        sa.Column("replicas", sa.Integer(), nullable=False),
        sa.Column("state", sa.Enum(*STATE, name="servicestatus", native_enum=False, length=16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.UniqueConstraint("owner", "name", name="uq_service_name"),
        sa.UniqueConstraint("key", name="uq_services_key"),
    )


def downgrade() -> None:
    op.drop_table("services")

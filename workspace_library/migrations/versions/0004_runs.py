"""runs: one row per training run

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

STATUS = ("draft", "queued", "starting", "running", "succeeded", "failed", "stopping", "stopped")


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("key", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("owner", sa.String(length=255), nullable=False, index=True),
        sa.Column("status", sa.Enum(*STATUS, name="runstatus", native_enum=False, length=16), nullable=False,
                  index=True),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("algorithm_id", sa.Integer(), sa.ForeignKey("algorithms.id", ondelete="SET NULL"), nullable=True,
                  index=True),
        sa.Column("dataset_id", sa.Integer(), sa.ForeignKey("datasets.id", ondelete="SET NULL"), nullable=True,
                  index=True),
        sa.Column("algorithm_label", sa.String(length=200), nullable=False),
        sa.Column("dataset_label", sa.String(length=200), nullable=False),
        sa.Column("parent_model_id", sa.Integer(), nullable=True),
        sa.Column("parent_manifest", sa.String(length=64), nullable=False),
        sa.Column("image", sa.String(length=255), nullable=False),
        sa.Column("image_digest", sa.String(length=80), nullable=False),
        sa.Column("dataset_manifests", sa.JSON(), nullable=False),
        sa.Column("hyperparameters", sa.JSON(), nullable=False),
        sa.Column("resources", sa.JSON(), nullable=False),
        sa.Column("max_runtime", sa.Integer(), nullable=False),
        sa.Column("train_ratio", sa.JSON(), nullable=True),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("key", name="uq_runs_key"),
    )


def downgrade() -> None:
    op.drop_table("runs")

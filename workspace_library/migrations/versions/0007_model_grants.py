"""model grants: sharing a private model is a row per user, matched exactly (was a JSON list matched by LIKE)

Revision ID: 0007
Revises: 0006
"""

import json

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    grants = op.create_table(
        "model_grants",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("model_id", sa.Integer(), sa.ForeignKey("models.id", ondelete="CASCADE"), nullable=False,
                  index=True),
        sa.Column("user", sa.String(length=255), nullable=False, index=True),
        sa.Column("by", sa.String(length=255), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("model_id", "user", name="uq_model_grant"),
    )
    connection = op.get_bind()
    rows = []
    for model_id, owner, shared in connection.execute(sa.text("SELECT id, owner, shared_with FROM models")):
        users = json.loads(shared) if isinstance(shared, str) else (shared or [])
        rows += [{"model_id": model_id, "user": user, "by": owner, "at": sa.func.now()} for user in sorted(set(users))]
    for row in rows:
        connection.execute(grants.insert().values(**row))
    # a native DROP COLUMN (SQLite 3.35+): recreating the table would fire its foreign keys' ON DELETE
    # actions and take grants, aliases and the services' models with it
    with op.batch_alter_table("models", recreate="never") as batch:
        batch.drop_column("shared_with")


def downgrade() -> None:
    with op.batch_alter_table("models", recreate="never") as batch:
        batch.add_column(sa.Column("shared_with", sa.JSON(), nullable=False, server_default="[]"))
    connection = op.get_bind()
    shared: dict[int, list[str]] = {}
    for model_id, user in connection.execute(sa.text("SELECT model_id, \"user\" FROM model_grants ORDER BY \"user\"")):
        shared.setdefault(model_id, []).append(user)
    for model_id, users in shared.items():
        connection.execute(sa.text("UPDATE models SET shared_with = :users WHERE id = :id"),
                           {"users": json.dumps(users), "id": model_id})
    op.drop_table("model_grants")

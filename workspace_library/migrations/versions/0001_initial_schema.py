"""initial schema

Revision ID: 0001
Revises: 
"""

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('algorithms',
    sa.Column('purpose_first', sa.String(length=16), nullable=False),
    sa.Column('purpose_second', sa.String(length=40), nullable=False),
    sa.Column('transfer_training', sa.Boolean(), nullable=False),
    sa.Column('device', sa.String(length=8), nullable=False),
    sa.Column('train', sa.JSON(), nullable=True),
    sa.Column('predict', sa.JSON(), nullable=True),
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=63), nullable=False),
    sa.Column('version', sa.String(length=32), nullable=False),
    sa.Column('owner', sa.String(length=255), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('framework', sa.String(length=40), nullable=False),
    sa.Column('visibility', sa.Enum('private', 'public', 'preset', name='visibility', native_enum=False, length=16), nullable=False),
    sa.Column('status', sa.Enum('draft', 'validating', 'ready', 'online', 'offline', 'failed', name='status', native_enum=False, length=16), nullable=False),
    sa.Column('progress', sa.String(length=200), nullable=False),
    sa.Column('errors', sa.JSON(), nullable=False),
    sa.Column('smoke', sa.Boolean(), nullable=False),
    sa.Column('was_online', sa.Boolean(), nullable=False),
    sa.Column('created', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('owner', 'name', 'version', name='uq_algorithm_version')
    )
    with op.batch_alter_table('algorithms', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_algorithms_device'), ['device'], unique=False)
        batch_op.create_index(batch_op.f('ix_algorithms_framework'), ['framework'], unique=False)
        batch_op.create_index(batch_op.f('ix_algorithms_name'), ['name'], unique=False)
        batch_op.create_index(batch_op.f('ix_algorithms_owner'), ['owner'], unique=False)
        batch_op.create_index(batch_op.f('ix_algorithms_purpose_first'), ['purpose_first'], unique=False)
        batch_op.create_index(batch_op.f('ix_algorithms_purpose_second'), ['purpose_second'], unique=False)
        batch_op.create_index(batch_op.f('ix_algorithms_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_algorithms_visibility'), ['visibility'], unique=False)

    op.create_table('base_envs',
    sa.Column('device', sa.String(length=8), nullable=False),
    sa.Column('image', sa.String(length=255), nullable=False),
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=63), nullable=False),
    sa.Column('version', sa.String(length=32), nullable=False),
    sa.Column('owner', sa.String(length=255), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('framework', sa.String(length=40), nullable=False),
    sa.Column('visibility', sa.Enum('private', 'public', 'preset', name='visibility', native_enum=False, length=16), nullable=False),
    sa.Column('status', sa.Enum('draft', 'validating', 'ready', 'online', 'offline', 'failed', name='status', native_enum=False, length=16), nullable=False),
    sa.Column('progress', sa.String(length=200), nullable=False),
    sa.Column('errors', sa.JSON(), nullable=False),
    sa.Column('smoke', sa.Boolean(), nullable=False),
    sa.Column('was_online', sa.Boolean(), nullable=False),
    sa.Column('created', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name', name='uq_base_env_name')
    )
    with op.batch_alter_table('base_envs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_base_envs_device'), ['device'], unique=False)
        batch_op.create_index(batch_op.f('ix_base_envs_framework'), ['framework'], unique=False)
        batch_op.create_index(batch_op.f('ix_base_envs_name'), ['name'], unique=False)
        batch_op.create_index(batch_op.f('ix_base_envs_owner'), ['owner'], unique=False)
        batch_op.create_index(batch_op.f('ix_base_envs_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_base_envs_visibility'), ['visibility'], unique=False)

    op.create_table('images',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('algorithm_id', sa.Integer(), nullable=True),
    sa.Column('env_id', sa.Integer(), nullable=True),
    sa.Column('role', sa.String(length=8), nullable=False),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('tag', sa.String(length=255), nullable=False),
    sa.Column('status', sa.Enum('pending', 'validating', 'valid', 'invalid', name='imagestatus', native_enum=False, length=16), nullable=False),
    sa.Column('report', sa.JSON(), nullable=False),
    sa.Column('created', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['algorithm_id'], ['algorithms.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['env_id'], ['base_envs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_images_algorithm_id'), ['algorithm_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_images_env_id'), ['env_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_images_sha256'), ['sha256'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_images_sha256'))
        batch_op.drop_index(batch_op.f('ix_images_env_id'))
        batch_op.drop_index(batch_op.f('ix_images_algorithm_id'))

    op.drop_table('images')
    with op.batch_alter_table('base_envs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_base_envs_visibility'))
        batch_op.drop_index(batch_op.f('ix_base_envs_status'))
        batch_op.drop_index(batch_op.f('ix_base_envs_owner'))
        batch_op.drop_index(batch_op.f('ix_base_envs_name'))
        batch_op.drop_index(batch_op.f('ix_base_envs_framework'))
        batch_op.drop_index(batch_op.f('ix_base_envs_device'))

    op.drop_table('base_envs')
    with op.batch_alter_table('algorithms', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_algorithms_visibility'))
        batch_op.drop_index(batch_op.f('ix_algorithms_status'))
        batch_op.drop_index(batch_op.f('ix_algorithms_purpose_second'))
        batch_op.drop_index(batch_op.f('ix_algorithms_purpose_first'))
        batch_op.drop_index(batch_op.f('ix_algorithms_owner'))
        batch_op.drop_index(batch_op.f('ix_algorithms_name'))
        batch_op.drop_index(batch_op.f('ix_algorithms_framework'))
        batch_op.drop_index(batch_op.f('ix_algorithms_device'))

    op.drop_table('algorithms')

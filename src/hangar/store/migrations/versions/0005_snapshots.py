"""snapshots

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 09:00:00.000000

Snapshot archives of environments: where each file is, its size and sha256, and the
fernet key (envelope-encrypted) its dumped database's secrets are encrypted with.
"""
from alembic import op
import sqlalchemy as sa
import hangar.store.models


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('snapshots',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('environment_id', sa.String(length=36), nullable=False),
    sa.Column('environment_name', sa.String(length=80), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('created_at', hangar.store.models.UTCDateTime(), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('airflow_version', sa.String(length=16), nullable=False),
    sa.Column('fernet_wrapped_key', sa.LargeBinary(), nullable=False),
    sa.Column('fernet_ciphertext', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['environment_id'], ['environments.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('snapshots', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_snapshots_environment_id'), ['environment_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('snapshots', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_snapshots_environment_id'))
    op.drop_table('snapshots')

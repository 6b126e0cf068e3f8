"""worker hosts

Revision ID: 0008_worker_hosts
Revises: 0007_worker_samples
Create Date: 2026-11-21 11:00:00.000000

Hosts that join a Celery environment's workers: the tokens they join with (only each
token's sha256 is stored) and what each host reported in its last heartbeat.
"""
from alembic import op
import sqlalchemy as sa
import hangar.store.models


revision = '0008_worker_hosts'
down_revision = '0007_worker_samples'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'worker_tokens',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('environment_id', sa.String(length=36), nullable=False),
        sa.Column('label', sa.String(length=200), nullable=True),
        sa.Column('token_sha256', sa.String(length=64), nullable=False),
        sa.Column('created_at', hangar.store.models.UTCDateTime(), nullable=False),
        sa.Column('revoked_at', hangar.store.models.UTCDateTime(), nullable=True),
        sa.Column('last_used_at', hangar.store.models.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(['environment_id'], ['environments.id'], ),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('token_sha256'),
    )
    with op.batch_alter_table('worker_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_worker_tokens_environment_id'), ['environment_id'], unique=False)

    op.create_table(
        'worker_hosts',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('environment_id', sa.String(length=36), nullable=False),
        sa.Column('token_id', sa.String(length=32), nullable=False),
        sa.Column('hostname', sa.String(length=253), nullable=False),
        sa.Column('address', sa.String(length=64), nullable=False),
        sa.Column('concurrency', sa.Integer(), nullable=False),
        sa.Column('joined_at', hangar.store.models.UTCDateTime(), nullable=False),
        sa.Column('last_heartbeat_at', hangar.store.models.UTCDateTime(), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('running_tasks', sa.Integer(), nullable=False),
        sa.Column('workers', sa.JSON(), nullable=False),
        sa.Column('airflow_version', sa.String(length=32), nullable=True),
        sa.Column('runtime_key', sa.String(length=128), nullable=True),
        sa.ForeignKeyConstraint(['environment_id'], ['environments.id'], ),
        sa.ForeignKeyConstraint(['token_id'], ['worker_tokens.id'], ),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('worker_hosts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_worker_hosts_token_id'), ['token_id'], unique=False)
        batch_op.create_index('uq_worker_hosts_environment_hostname', ['environment_id', 'hostname'], unique=True)


def downgrade() -> None:
    with op.batch_alter_table('worker_hosts', schema=None) as batch_op:
        batch_op.drop_index('uq_worker_hosts_environment_hostname')
        batch_op.drop_index(batch_op.f('ix_worker_hosts_token_id'))
    op.drop_table('worker_hosts')
    with op.batch_alter_table('worker_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_worker_tokens_environment_id'))
    op.drop_table('worker_tokens')

"""worker samples

Revision ID: 0007_worker_samples
Revises: 0006
Create Date: 2026-11-21 10:30:00.000000

The autoscaler's readings of Celery environments (current and desired workers, queued and
running task instances), kept as a time series.
"""
from alembic import op
import sqlalchemy as sa
import hangar.store.models


revision = '0007_worker_samples'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'worker_samples',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('environment_id', sa.String(length=36), nullable=False),
        sa.Column('at', hangar.store.models.UTCDateTime(), nullable=False),
        sa.Column('current', sa.Integer(), nullable=False),
        sa.Column('desired', sa.Integer(), nullable=False),
        sa.Column('queued', sa.Integer(), nullable=False),
        sa.Column('running', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['environment_id'], ['environments.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('worker_samples', schema=None) as batch_op:
        batch_op.create_index('ix_worker_samples_environment_id', ['environment_id'], unique=False)
        batch_op.create_index('ix_worker_samples_at', ['at'], unique=False)


def downgrade() -> None:
    op.drop_table('worker_samples')

"""metric samples

Revision ID: 0010_metric_samples
Revises: 0009_typed_steps
Create Date: 2026-12-07 22:10:00.000000

Every series of an environment every metrics_sample_seconds, kept as a time series for
`hangar env metrics` and the console's charts.
"""
from alembic import op
import sqlalchemy as sa
import hangar.store.models


revision = '0010_metric_samples'
down_revision = '0009_typed_steps'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'metric_samples',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('environment_id', sa.String(length=36), nullable=False),
        sa.Column('at', hangar.store.models.UTCDateTime(), nullable=False),
        sa.Column('values', sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(['environment_id'], ['environments.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('metric_samples', schema=None) as batch_op:
        batch_op.create_index('ix_metric_samples_environment_id', ['environment_id'], unique=False)
        batch_op.create_index('ix_metric_samples_at', ['at'], unique=False)


def downgrade() -> None:
    op.drop_table('metric_samples')

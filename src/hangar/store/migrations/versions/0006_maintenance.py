"""maintenance

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 09:00:00.000000

Maintenance on environments: the runtime epoch (0 keeps the runtime keys every existing
environment runs on) and the rebuild Hangar wants, with its reason and when it was asked for.
"""
from alembic import op
import sqlalchemy as sa
import hangar.store.models


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('environments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('runtime_epoch', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('maintenance_pending', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('maintenance_requested_at', hangar.store.models.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('environments', schema=None) as batch_op:
        batch_op.drop_column('maintenance_requested_at')
        batch_op.drop_column('maintenance_pending')
        batch_op.drop_column('runtime_epoch')

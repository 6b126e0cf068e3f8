"""console sessions

Revision ID: 0012_console_sessions
Revises: 0011_alerts
Create Date: 2026-12-08 01:10:00.000000

The console's signed-in browsers (hangar.store.console_sessions).
"""
from alembic import op
import sqlalchemy as sa
import hangar.store.models


revision = '0012_console_sessions'
down_revision = '0011_alerts'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'console_sessions',
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('principal_id', sa.String(length=64), nullable=False),
        sa.Column('role', sa.String(length=16), nullable=False),
        sa.Column('created_at', hangar.store.models.UTCDateTime(), nullable=False),
        sa.Column('last_seen_at', hangar.store.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_console_sessions_last_seen_at', 'console_sessions', ['last_seen_at'])


def downgrade() -> None:
    op.drop_index('ix_console_sessions_last_seen_at', table_name='console_sessions')
    op.drop_table('console_sessions')

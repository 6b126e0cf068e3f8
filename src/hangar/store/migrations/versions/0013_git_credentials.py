"""git credentials

Revision ID: 0013_git_credentials
Revises: 0012_console_sessions
Create Date: 2026-12-08 01:40:00.000000

HTTPS tokens and SSH deploy keys for git DAG sources (hangar.store.git_credentials).
"""
from alembic import op
import sqlalchemy as sa
import hangar.store.models


revision = '0013_git_credentials'
down_revision = '0012_console_sessions'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'git_credentials',
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('kind', sa.String(length=8), nullable=False),
        sa.Column('secret_key', sa.LargeBinary(), nullable=False),
        sa.Column('secret', sa.LargeBinary(), nullable=False),
        sa.Column('known_hosts', sa.Text(), nullable=True),
        sa.Column('created_at', hangar.store.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('name'),
    )


def downgrade() -> None:
    op.drop_table('git_credentials')

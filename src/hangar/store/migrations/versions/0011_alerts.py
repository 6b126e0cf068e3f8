"""alerts

Revision ID: 0011_alerts
Revises: 0010_metric_samples
Create Date: 2026-12-07 22:30:00.000000

Alert rules, their incidents and deliveries, and encrypted control-plane settings (SMTP).
"""
from alembic import op
import sqlalchemy as sa
import hangar.store.models


revision = '0011_alerts'
down_revision = '0010_metric_samples'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'alert_rules',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('name', sa.String(length=80), nullable=False),
        sa.Column('environment_id', sa.String(length=36), nullable=True),
        sa.Column('event', sa.String(length=40), nullable=False),
        sa.Column('threshold', sa.Float(), nullable=True),
        sa.Column('dag_id', sa.String(length=250), nullable=True),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('target_key', sa.LargeBinary(), nullable=False),
        sa.Column('target', sa.LargeBinary(), nullable=False),
        sa.Column('secret_key', sa.LargeBinary(), nullable=True),
        sa.Column('secret', sa.LargeBinary(), nullable=True),
        sa.Column('created_at', hangar.store.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['environment_id'], ['environments.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('name'),
    )
    op.create_index('ix_alert_rules_environment_id', 'alert_rules', ['environment_id'])
    op.create_table(
        'alert_incidents',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('rule_id', sa.Integer(), nullable=False),
        sa.Column('environment_id', sa.String(length=36), nullable=False),
        sa.Column('key', sa.String(length=300), nullable=False),
        sa.Column('summary', sa.Text(), nullable=False),
        sa.Column('opened_at', hangar.store.models.UTCDateTime(), nullable=False),
        sa.Column('resolved_at', hangar.store.models.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(['rule_id'], ['alert_rules.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['environment_id'], ['environments.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_alert_incidents_open', 'alert_incidents', ['rule_id', 'environment_id', 'key', 'resolved_at'])
    op.create_table(
        'alert_deliveries',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('rule_id', sa.Integer(), nullable=False),
        sa.Column('incident_id', sa.Integer(), nullable=True),
        sa.Column('environment_name', sa.String(length=80), nullable=True),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('payload', sa.JSON(), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', hangar.store.models.UTCDateTime(), nullable=False),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('created_at', hangar.store.models.UTCDateTime(), nullable=False),
        sa.Column('delivered_at', hangar.store.models.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(['rule_id'], ['alert_rules.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['incident_id'], ['alert_incidents.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_alert_deliveries_rule_id', 'alert_deliveries', ['rule_id'])
    op.create_index('ix_alert_deliveries_state', 'alert_deliveries', ['state'])
    op.create_table(
        'secret_settings',
        sa.Column('name', sa.String(length=40), nullable=False),
        sa.Column('wrapped_key', sa.LargeBinary(), nullable=False),
        sa.Column('ciphertext', sa.LargeBinary(), nullable=False),
        sa.Column('updated_at', hangar.store.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('name'),
    )


def downgrade() -> None:
    op.drop_table('alert_deliveries')
    op.drop_table('alert_incidents')
    op.drop_table('alert_rules')
    op.drop_table('secret_settings')

"""kms keys

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 09:00:00.000000

KMS keys and their versions, and on each secret the key version that wraps its data
key. Existing secrets keep NULL there: they are read with the master key and
re-wrapped under their environment's key on the next write.
"""
from alembic import op
import sqlalchemy as sa
import hangar.store.models


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('kms_keys',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('alias', sa.String(length=256), nullable=True),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('managed', sa.Boolean(), nullable=False),
    sa.Column('current_version', sa.Integer(), nullable=False),
    sa.Column('created_at', hangar.store.models.UTCDateTime(), nullable=False),
    sa.Column('rotated_at', hangar.store.models.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('alias')
    )
    op.create_table('kms_key_versions',
    sa.Column('key_id', sa.String(length=36), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('wrapped_material', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', hangar.store.models.UTCDateTime(), nullable=False),
    sa.Column('superseded_at', hangar.store.models.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['key_id'], ['kms_keys.id'], ),
    sa.PrimaryKeyConstraint('key_id', 'version')
    )
    with op.batch_alter_table('secrets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kms_key_id', sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column('kms_key_version', sa.Integer(), nullable=True))
        batch_op.create_foreign_key('fk_secrets_kms_key_id_kms_keys', 'kms_keys', ['kms_key_id'], ['id'])


def downgrade() -> None:
    with op.batch_alter_table('secrets', schema=None) as batch_op:
        batch_op.drop_constraint('fk_secrets_kms_key_id_kms_keys', type_='foreignkey')
        batch_op.drop_column('kms_key_version')
        batch_op.drop_column('kms_key_id')
    op.drop_table('kms_key_versions')
    op.drop_table('kms_keys')

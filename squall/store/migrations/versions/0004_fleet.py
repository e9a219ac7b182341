"""fleet

Revision ID: 0004
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('execution_hosts',
    sa.Column('execution_id', sa.String(length=32), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('result', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=True),
    sa.Column('updated_at', sa.Double(), nullable=False),
    sa.PrimaryKeyConstraint('execution_id', 'host', name=op.f('pk_execution_hosts'))
    )
    op.create_table('host_facts',
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('facts', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=False),
    sa.Column('gathered_at', sa.Double(), nullable=False),
    sa.PrimaryKeyConstraint('host', name=op.f('pk_host_facts'))
    )


def downgrade() -> None:
    op.drop_table('host_facts')
    op.drop_table('execution_hosts')

"""rollouts: rollback, metric analysis, folded outputs, the decision log

Revision ID: 0006
Revises: 0005
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), 'postgresql')


def upgrade() -> None:
    with op.batch_alter_table('rollouts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('rollback', _JSON, nullable=True))
        batch_op.add_column(sa.Column('analysis', _JSON, nullable=True))
    with op.batch_alter_table('rollout_hosts', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('changed', sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(sa.Column('undo', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('output', sa.Text(), nullable=True))
    op.create_table('rollout_log',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('rollout_id', sa.String(length=32), nullable=False),
    sa.Column('at', sa.Double(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('user', sa.String(length=255), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rollout_log'))
    )
    with op.batch_alter_table('rollout_log', schema=None) as batch_op:
        batch_op.create_index('ix_rollout_log_rollout', ['rollout_id', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('rollout_log', schema=None) as batch_op:
        batch_op.drop_index('ix_rollout_log_rollout')
    op.drop_table('rollout_log')
    with op.batch_alter_table('rollout_hosts', schema=None) as batch_op:
        batch_op.drop_column('output')
        batch_op.drop_column('undo')
        batch_op.drop_column('changed')
    with op.batch_alter_table('rollouts', schema=None) as batch_op:
        batch_op.drop_column('analysis')
        batch_op.drop_column('rollback')

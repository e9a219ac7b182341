"""executions: indexes for the newest-first lists, one per filter

Revision ID: 0008
Revises: 0007
"""
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('executions', schema=None) as batch_op:
        batch_op.drop_index('ix_executions_status')
        batch_op.drop_index('ix_executions_parent_id')
        batch_op.drop_index('ix_executions_start_timestamp')
        batch_op.create_index('ix_executions_start', ['start_timestamp', 'id'], unique=False)
        batch_op.create_index(
            'ix_executions_action_start', ['action_ref', 'start_timestamp', 'id'], unique=False
        )
        batch_op.create_index(
            'ix_executions_status_start', ['status', 'start_timestamp', 'id'], unique=False
        )
        batch_op.create_index(
            'ix_executions_parent_start', ['parent_id', 'start_timestamp', 'id'], unique=False
        )
        batch_op.create_index(
            'ix_executions_user_start', ['user', 'start_timestamp', 'id'], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table('executions', schema=None) as batch_op:
        batch_op.drop_index('ix_executions_user_start')
        batch_op.drop_index('ix_executions_parent_start')
        batch_op.drop_index('ix_executions_status_start')
        batch_op.drop_index('ix_executions_action_start')
        batch_op.drop_index('ix_executions_start')
        batch_op.create_index('ix_executions_start_timestamp', ['start_timestamp'], unique=False)
        batch_op.create_index('ix_executions_parent_id', ['parent_id'], unique=False)
        batch_op.create_index('ix_executions_status', ['status'], unique=False)

"""initial schema

Revision ID: 0001
Revises: 
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('actions',
    sa.Column('ref', sa.String(length=512), nullable=False),
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('pack', sa.String(length=255), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('runner_type', sa.String(length=64), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('meta', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=False),
    sa.Column('updated_at', sa.Double(), nullable=False),
    sa.PrimaryKeyConstraint('ref', name=op.f('pk_actions')),
    sa.UniqueConstraint('id', name=op.f('uq_actions_id'))
    )
    with op.batch_alter_table('actions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_actions_pack'), ['pack'], unique=False)

    op.create_table('api_keys',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('key_hash', sa.String(length=128), nullable=False),
    sa.Column('user', sa.String(length=255), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('metadata', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=False),
    sa.Column('created_at', sa.Double(), nullable=False),
    sa.Column('expires_at', sa.Double(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_keys')),
    sa.UniqueConstraint('key_hash', name=op.f('uq_api_keys_key_hash'))
    )
    op.create_table('execution_output',
    sa.Column('seq', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('execution_id', sa.String(length=32), nullable=False),
    sa.Column('stream', sa.String(length=16), nullable=False),
    sa.Column('data', sa.Text(), nullable=False),
    sa.Column('timestamp', sa.Double(), nullable=False),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_execution_output'))
    )
    with op.batch_alter_table('execution_output', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_execution_output_execution_id'), ['execution_id'], unique=False)

    op.create_table('executions',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('action_ref', sa.String(length=512), nullable=False),
    sa.Column('runner_type', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('action', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=False),
    sa.Column('parameters', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=False),
    sa.Column('result', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=True),
    sa.Column('context', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=False),
    sa.Column('log', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=False),
    sa.Column('parent_id', sa.String(length=32), nullable=True),
    sa.Column('user', sa.String(length=255), nullable=True),
    sa.Column('start_timestamp', sa.Double(), nullable=False),
    sa.Column('end_timestamp', sa.Double(), nullable=True),
    sa.Column('output_bytes', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_executions'))
    )
    with op.batch_alter_table('executions', schema=None) as batch_op:
        batch_op.create_index('ix_executions_action_status', ['action_ref', 'status'], unique=False)
        batch_op.create_index(batch_op.f('ix_executions_end_timestamp'), ['end_timestamp'], unique=False)
        batch_op.create_index(batch_op.f('ix_executions_parent_id'), ['parent_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_executions_start_timestamp'), ['start_timestamp'], unique=False)
        batch_op.create_index('ix_executions_status', ['status'], unique=False)

    op.create_table('kv',
    sa.Column('scope', sa.String(length=16), nullable=False),
    sa.Column('owner', sa.String(length=255), nullable=False),
    sa.Column('name', sa.String(length=512), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.Column('secret', sa.Boolean(), nullable=False),
    sa.Column('expire_at', sa.Double(), nullable=True),
    sa.Column('updated_at', sa.Double(), nullable=False),
    sa.PrimaryKeyConstraint('scope', 'owner', 'name', name=op.f('pk_kv'))
    )
    with op.batch_alter_table('kv', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_kv_expire_at'), ['expire_at'], unique=False)

    op.create_table('packs',
    sa.Column('ref', sa.String(length=255), nullable=False),
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('meta', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=False),
    sa.Column('config_schema', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=True),
    sa.Column('config', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=True),
    sa.Column('files', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=False),
    sa.Column('registered_at', sa.Double(), nullable=False),
    sa.PrimaryKeyConstraint('ref', name=op.f('pk_packs')),
    sa.UniqueConstraint('id', name=op.f('uq_packs_id'))
    )
    op.create_table('policies',
    sa.Column('ref', sa.String(length=512), nullable=False),
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('pack', sa.String(length=255), nullable=False),
    sa.Column('resource_ref', sa.String(length=512), nullable=False),
    sa.Column('policy_type', sa.String(length=128), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('meta', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=False),
    sa.PrimaryKeyConstraint('ref', name=op.f('pk_policies')),
    sa.UniqueConstraint('id', name=op.f('uq_policies_id'))
    )
    with op.batch_alter_table('policies', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_policies_pack'), ['pack'], unique=False)
        batch_op.create_index(batch_op.f('ix_policies_resource_ref'), ['resource_ref'], unique=False)

    op.create_table('tokens',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('token_hash', sa.String(length=128), nullable=False),
    sa.Column('user', sa.String(length=255), nullable=False),
    sa.Column('metadata', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=False),
    sa.Column('created_at', sa.Double(), nullable=False),
    sa.Column('expiry', sa.Double(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_tokens_token_hash'))
    )
    with op.batch_alter_table('tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tokens_expiry'), ['expiry'], unique=False)

    op.create_table('trigger_instances',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('trigger', sa.String(length=512), nullable=False),
    sa.Column('payload', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('occurrence_time', sa.Double(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_trigger_instances'))
    )
    with op.batch_alter_table('trigger_instances', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_trigger_instances_occurrence_time'), ['occurrence_time'], unique=False)
        batch_op.create_index(batch_op.f('ix_trigger_instances_trigger'), ['trigger'], unique=False)

    op.create_table('users',
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('password_hash', sa.Text(), nullable=True),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('is_admin', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.Double(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_users'))
    )
    op.create_table('work',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('topic', sa.String(length=64), nullable=False),
    sa.Column('ref', sa.String(length=64), nullable=False),
    sa.Column('payload', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=True),
    sa.Column('available_at', sa.Double(), nullable=False),
    sa.Column('lease_owner', sa.String(length=64), nullable=True),
    sa.Column('lease_expires', sa.Double(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.Double(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_work'))
    )
    with op.batch_alter_table('work', schema=None) as batch_op:
        batch_op.create_index('ix_work_ref', ['ref'], unique=False)
        batch_op.create_index('ix_work_topic_available', ['topic', 'available_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('work', schema=None) as batch_op:
        batch_op.drop_index('ix_work_topic_available')
        batch_op.drop_index('ix_work_ref')

    op.drop_table('work')
    op.drop_table('users')
    with op.batch_alter_table('trigger_instances', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_trigger_instances_trigger'))
        batch_op.drop_index(batch_op.f('ix_trigger_instances_occurrence_time'))

    op.drop_table('trigger_instances')
    with op.batch_alter_table('tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tokens_expiry'))

    op.drop_table('tokens')
    with op.batch_alter_table('policies', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_policies_resource_ref'))
        batch_op.drop_index(batch_op.f('ix_policies_pack'))

    op.drop_table('policies')
    op.drop_table('packs')
    with op.batch_alter_table('kv', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_kv_expire_at'))

    op.drop_table('kv')
    with op.batch_alter_table('executions', schema=None) as batch_op:
        batch_op.drop_index('ix_executions_status')
        batch_op.drop_index(batch_op.f('ix_executions_start_timestamp'))
        batch_op.drop_index(batch_op.f('ix_executions_parent_id'))
        batch_op.drop_index(batch_op.f('ix_executions_end_timestamp'))
        batch_op.drop_index('ix_executions_action_status')

    op.drop_table('executions')
    with op.batch_alter_table('execution_output', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_execution_output_execution_id'))

    op.drop_table('execution_output')
    op.drop_table('api_keys')
    with op.batch_alter_table('actions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_actions_pack'))

    op.drop_table('actions')

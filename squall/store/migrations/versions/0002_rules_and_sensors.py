"""rules and sensors

Revision ID: 0002
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('rule_enforcements',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('rule_ref', sa.String(length=512), nullable=False),
    sa.Column('rule_id', sa.String(length=32), nullable=False),
    sa.Column('trigger_instance_id', sa.String(length=32), nullable=False),
    sa.Column('execution_id', sa.String(length=32), nullable=True),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('failure_reason', sa.Text(), nullable=True),
    sa.Column('enforced_at', sa.Double(), nullable=False),
    sa.Column('details', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rule_enforcements'))
    )
    with op.batch_alter_table('rule_enforcements', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_rule_enforcements_enforced_at'), ['enforced_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_rule_enforcements_execution_id'), ['execution_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_rule_enforcements_rule_ref'), ['rule_ref'], unique=False)
        batch_op.create_index(batch_op.f('ix_rule_enforcements_trigger_instance_id'), ['trigger_instance_id'], unique=False)

    op.create_table('rule_windows',
    sa.Column('rule_ref', sa.String(length=512), nullable=False),
    sa.Column('group_key', sa.String(length=512), nullable=False),
    sa.Column('opened_at', sa.Double(), nullable=False),
    sa.Column('closes_at', sa.Double(), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('instances', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=False),
    sa.PrimaryKeyConstraint('rule_ref', 'group_key', name=op.f('pk_rule_windows'))
    )
    op.create_table('rules',
    sa.Column('ref', sa.String(length=512), nullable=False),
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('pack', sa.String(length=255), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('trigger_type', sa.String(length=512), nullable=False),
    sa.Column('trigger_ref', sa.String(length=512), nullable=False),
    sa.Column('meta', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('updated_at', sa.Double(), nullable=False),
    sa.PrimaryKeyConstraint('ref', name=op.f('pk_rules')),
    sa.UniqueConstraint('id', name=op.f('uq_rules_id'))
    )
    with op.batch_alter_table('rules', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_rules_pack'), ['pack'], unique=False)
        batch_op.create_index(batch_op.f('ix_rules_trigger_ref'), ['trigger_ref'], unique=False)
        batch_op.create_index(batch_op.f('ix_rules_trigger_type'), ['trigger_type'], unique=False)

    op.create_table('sensors',
    sa.Column('ref', sa.String(length=512), nullable=False),
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('pack', sa.String(length=255), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('meta', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('state_info', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=False),
    sa.Column('state_at', sa.Double(), nullable=False),
    sa.PrimaryKeyConstraint('ref', name=op.f('pk_sensors')),
    sa.UniqueConstraint('id', name=op.f('uq_sensors_id'))
    )
    with op.batch_alter_table('sensors', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sensors_pack'), ['pack'], unique=False)

    op.create_table('trigger_types',
    sa.Column('ref', sa.String(length=512), nullable=False),
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('pack', sa.String(length=255), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('meta', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=False),
    sa.PrimaryKeyConstraint('ref', name=op.f('pk_trigger_types')),
    sa.UniqueConstraint('id', name=op.f('uq_trigger_types_id'))
    )
    with op.batch_alter_table('trigger_types', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_trigger_types_pack'), ['pack'], unique=False)

    op.create_table('triggers',
    sa.Column('ref', sa.String(length=512), nullable=False),
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('type', sa.String(length=512), nullable=False),
    sa.Column('pack', sa.String(length=255), nullable=False),
    sa.Column('parameters', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=False),
    sa.PrimaryKeyConstraint('ref', name=op.f('pk_triggers')),
    sa.UniqueConstraint('id', name=op.f('uq_triggers_id'))
    )
    with op.batch_alter_table('triggers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_triggers_type'), ['type'], unique=False)

    with op.batch_alter_table('trigger_instances', schema=None) as batch_op:
        batch_op.add_column(sa.Column('context', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=True))
        batch_op.create_index(batch_op.f('ix_trigger_instances_status'), ['status'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('trigger_instances', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_trigger_instances_status'))
        batch_op.drop_column('context')

    with op.batch_alter_table('triggers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_triggers_type'))

    op.drop_table('triggers')
    with op.batch_alter_table('trigger_types', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_trigger_types_pack'))

    op.drop_table('trigger_types')
    with op.batch_alter_table('sensors', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sensors_pack'))

    op.drop_table('sensors')
    with op.batch_alter_table('rules', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rules_trigger_type'))
        batch_op.drop_index(batch_op.f('ix_rules_trigger_ref'))
        batch_op.drop_index(batch_op.f('ix_rules_pack'))

    op.drop_table('rules')
    op.drop_table('rule_windows')
    with op.batch_alter_table('rule_enforcements', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rule_enforcements_trigger_instance_id'))
        batch_op.drop_index(batch_op.f('ix_rule_enforcements_rule_ref'))
        batch_op.drop_index(batch_op.f('ix_rule_enforcements_execution_id'))
        batch_op.drop_index(batch_op.f('ix_rule_enforcements_enforced_at'))

    op.drop_table('rule_enforcements')

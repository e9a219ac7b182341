"""the audit trail: append-only, hash-chained

Revision ID: 0007
Revises: 0006
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), 'postgresql')
_BIG = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
_COLUMNS = ('seq', 'at', 'actor', 'kind', 'action', 'target', 'outcome', 'source', 'details')
_MESSAGE = 'the audit trail is append-only: records cannot be changed or deleted'


def upgrade() -> None:
    op.create_table('audit',
    sa.Column('seq', _BIG, autoincrement=True, nullable=False),
    sa.Column('at', sa.Double(), nullable=False),
    sa.Column('actor', sa.String(length=255), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('action', sa.String(length=255), nullable=False),
    sa.Column('target', sa.String(length=255), nullable=True),
    sa.Column('outcome', sa.String(length=32), nullable=False),
    sa.Column('source', sa.String(length=64), nullable=True),
    sa.Column('details', _JSON, nullable=True),
    sa.Column('position', _BIG, nullable=True),
    sa.Column('hash', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_audit')),
    sa.UniqueConstraint('position', name=op.f('uq_audit_position'))
    )
    with op.batch_alter_table('audit', schema=None) as batch_op:
        batch_op.create_index('ix_audit_actor', ['actor', 'seq'], unique=False)
        batch_op.create_index('ix_audit_at', ['at'], unique=False)
        batch_op.create_index('ix_audit_kind', ['kind', 'seq'], unique=False)
    # Only sealing (setting position and hash, once) may touch a record.
    changed = ' OR '.join(f'NEW.{c} IS DISTINCT FROM OLD.{c}' for c in _COLUMNS)
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(f"""
            CREATE FUNCTION squall_audit_append_only() RETURNS trigger AS $$
            BEGIN
                IF TG_OP <> 'UPDATE' THEN
                    RAISE EXCEPTION '{_MESSAGE}';
                END IF;
                IF OLD.hash IS NOT NULL OR {changed} THEN
                    RAISE EXCEPTION '{_MESSAGE}';
                END IF;
                RETURN NEW;
            END $$ LANGUAGE plpgsql""")
        op.execute(
            'CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit '
            'FOR EACH ROW EXECUTE FUNCTION squall_audit_append_only()'
        )
        op.execute('CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit '
                   'FOR EACH STATEMENT EXECUTE FUNCTION squall_audit_append_only()')
    else:
        sqlite_changed = changed.replace('IS DISTINCT FROM', 'IS NOT')
        op.execute(
            f"CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit "
            f"BEGIN SELECT RAISE(ABORT, '{_MESSAGE}'); END"
        )
        op.execute(
            f"CREATE TRIGGER audit_seal_only BEFORE UPDATE ON audit "
            f"WHEN OLD.hash IS NOT NULL OR {sqlite_changed} "
            f"BEGIN SELECT RAISE(ABORT, '{_MESSAGE}'); END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('DROP TRIGGER IF EXISTS audit_no_truncate ON audit')
        op.execute('DROP TRIGGER IF EXISTS audit_append_only ON audit')
        op.execute('DROP FUNCTION IF EXISTS squall_audit_append_only()')
    with op.batch_alter_table('audit', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_kind')
        batch_op.drop_index('ix_audit_at')
        batch_op.drop_index('ix_audit_actor')
    op.drop_table('audit')

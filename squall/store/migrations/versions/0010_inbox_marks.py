"""inbox_marks: how far each webhook inbox has been taken

Revision ID: 0010
Revises: 0009
"""
from alembic import op
import sqlalchemy as sa

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('inbox_marks',
    sa.Column('inbox', sa.String(length=64), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('inbox', name=op.f('pk_inbox_marks'))
    )


def downgrade() -> None:
    op.drop_table('inbox_marks')

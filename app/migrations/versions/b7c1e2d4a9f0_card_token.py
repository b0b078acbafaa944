"""card token

Revision ID: b7c1e2d4a9f0
Revises: df778217556e
Create Date: 2026-11-22 15:10:00

"""

import sqlalchemy as sa
from alembic import op

revision = "b7c1e2d4a9f0"
down_revision = "df778217556e"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("workspaces") as batch_op:
        batch_op.add_column(sa.Column("card_token_encrypted", sa.Text(), nullable=True))


def downgrade():
    with op.batch_alter_table("workspaces") as batch_op:
        batch_op.drop_column("card_token_encrypted")

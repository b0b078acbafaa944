"""workspaces: named extra signing secrets (vendors that make one secret per webhook)

Revision ID: 3f9a7c21d6e4
Revises: 3f8a1c5e9b27
Create Date: 2026-11-24 10:00:00.000000

"""

import sqlalchemy as sa
from alembic import op

revision = "3f9a7c21d6e4"
down_revision = "3f8a1c5e9b27"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("workspaces") as batch:
        batch.add_column(sa.Column("extra_secrets_encrypted", sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table("workspaces") as batch:
        batch.drop_column("extra_secrets_encrypted")

"""workspaces.klaviyo_key_encrypted nullable: a workspace may connect Klaviyo with OAuth only

Revision ID: 739c5b41af5b
Revises: 9d3f6b1a7c20
Create Date: 2026-11-25 10:00:00.000000

"""

import sqlalchemy as sa
from alembic import op

revision = "739c5b41af5b"
down_revision = "9d3f6b1a7c20"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("workspaces") as batch_op:
        batch_op.alter_column("klaviyo_key_encrypted", existing_type=sa.Text(), nullable=True)


def downgrade():
    keyless = op.get_bind().scalar(
        sa.text("SELECT count(*) FROM workspaces WHERE klaviyo_key_encrypted IS NULL")
    )
    if keyless:
        raise RuntimeError(
            f"{keyless} workspaces have no Klaviyo private key (OAuth only): give each one a key first"
        )
    with op.batch_alter_table("workspaces") as batch_op:
        batch_op.alter_column("klaviyo_key_encrypted", existing_type=sa.Text(), nullable=False)

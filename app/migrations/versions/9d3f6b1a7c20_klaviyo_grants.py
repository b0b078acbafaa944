"""klaviyo_grants: a workspace's Klaviyo OAuth tokens (encrypted) and the account that approved them

Revision ID: 9d3f6b1a7c20
Revises: b7e1c94d2a60
Create Date: 2026-11-24 10:00:00.000000

"""

import sqlalchemy as sa
from alembic import op

revision = "9d3f6b1a7c20"
down_revision = "b7e1c94d2a60"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "klaviyo_grants",
        sa.Column("workspace_id", sa.String(length=36), nullable=False),
        sa.Column("access_token_encrypted", sa.Text(), nullable=False),
        sa.Column("refresh_token_encrypted", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("scopes", sa.Text(), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("account_name", sa.String(length=255), nullable=True),
        sa.Column("connected_by", sa.String(length=320), nullable=True),
        sa.Column("connected_at", sa.DateTime(), nullable=False),
        sa.Column("refreshed_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("workspace_id"),
    )


def downgrade():
    op.drop_table("klaviyo_grants")

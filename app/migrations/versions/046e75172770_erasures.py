"""erasures (kept as a keyed hash of the identifier, never the address); receipts by time, for retention

Revision ID: 046e75172770
Revises: 739c5b41af5b
Create Date: 2026-11-28 03:20:00.000000

"""

import sqlalchemy as sa
from alembic import op

revision = "046e75172770"
down_revision = "739c5b41af5b"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "erasures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workspace_id", sa.String(length=36), nullable=False),
        sa.Column("identifier_kind", sa.String(length=20), nullable=False),
        sa.Column("identifier_hash", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=40), nullable=False),
        sa.Column("requested_by", sa.String(length=320), nullable=True),
        sa.Column("customers_removed", sa.Integer(), nullable=False),
        sa.Column("deliveries_cancelled", sa.Integer(), nullable=False),
        sa.Column("deliveries_scrubbed", sa.Integer(), nullable=False),
        sa.Column("klaviyo_deliveries", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_erasures_workspace_id", "erasures", ["workspace_id"])
    op.create_index("ix_erasures_identifier_hash", "erasures", ["identifier_hash"])
    op.create_index("ix_receipts_workspace_received", "receipts", ["workspace_id", "received_at"])


def downgrade():
    op.drop_index("ix_receipts_workspace_received", table_name="receipts")
    op.drop_index("ix_erasures_identifier_hash", table_name="erasures")
    op.drop_index("ix_erasures_workspace_id", table_name="erasures")
    op.drop_table("erasures")

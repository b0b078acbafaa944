"""admin: webhook secret rotation, delivery email and replay time, admin login bookkeeping

Revision ID: c4d2a8e1f5b3
Revises: b7c1e2d4a9f0
Create Date: 2026-11-23 14:00:00

"""

import sqlalchemy as sa
from alembic import op

revision = "c4d2a8e1f5b3"
down_revision = "b7c1e2d4a9f0"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("workspaces") as batch_op:
        batch_op.add_column(sa.Column("previous_webhook_secret_encrypted", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("previous_secret_expires_at", sa.DateTime(), nullable=True))
    with op.batch_alter_table("deliveries") as batch_op:
        batch_op.add_column(sa.Column("email", sa.String(length=320), nullable=True))
        batch_op.add_column(sa.Column("replayed_at", sa.DateTime(), nullable=True))
        batch_op.create_index("ix_deliveries_workspace_email", ["workspace_id", "email"])
        batch_op.create_index("ix_deliveries_workspace_created", ["workspace_id", "created_at"])
    with op.batch_alter_table("users") as batch_op:
        batch_op.add_column(sa.Column("last_login_at", sa.DateTime(), nullable=True))


def downgrade():
    with op.batch_alter_table("users") as batch_op:
        batch_op.drop_column("last_login_at")
    with op.batch_alter_table("deliveries") as batch_op:
        batch_op.drop_index("ix_deliveries_workspace_created")
        batch_op.drop_index("ix_deliveries_workspace_email")
        batch_op.drop_column("replayed_at")
        batch_op.drop_column("email")
    with op.batch_alter_table("workspaces") as batch_op:
        batch_op.drop_column("previous_secret_expires_at")
        batch_op.drop_column("previous_webhook_secret_encrypted")

"""accounts scoped to workspaces: operators, memberships with a role, server-side sessions

Every user that exists before this migration becomes an operator (may do everything, as before),
so a single-admin deployment keeps working; new users are not operators unless made so.

Revision ID: 3f8a1c5e9b27
Revises: 6a2405ae77fa
Create Date: 2026-11-24 10:00:00

"""

import sqlalchemy as sa
from alembic import op

revision = "3f8a1c5e9b27"
down_revision = "6a2405ae77fa"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("users") as batch_op:
        batch_op.add_column(sa.Column("is_operator", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.execute(sa.text("UPDATE users SET is_operator = :yes").bindparams(yes=True))
    op.create_table(
        "memberships",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("workspace_id", sa.String(length=36), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("user_id", "workspace_id"),
    )
    with op.batch_alter_table("memberships") as batch_op:
        batch_op.create_index("ix_memberships_user_id", ["user_id"])
        batch_op.create_index("ix_memberships_workspace_id", ["workspace_id"])
    op.create_table(
        "user_sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("user_sessions") as batch_op:
        batch_op.create_index("ix_user_sessions_user_id", ["user_id"])


def downgrade():
    op.drop_table("user_sessions")
    op.drop_table("memberships")
    with op.batch_alter_table("users") as batch_op:
        batch_op.drop_column("is_operator")

"""backfills: their checkpoints, problems and profile import jobs

Revision ID: 6a2405ae77fa
Revises: e5f3b9c2d7a1
Create Date: 2026-11-23 15:40:53.750169

"""

import sqlalchemy as sa
from alembic import op

revision = "6a2405ae77fa"
down_revision = "e5f3b9c2d7a1"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "backfills",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workspace_id", sa.String(length=36), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("source_name", sa.String(length=255), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("upload", sa.LargeBinary(), nullable=True),
        sa.Column("total", sa.Integer(), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("events_through", sa.Integer(), nullable=False),
        sa.Column("events_cursor", sa.JSON(), nullable=True),
        sa.Column("profiles_through", sa.Integer(), nullable=False),
        sa.Column("profiles_cursor", sa.JSON(), nullable=True),
        sa.Column("events_sent", sa.Integer(), nullable=False),
        sa.Column("events_failed", sa.Integer(), nullable=False),
        sa.Column("events_skipped", sa.Integer(), nullable=False),
        sa.Column("profiles_sent", sa.Integer(), nullable=False),
        sa.Column("profiles_failed", sa.Integer(), nullable=False),
        sa.Column("profiles_skipped", sa.Integer(), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("skipped_reasons", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(length=320), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("lease_owner", sa.String(length=36), nullable=True),
        sa.Column("lease_until", sa.DateTime(), nullable=True),
        sa.Column("seconds_spent", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("backfills", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_backfills_fingerprint"), ["fingerprint"], unique=False)
        batch_op.create_index(batch_op.f("ix_backfills_workspace_id"), ["workspace_id"], unique=False)

    op.create_table(
        "backfill_problems",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("backfill_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=True),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("what", sa.String(length=40), nullable=False),
        sa.Column("conversation_id", sa.String(length=255), nullable=True),
        sa.Column("customer_id", sa.String(length=255), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["backfill_id"], ["backfills.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("backfill_problems", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_backfill_problems_backfill_id"), ["backfill_id"], unique=False)

    op.create_table(
        "backfill_profile_jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("backfill_id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("refs", sa.JSON(), nullable=False),
        sa.Column("submitted_at", sa.DateTime(), nullable=False),
        sa.Column("checked_at", sa.DateTime(), nullable=True),
        sa.Column("completed_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["backfill_id"], ["backfills.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("backfill_profile_jobs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_backfill_profile_jobs_backfill_id"), ["backfill_id"], unique=False
        )


def downgrade():
    with op.batch_alter_table("backfill_profile_jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_backfill_profile_jobs_backfill_id"))

    op.drop_table("backfill_profile_jobs")
    with op.batch_alter_table("backfill_problems", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_backfill_problems_backfill_id"))

    op.drop_table("backfill_problems")
    with op.batch_alter_table("backfills", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_backfills_workspace_id"))
        batch_op.drop_index(batch_op.f("ix_backfills_fingerprint"))

    op.drop_table("backfills")

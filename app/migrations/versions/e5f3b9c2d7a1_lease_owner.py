"""delivery lease owner, so a bulk sender knows which rows it claimed

Revision ID: e5f3b9c2d7a1
Revises: c4d2a8e1f5b3
Create Date: 2026-11-23 15:00:00

"""

import sqlalchemy as sa
from alembic import op

revision = "e5f3b9c2d7a1"
down_revision = "c4d2a8e1f5b3"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("deliveries") as batch_op:
        batch_op.add_column(sa.Column("lease_owner", sa.String(length=36), nullable=True))
        batch_op.create_index("ix_deliveries_lease_owner", ["lease_owner"])


def downgrade():
    with op.batch_alter_table("deliveries") as batch_op:
        batch_op.drop_index("ix_deliveries_lease_owner")
        batch_op.drop_column("lease_owner")

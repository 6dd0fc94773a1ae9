"""memory_vectors: a memory's embedding in a further channel (the cross-language channel)

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("memory_vectors",
    sa.Column("memory_id", sa.BigInteger(), nullable=False),
    sa.Column("model", sa.String(length=64), nullable=False),
    sa.Column("embedding", sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint("memory_id", "model")
    )


def downgrade() -> None:
    op.drop_table("memory_vectors")

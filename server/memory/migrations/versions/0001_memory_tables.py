"""memory tables

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table("memory_items",
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
    sa.Column("text", sa.Text(), nullable=False),
    sa.Column("reply", sa.Text(), nullable=False),
    sa.Column("session_id", sa.String(length=128), nullable=False),
    sa.Column("turn_id", sa.String(length=128), nullable=False),
    sa.Column("source", sa.String(length=32), nullable=False),
    sa.Column("tags", sa.JSON(), nullable=False),
    sa.Column("importance", sa.Float(), nullable=False),
    sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("decayed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_accessed_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("access_count", sa.Integer(), nullable=False),
    sa.Column("prev_id", sa.BigInteger(), nullable=True),
    sa.Column("next_id", sa.BigInteger(), nullable=True),
    sa.Column("delete_reason", sa.SmallInteger(), nullable=False),
    sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("merged_into_id", sa.BigInteger(), nullable=True),
    sa.Column("embedding", sa.LargeBinary(), nullable=False),
    sa.Column("embedding_model", sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint("id")
    )
    with op.batch_alter_table("memory_items", schema=None) as batch_op:
        batch_op.create_index("ix_memory_items_active", ["delete_reason", "id"], unique=False)
        batch_op.create_index(batch_op.f("ix_memory_items_merged_into_id"), ["merged_into_id"], unique=False)
        batch_op.create_index("ix_memory_items_session", ["session_id", "id"], unique=False)

    op.create_table("memory_relations",
    sa.Column("a_id", sa.BigInteger(), nullable=False),
    sa.Column("b_id", sa.BigInteger(), nullable=False),
    sa.Column("kind", sa.String(length=32), nullable=False),
    sa.Column("weight", sa.Float(), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint("a_id", "b_id", "kind")
    )
    with op.batch_alter_table("memory_relations", schema=None) as batch_op:
        batch_op.create_index("ix_memory_relations_b", ["b_id"], unique=False)

    op.create_table("memory_state",
    sa.Column("key", sa.String(length=64), nullable=False),
    sa.Column("value", sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint("key")
    )
    op.create_table("memory_turns",
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
    sa.Column("session_id", sa.String(length=128), nullable=False),
    sa.Column("turn_id", sa.String(length=128), nullable=False),
    sa.Column("user_text", sa.Text(), nullable=False),
    sa.Column("assistant_text", sa.Text(), nullable=False),
    sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("memory_id", sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint("id"),
    sa.UniqueConstraint("session_id", "turn_id", name="uq_memory_turns_session_turn")
    )



def downgrade() -> None:

    op.drop_table("memory_turns")
    op.drop_table("memory_state")
    with op.batch_alter_table("memory_relations", schema=None) as batch_op:
        batch_op.drop_index("ix_memory_relations_b")

    op.drop_table("memory_relations")
    with op.batch_alter_table("memory_items", schema=None) as batch_op:
        batch_op.drop_index("ix_memory_items_session")
        batch_op.drop_index(batch_op.f("ix_memory_items_merged_into_id"))
        batch_op.drop_index("ix_memory_items_active")

    op.drop_table("memory_items")


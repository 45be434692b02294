"""routing decisions per document version; delivery revisions (later acts on a delivery)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "routings",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("document_version_id", _ID, nullable=False),
        sa.Column("document_id", _ID, nullable=False),
        sa.Column("patient_key", sa.String(length=200), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("route", sa.String(length=200), nullable=True),
        sa.Column("input", _JSON, nullable=False),
        sa.Column("decision", _JSON, nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["documents.id"],
            name=op.f("fk_routings_document_id_documents"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["document_version_id"],
            ["document_versions.id"],
            name=op.f("fk_routings_document_version_id_document_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_routings")),
        sa.UniqueConstraint("document_version_id", name=op.f("uq_routings_document_version_id")),
    )
    with op.batch_alter_table("routings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_routings_document_id"), ["document_id"], unique=False)

    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("revision", sa.Integer(), nullable=False, server_default=sa.text("0"))
        )
        batch_op.drop_constraint(
            batch_op.f("uq_deliveries_document_version_id_destination_recipient"), type_="unique"
        )
        batch_op.create_unique_constraint(
            batch_op.f("uq_deliveries_document_version_id_destination_recipient_revision"),
            ["document_version_id", "destination", "recipient", "revision"],
        )
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.alter_column("revision", server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("uq_deliveries_document_version_id_destination_recipient_revision"),
            type_="unique",
        )
        batch_op.create_unique_constraint(
            batch_op.f("uq_deliveries_document_version_id_destination_recipient"),
            ["document_version_id", "destination", "recipient"],
        )
        batch_op.drop_column("revision")

    with op.batch_alter_table("routings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_routings_document_id"))

    op.drop_table("routings")

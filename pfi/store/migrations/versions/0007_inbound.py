"""inbound MSSanté mails and their documents (KO worklist)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "inbound_mails",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("message_id", sa.String(length=400), nullable=False),
        sa.Column("sender", sa.String(length=320), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("mailbox", sa.String(length=200), nullable=False),
        sa.Column("imap_uid", sa.BigInteger(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("documents", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_mails")),
        sa.UniqueConstraint("message_id", name=op.f("uq_inbound_mails_message_id")),
    )
    op.create_table(
        "inbound_documents",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("mail_id", _ID, nullable=False),
        sa.Column("attachment_key", sa.String(length=400), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("error_code", sa.String(length=8), nullable=False),
        sa.Column("document_uid", sa.String(length=400), nullable=False),
        sa.Column("document_title", sa.String(length=400), nullable=False),
        sa.Column("ins", sa.String(length=32), nullable=False),
        sa.Column("patient_id", _ID, nullable=True),
        sa.Column("matched_by", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("mdm_control_id", sa.String(length=40), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("dpi_ack_code", sa.String(length=4), nullable=True),
        sa.Column("dpi_ack_text", sa.Text(), nullable=True),
        sa.Column("integrated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_by", sa.String(length=200), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolution", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["mail_id"],
            ["inbound_mails.id"],
            name=op.f("fk_inbound_documents_mail_id_inbound_mails"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patients.id"],
            name=op.f("fk_inbound_documents_patient_id_patients"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_documents")),
        sa.UniqueConstraint(
            "mail_id", "attachment_key", name=op.f("uq_inbound_documents_mail_id_attachment_key")
        ),
    )
    with op.batch_alter_table("inbound_documents", schema=None) as batch_op:
        batch_op.create_index("ix_inbound_documents_mail_id", ["mail_id"], unique=False)
        batch_op.create_index("ix_inbound_documents_patient_id", ["patient_id"], unique=False)
        batch_op.create_index("ix_inbound_documents_status", ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("inbound_documents", schema=None) as batch_op:
        batch_op.drop_index("ix_inbound_documents_status")
        batch_op.drop_index("ix_inbound_documents_patient_id")
        batch_op.drop_index("ix_inbound_documents_mail_id")
    op.drop_table("inbound_documents")
    op.drop_table("inbound_mails")

"""document versions found by the CDA id they carry

The documents stage finds the set of a replaced or deleted document by its CDA id
(transmission volet documents without a setId): an index on document_uid.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("document_versions", schema=None) as batch_op:
        batch_op.create_index("ix_document_versions_document_uid", ["document_uid"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("document_versions", schema=None) as batch_op:
        batch_op.drop_index("ix_document_versions_document_uid")

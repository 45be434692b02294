"""the imported MSSanté annuaire extract: generations of professionals and mailboxes

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _import_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["import_id"],
        ["annuaire_imports.id"],
        name=op.f(f"fk_{table}_import_id_annuaire_imports"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "annuaire_imports",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("source", sa.String(length=500), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lines_read", sa.Integer(), nullable=False),
        sa.Column("professionals", sa.Integer(), nullable=False),
        sa.Column("mailboxes", sa.Integer(), nullable=False),
        sa.Column("problems", sa.Integer(), nullable=False),
        sa.Column("problem_sample", _JSON, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_annuaire_imports")),
    )
    op.create_index("ix_annuaire_imports_active", "annuaire_imports", ["active"])
    op.create_table(
        "annuaire_professionals",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("import_id", _ID, nullable=False),
        sa.Column("national_id", sa.String(length=40), nullable=False),
        sa.Column("id_type", sa.String(length=4), nullable=False),
        sa.Column("identifier", sa.String(length=40), nullable=False),
        sa.Column("civility", sa.String(length=20), nullable=False),
        sa.Column("family_name", sa.String(length=200), nullable=False),
        sa.Column("given_name", sa.String(length=200), nullable=False),
        sa.Column("profession_code", sa.String(length=20), nullable=False),
        sa.Column("profession_label", sa.String(length=200), nullable=False),
        sa.Column("specialty_code", sa.String(length=20), nullable=False),
        sa.Column("specialty_label", sa.String(length=200), nullable=False),
        _import_fk("annuaire_professionals"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_annuaire_professionals")),
    )
    op.create_index(
        "ix_annuaire_professionals_import_national",
        "annuaire_professionals",
        ["import_id", "national_id"],
        unique=True,
    )
    op.create_index(
        "ix_annuaire_professionals_import_identifier",
        "annuaire_professionals",
        ["import_id", "identifier"],
    )
    op.create_table(
        "annuaire_mailboxes",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("import_id", _ID, nullable=False),
        sa.Column("national_id", sa.String(length=40), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("address_key", sa.String(length=320), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("structure_id_type", sa.String(length=8), nullable=False),
        sa.Column("structure_id", sa.String(length=40), nullable=False),
        sa.Column("service", sa.String(length=300), nullable=False),
        sa.Column("structure_name", sa.String(length=300), nullable=False),
        sa.Column("dematerialisation", sa.Boolean(), nullable=True),
        sa.Column("city_line", sa.String(length=200), nullable=False),
        sa.Column("postal_code", sa.String(length=20), nullable=False),
        sa.Column("department", sa.String(length=100), nullable=False),
        sa.Column("details", _JSON, nullable=True),
        _import_fk("annuaire_mailboxes"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_annuaire_mailboxes")),
    )
    op.create_index(
        "ix_annuaire_mailboxes_import_national", "annuaire_mailboxes", ["import_id", "national_id"]
    )
    op.create_index(
        "ix_annuaire_mailboxes_import_address", "annuaire_mailboxes", ["import_id", "address_key"]
    )


def downgrade() -> None:
    op.drop_table("annuaire_mailboxes")
    op.drop_table("annuaire_professionals")
    op.drop_table("annuaire_imports")

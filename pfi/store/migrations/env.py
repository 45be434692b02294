"""Alembic environment: runs on the connection PFI hands over, or on the URL given."""

from alembic import context
from sqlalchemy import create_engine

from pfi.store.models import Base
from pfi.store.models.base import UtcDateTimeType

config = context.config
target_metadata = Base.metadata


def run_migrations() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url"))
    with engine.connect() as conn:
        _run(conn)
        conn.commit()


def _render_item(type_: str, obj: object, autogen_context: object) -> str | bool:
    """Write PFI's UTC timestamp type as the plain DateTime it stores (migrations must not
    import application code)."""
    if type_ == "type" and isinstance(obj, UtcDateTimeType):
        return "sa.DateTime(timezone=True)"
    return False


def _run(connection) -> None:  # noqa: ANN001
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_item=_render_item,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("PFI migrations run online only (pfi migrate / pfi run)")
run_migrations()

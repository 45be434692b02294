"""The system of record: SQLAlchemy models, database engine, migrations, repositories.

Kafka moves work between stages; this store is what survives. Everything ACKed is here
before the ACK leaves, and every stage's effect is written here idempotently.
"""

from pfi.store.db import Database

__all__ = ["Database"]

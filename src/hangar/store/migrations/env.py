"""Alembic environment: the URL comes from the caller's Config (see hangar.store.db)."""
from alembic import context
from sqlalchemy import create_engine

from hangar.store.models import Base
import hangar.buckets.models  # noqa: F401,E402  (registers the bucket tables on Base.metadata)

config = context.config
connectable = config.attributes.get("connection")


def run(connection) -> None:
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


if connectable is not None:
    run(connectable)
else:
    with create_engine(config.get_main_option("sqlalchemy.url")).connect() as connection:
        run(connection)

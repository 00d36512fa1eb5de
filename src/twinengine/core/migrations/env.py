"""Alembic environment: runs migrations on the connection TwinEngine hands over."""

from alembic import context

from twinengine.core.models import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only when alembic is run by hand
    from sqlalchemy import create_engine

    from twinengine.core.settings import load_settings

    connection = create_engine(load_settings().database_url).connect()

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()

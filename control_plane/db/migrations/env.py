"""Alembic environment: runs against the connection ``control_plane.db.migrate`` hands in."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import control_plane.db.models  # noqa: F401  (registers the tables)

target_metadata = SQLModel.metadata
connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=target_metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()

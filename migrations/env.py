"""Alembic environment: SQLite (batch mode) and PostgreSQL from the same revisions.

Revision files never import dataops; this file reads the ORM metadata only so that
autogenerate and `alembic check` can compare the models with the migrated schema.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import create_engine, pool

config = context.config


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("DATAOPS_DATABASE_URL")
    if url:
        return url
    from dataops.config import get_settings

    return get_settings().resolved_database_url


def _metadata():  # type: ignore[no-untyped-def]
    from dataops.models import metadata

    return metadata


def run_migrations_offline() -> None:
    url = _url()
    context.configure(
        url=url,
        target_metadata=_metadata(),
        literal_binds=True,
        render_as_batch=url.startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connectable = config.attributes.get("connection")
    if connectable is None:
        connectable = create_engine(_url(), poolclass=pool.NullPool)
        with connectable.connect() as connection:
            _run(connection)
    else:
        _run(connectable)


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=_metadata(),
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()

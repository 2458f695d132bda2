"""Alembic environment: SQLite (batch mode) and PostgreSQL from the same revisions.

Revision files never import dataops, and neither does an upgrade or a downgrade: the ORM
metadata is read only when the models are compared with the schema, that is for
`alembic revision --autogenerate`, `alembic check` (or any command given
`-x autogenerate=1`), and for `dataops.migrate.check`, which hands the metadata over in
``config.attributes["target_metadata"]``. The settings are read only when no URL is given.
"""

from __future__ import annotations

import os
from typing import Any

from alembic import context
from sqlalchemy import create_engine, pool

config = context.config


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("DATAOPS_DATABASE_URL")
    if url:
        return url
    from dataops.config import get_settings

    return get_settings().resolved_database_url


def _compares_models() -> bool:
    """Whether this command compares the ORM models with the schema (autogenerate, check)."""
    opts = config.cmd_opts
    if opts is not None:
        if getattr(opts, "autogenerate", False):
            return True
        cmd = getattr(opts, "cmd", None)
        if cmd and getattr(cmd[0], "__name__", None) == "check":
            return True
    flag = context.get_x_argument(as_dictionary=True).get("autogenerate", "")
    return flag.lower() in ("1", "true", "yes")


def _metadata() -> Any:
    if "target_metadata" in config.attributes:
        return config.attributes["target_metadata"]
    if not _compares_models():
        return None
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


def _run(connection: Any) -> None:
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

"""Run Alembic programmatically (`dataops init`, tests) against the configured catalog."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config

REPO_ROOT = Path(__file__).resolve().parent.parent


def alembic_config(url: str | None = None) -> Config:
    ini = REPO_ROOT / "alembic.ini"
    if not ini.exists():
        from dataops.errors import DataopsError

        raise DataopsError(
            f"migrations not found beside the package ({ini}); install dataops from a checkout "
            "with `pip install -e .`"
        )
    cfg = Config(str(ini))
    cfg.set_main_option("script_location", str(REPO_ROOT / "migrations"))
    if url is None:
        from dataops.config import get_settings

        url = get_settings().resolved_database_url
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def _run(url: str | None, fn: Callable[[Config], None]) -> None:
    """Run through our engine so SQLite gets its folder and pragmas like every other connection."""
    from dataops.db import get_engine

    cfg = alembic_config(url)
    with get_engine(url, create=True).begin() as connection:
        cfg.attributes["connection"] = connection
        fn(cfg)


def upgrade(url: str | None = None, revision: str = "head") -> None:
    _run(url, lambda cfg: command.upgrade(cfg, revision))


def downgrade(url: str | None = None, revision: str = "base") -> None:
    _run(url, lambda cfg: command.downgrade(cfg, revision))


def check(url: str | None = None) -> None:
    """Raise when the ORM models and the migrated schema differ."""
    from dataops.models import metadata

    def compare(cfg: Config) -> None:
        cfg.attributes["target_metadata"] = metadata  # env.py reads the models only for this
        command.check(cfg)

    _run(url, compare)


def heads() -> list[str]:
    from alembic.script import ScriptDirectory

    return list(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads())


def current_revision(url: str | None = None) -> str | None:
    from alembic.runtime.migration import MigrationContext

    from dataops.db import get_engine

    with get_engine(url).connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def ensure_ready(*, create: bool = False) -> None:
    """Check the catalog is there and at the latest schema before a command uses it.

    Only creating commands (`init`, `ingest`, `demo`) pass ``create``: everything else
    refuses a missing or empty catalog and says where it looked. An embedded catalog at an
    older revision upgrades itself; a shared database must be migrated on purpose.
    """
    from dataops.config import get_settings
    from dataops.db import catalog_not_found, sqlite_file
    from dataops.errors import DataopsError

    url = get_settings().resolved_database_url
    path = sqlite_file(url)
    embedded = path is not None  # SQLite: the embedded catalog or a file named by URL
    if create and path is not None and not path.is_file():
        upgrade()
        return
    current = current_revision()
    if current in heads():
        return
    if embedded and (current is not None or create):
        upgrade()
        return
    if current is None and not create:
        raise catalog_not_found(_display(url), "the database has no catalog tables")
    state = "is empty" if current is None else f"is at revision {current}"
    raise DataopsError(
        f"the catalog database {_display(url)} {state}, not at the latest schema: "
        "run `dataops init`"
    )


def _display(url: str) -> str:
    from sqlalchemy.engine import make_url

    from dataops.db import sqlite_file

    path = sqlite_file(url)
    if path is not None:
        return str(path.resolve())
    return make_url(url).render_as_string(hide_password=True)

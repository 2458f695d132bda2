"""Engine and session factory for the configured catalog (the declarative base and shared
column types live in `dataops.database.base`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from dataops.database.base import utcnow
from dataops.errors import DataopsError

__all__ = [
    "REQUEST_SESSIONS",
    "CatalogNotFound",
    "Transaction",
    "catalog_not_found",
    "dispose_engines",
    "get_engine",
    "make_engine",
    "session_factory",
    "session_scope",
    "sqlite_file",
    "utcnow",
    "where_configured",
]

# A factory of units of work, each committing when its block ends: `session_scope`, or a job's
# `JobContext.session`. Multi-step work that commits as it goes takes one as ``transaction``.
Transaction = Callable[[], AbstractContextManager[Session]]

_engines: dict[str, Engine] = {}

# Connections per process: POOL_SIZE stay open, MAX_OVERFLOW more open under load. HTTP
# requests hold at most REQUEST_SESSIONS of them at once (``dataops.api.admission``); the
# rest serve jobs that run inside the API process.
POOL_SIZE = 5
MAX_OVERFLOW = 10
REQUEST_SESSIONS = 12
POOL_TIMEOUT = 30


class CatalogNotFound(DataopsError):
    """The configured catalog does not exist; only `init`, `ingest` and `demo` create one."""

    status_code = 503
    code = "catalog_not_found"


def sqlite_file(url: str) -> Path | None:
    """The file behind a SQLite URL; None for other backends and in-memory databases."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def where_configured() -> str:
    """Where the configured catalog location came from, for errors that name it."""
    import os

    from dataops.config import get_settings

    settings = get_settings()
    cwd = Path.cwd()
    dotenv = cwd / ".env"
    if os.environ.get("DATAOPS_DATABASE_URL"):
        return "set by DATAOPS_DATABASE_URL"
    if settings.database_url:
        return f"set by DATAOPS_DATABASE_URL in {dotenv}"
    if os.environ.get("DATAOPS_DATA_DIR"):
        return f"data dir {settings.resolved_data_dir} from DATAOPS_DATA_DIR or --data-dir"
    if _names_catalog(dotenv) and "DATAOPS_DATA_DIR" in dotenv.read_text(errors="replace"):
        return f"data dir {settings.resolved_data_dir} from {dotenv}"
    found = next((env for env in (f / ".env" for f in cwd.parents) if _names_catalog(env)), None)
    hint = f"; {found} configures one: run from {found.parent}?" if found else ""
    return (
        f"data dir {settings.resolved_data_dir}: the default ./.dataops of the current folder "
        f"{cwd}, which has no .env naming a catalog{hint}"
    )


def _names_catalog(dotenv: Path) -> bool:
    try:
        return dotenv.is_file() and "DATAOPS_" in dotenv.read_text(errors="replace")
    except OSError:
        return False


def catalog_not_found(location: str, why: str = "", source: str | None = None) -> CatalogNotFound:
    """The one message for a missing catalog: where we looked, why there, what to do."""
    reason = f"{why}; " if why else ""
    return CatalogNotFound(
        f"no catalog at {location} ({reason}{source or where_configured()}): run `dataops init` to create one "
        "there, or point DATAOPS_DATABASE_URL or DATAOPS_DATA_DIR at your catalog, or run "
        "from the folder whose .env configures it"
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=POOL_SIZE,
        max_overflow=MAX_OVERFLOW,
        pool_timeout=POOL_TIMEOUT,
    )


def get_engine(url: str | None = None, *, create: bool = False) -> Engine:
    """The pooled engine for a catalog URL; a missing SQLite file is refused unless ``create``.

    Only creating commands (`init`, `ingest`, `demo`, migrations) pass ``create``, so a
    command run from the wrong folder never answers from a fresh, empty catalog.
    """
    if url is None:
        from dataops.config import get_settings

        url = get_settings().resolved_database_url
    if url not in _engines:
        path = sqlite_file(url)
        if path is not None and not create and not path.is_file():
            raise catalog_not_found(str(path.resolve()))
        _engines[url] = make_engine(url)
    return _engines[url]


def dispose_engines() -> None:
    """Drop pooled connections; called after fork so children never share sockets."""
    for engine in _engines.values():
        engine.dispose(close=False)
    _engines.clear()


def session_factory(url: str | None = None) -> sessionmaker[Session]:
    import dataops.models  # noqa: F401  - every table registered before mappers configure

    return sessionmaker(bind=get_engine(url), expire_on_commit=False)


@contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """A unit of work: commit on success, roll back on any error."""
    session = session_factory(url)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()

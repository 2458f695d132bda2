"""Every ORM table, imported in one place so Alembic compares the whole schema."""

from dataops.catalog import models as catalog_models
from dataops.db import Base
from dataops.events import models as events_models
from dataops.jobs import models as jobs_models

metadata = Base.metadata

__all__ = ["catalog_models", "events_models", "jobs_models", "metadata"]

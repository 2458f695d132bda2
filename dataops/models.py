"""Every ORM table, imported in one place so Alembic compares the whole schema."""

from dataops.audits import models as audits_models
from dataops.auth import models as auth_models
from dataops.catalog import models as catalog_models
from dataops.console import models as console_models
from dataops.database.base import Base
from dataops.dedup import models as dedup_models
from dataops.events import models as events_models
from dataops.jobs import models as jobs_models
from dataops.labeling import models as labeling_models
from dataops.labeling import progress_models as labeling_progress_models
from dataops.labelstudio import models as labelstudio_models
from dataops.manifests import models as manifests_models
from dataops.quality import models as quality_models
from dataops.scoring import models as scoring_models
from dataops.selection import models as selection_models

metadata = Base.metadata

__all__ = [
    "audits_models",
    "auth_models",
    "catalog_models",
    "console_models",
    "dedup_models",
    "events_models",
    "jobs_models",
    "labeling_models",
    "labeling_progress_models",
    "labelstudio_models",
    "manifests_models",
    "metadata",
    "quality_models",
    "scoring_models",
    "selection_models",
]

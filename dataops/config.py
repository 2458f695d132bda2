"""One settings tree for every entry point (CLI, API, workers), read from DATAOPS_* and .env."""

from __future__ import annotations

import os
import secrets
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

# EXIF tags that may be read at all; everything else (GPS, serial numbers, owner/artist,
# maker notes, thumbnails) is never parsed into the catalog.
DEFAULT_EXIF_ALLOWLIST = ["Make", "Model", "DateTime", "DateTimeOriginal", "Orientation"]


class IngestSettings(BaseModel):
    max_pixels: int = Field(
        default=178_956_970,
        description="Images with more pixels are quarantined as decompression bombs.",
    )
    batch_size: int = Field(default=256, description="Rows written per transaction.")
    workers: int = Field(default=0, description="Decode processes; 0 means one per CPU core.")
    exif_allowlist: list[str] = Field(default_factory=lambda: list(DEFAULT_EXIF_ALLOWLIST))


class WorkerSettings(BaseModel):
    soft_time_limit: int = 3600
    time_limit: int = 3900
    visibility_timeout: int = 4000
    stale_after: int = Field(
        default=900, description="Seconds before a pending job that no queue holds is re-sent."
    )
    lease: float = Field(
        default=60,
        gt=0,
        description=(
            "Seconds a running job's lease lasts; a heartbeat renews it every third of that "
            "while the handler runs, and recovery re-queues the job once it has expired."
        ),
    )
    recover_every: float = Field(
        default=30, gt=0, description="Seconds between recovery sweeps on the beat schedule."
    )
    max_attempts: int = Field(
        default=5,
        ge=1,
        description=(
            "Attempts after which a job whose attempts keep dying (out of memory, hard time "
            "limit) fails with a message instead of being sent again."
        ),
    )


class DedupSettings(BaseModel):
    """Defaults measured on the Kodak + clothing photos (see ``dataops.dedup.grouping``)."""

    radius: int = Field(default=10, description="pHash Hamming radius for candidates.")
    joint_radius: int | None = Field(
        default=14,
        description=(
            "pHash + dHash distance that confirms a candidate: rejects different garments "
            "shot on one backdrop. None confirms on the pHash alone."
        ),
    )
    max_rep_distance: int | None = Field(
        default=None,
        description="Anti-chaining: members stay this close to the representative (None: radius).",
    )
    flip: bool = Field(default=True, description="Also match horizontally mirrored images.")
    semantic_threshold: float = Field(
        default=0.92, description="Cosine similarity of embeddings for semantic duplicates."
    )
    max_group_size: int = Field(default=1000, description="Larger groups are reported.")
    shard_min_images: int = Field(
        default=200_000,
        description="With a broker, catalogs larger than this shard the query across workers.",
    )
    shard_size: int = Field(default=20_000, description="New images per shard query.")
    shard_timeout: int = Field(
        default=900, description="Seconds before an unfinished claimed shard is recomputed."
    )
    views: bool = Field(
        default=True,
        description=(
            "Also match views of each image (inside borders, centre and corner crops) against "
            "the full images: crops and letterboxed copies."
        ),
    )
    view_radius: int = Field(default=10, description="pHash radius of the view search.")
    geometric: bool = Field(
        default=True,
        description=(
            "Check the closest hits the hash and view stages turned down on local features "
            "(ORB + RANSAC): rotations, overlays, larger crops."
        ),
    )
    candidates_per_image: int = Field(
        default=3, description="Geometric checks per new image at most (its closest hits)."
    )


class ScoringSettings(BaseModel):
    """Limits of the sandboxed process that runs a registered model (``DATAOPS_SCORING__*``)."""

    probe_timeout: float = Field(
        default=60, gt=0, description="Wall seconds to load a model and run its dry run."
    )
    batch_timeout: float = Field(
        default=600, gt=0, description="Wall seconds to load a model for scoring or score a batch."
    )
    cpu_seconds: int | None = Field(
        default=None,
        gt=0,
        description="CPU seconds (all threads) per load or batch; None: timeout x threads.",
    )
    memory_mb: int = Field(
        default=16384,
        ge=0,
        description="Address-space limit of the model process on CPU in MiB; 0: none.",
    )


class ApiSettings(BaseModel):
    """HTTP-only settings (``DATAOPS_API__*``)."""

    max_body_bytes: int = Field(
        default=1024 * 1024, ge=0, description="Larger request bodies are refused with 413."
    )
    ingest_roots: list[str] = Field(
        default_factory=list,
        description=(
            "Folders (or URL prefixes such as s3://bucket/incoming/) that POST /v1/ingest may "
            "read; empty refuses every path."
        ),
    )


class ConsoleSettings(BaseModel):
    """Operations console sessions (``DATAOPS_CONSOLE__*``)."""

    idle_timeout: int = Field(
        default=12 * 3600,
        ge=60,
        description="Seconds a console session lives without a request before it must sign in again.",
    )
    absolute_timeout: int = Field(
        default=7 * 24 * 3600,
        ge=60,
        description="Seconds after sign-in when a console session ends however busy it is.",
    )


class SelectionSettings(BaseModel):
    """Batch selection settings (``DATAOPS_SELECTION__*``)."""

    max_batch_size: int = Field(
        default=10_000,
        ge=1,
        description=(
            "Larger requests are refused unless they allow a partial batch (then capped here): "
            "a typo must not claim the whole catalog."
        ),
    )


class LabelStudioConnection(BaseModel):
    url: str
    token: SecretStr


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="DATAOPS_", env_file=".env", env_nested_delimiter="__", extra="ignore"
    )

    data_dir: Path = Field(default=Path(".dataops"))
    database_url: str | None = None
    broker_url: str | None = None
    storage_url: str | None = None
    secret_key: SecretStr | None = None
    public_url: str = "http://127.0.0.1:8000"
    signed_url_ttl: int = Field(default=7 * 24 * 3600, description="Seconds a signed URL lives.")
    gold_repeat_days: float = Field(
        default=180.0,
        ge=0,
        description="A gold image is not shown to a vendor who saw it within this many days.",
    )
    labelstudio_url: str | None = None
    labelstudio_token: SecretStr | None = None
    labelstudio_connections: dict[str, LabelStudioConnection] = Field(default_factory=dict)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    dedup: DedupSettings = Field(default_factory=DedupSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)
    scoring: ScoringSettings = Field(default_factory=ScoringSettings)
    selection: SelectionSettings = Field(default_factory=SelectionSettings)

    @property
    def resolved_data_dir(self) -> Path:
        return self.data_dir.expanduser().resolve()

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.resolved_data_dir / 'catalog.db'}"

    @property
    def resolved_storage_url(self) -> str:
        return self.storage_url or (self.resolved_data_dir / "blobs").as_uri()

    @property
    def embedded(self) -> bool:
        """No broker: jobs run in-process."""
        return not self.broker_url

    def signing_key(self) -> bytes:
        """The URL-signing key; generated once per data dir when not configured."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value().encode()
        path = self.resolved_data_dir / "secret_key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32))
        return path.read_text().strip().encode()


@lru_cache
def get_settings() -> Settings:
    return Settings()


def reset_settings() -> None:
    """Forget cached settings (tests and the CLI's --data-dir change the environment)."""
    get_settings.cache_clear()

"""Settings of the web app (data dir, limits, workers, token, CORS), overridable by `LIPDUB_WEB_*` variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from lipdub.settings import get_settings


class WebSettings(BaseSettings):
    """What `create_app` needs. `data_dir` None -> `<LIPDUB_HOME>/web`; `token` None -> no authentication."""

    model_config = SettingsConfigDict(env_prefix="LIPDUB_WEB_", extra="ignore")

    data_dir: Path | None = None
    max_upload_bytes: int = 512 * 1024 * 1024
    max_duration: float = 600.0  # seconds, for any uploaded video or audio
    workers: int = Field(default=1, ge=1)
    token: str | None = None
    host: str = "127.0.0.1"  # the address served; without a token, the only Host name accepted besides loopback
    cors_origins: list[str] = Field(default_factory=list)  # empty: no CORS headers at all
    checkpoint: Path | None = None  # Wav2Lip checkpoint; None -> lipdub's configured one (or viseme only)
    device: str = "auto"
    public: bool = False  # each browser sees only its own uploads and jobs; the token (if any) is the admin's
    quota_jobs: int = Field(default=2, ge=1)  # public mode: jobs waiting or running per visitor
    quota_mb: float = Field(default=500.0, gt=0)  # public mode: megabytes of uploads kept per visitor
    keep_days: float = Field(default=7.0, gt=0)  # finished jobs and uploads older than this are removed
    max_storage_gb: float | None = Field(default=None, gt=0)  # past it, the oldest finished things go first
    sweep_every: float = Field(default=600.0, gt=0)  # seconds between retention sweeps
    pickers: int = Field(default=2, ge=1)  # face-picker helper processes (one long video does not block others)
    ray: str | None = None  # run the jobs as Ray tasks on this cluster ('local', HOST:PORT or 'auto')
    warm_up: bool = True  # start the face-picker process and load its detector at start (fast first answer)

    def resolved_data_dir(self) -> Path:
        return Path(self.data_dir) if self.data_dir is not None else get_settings().web_dir

    def resolved_checkpoint(self) -> Path | None:
        return self.checkpoint if self.checkpoint is not None else get_settings().checkpoint

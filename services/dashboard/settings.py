"""The dashboard's settings: one object, overridable with ``STREAMREC_DASHBOARD_``."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.kafka.settings import KafkaSettings


class DashboardSettings(BaseSettings):
    """Where the dashboard listens, what it watches, and over which windows.

    The broker comes from ``STREAMREC_KAFKA_BOOTSTRAP`` (and the other ``STREAMREC_KAFKA_``
    security settings), as for the workers, the trainer and the CLI.
    """

    model_config = SettingsConfigDict(
        env_prefix="STREAMREC_DASHBOARD_", frozen=True, extra="ignore"
    )

    # Loopback by default: the page shows user ids and what they clicked, and has no
    # authentication. Binding elsewhere is a deliberate choice, never a default.
    host: str = Field(default="127.0.0.1", description="address the HTTP server binds to")
    port: int = Field(default=6080, description="HTTP port: /, /api/summary, /healthz")
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    worker_urls: tuple[str, ...] = Field(
        default=("http://127.0.0.1:6066",), description="each worker's base URL (JSON list)"
    )
    trainer_url: str = Field(
        default="http://127.0.0.1:6070", description="the trainer's base URL; empty: none"
    )
    triton_url: str = Field(default="http://127.0.0.1:8000", description="Triton's HTTP URL")

    window_s: int = Field(default=120, ge=10, le=3600, description="seconds the charts span")
    rate_s: int = Field(
        default=10, ge=1, description="seconds the per-second rates are averaged over"
    )
    latest: int = Field(default=20, ge=1, le=500, description="recommendations listed")
    max_users: int = Field(
        default=100_000, ge=1, description="users whose latest segment is remembered"
    )
    poll_s: float = Field(default=2.0, gt=0, description="how often components are polled")
    # Two seconds: a busy trainer on a loaded 2-core machine took over one to answer.
    probe_timeout_s: float = Field(
        default=2.0, gt=0, description="longest a component may take to answer a poll"
    )
    refresh_ms: int = Field(default=1500, ge=250, description="how often the page refreshes")

"""Settings of the embedded stack: every address and port, overridable with ``STREAMREC_``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from services.kafka.settings import KafkaSettings

REPO_ROOT = Path(__file__).resolve().parents[2]
# Where `up` leaves the Triton admin key it generated (mode 0600), for the CLI to read.
ADMIN_KEY_FILE = "triton-admin-key"
# The HTTP header Triton checks on its restricted APIs (`--http-restricted-api=...:KEY=`);
# on gRPC the same key goes as `triton-grpc-protocol-admin-key`.
TRITON_ADMIN_HEADER = "admin-key"


class StackSettings(BaseSettings):
    """Where each component listens and where the stack keeps its files.

    Two stacks run side by side when each gets its own ports and ``run_dir``.
    """

    model_config = SettingsConfigDict(
        env_prefix="STREAMREC_", frozen=True, extra="ignore", populate_by_name=True
    )

    # Loopback by default: nothing in the stack authenticates its callers except Triton's
    # model control, so exposing it is an explicit choice.
    host: str = Field(default="127.0.0.1", description="address every component binds to")
    broker_port: int = Field(default=9092, description="the tansu broker's Kafka port")
    triton_http_port: int = Field(default=8000, description="Triton HTTP (health, model control)")
    triton_grpc_port: int = Field(default=8001, description="Triton gRPC (the workers' inference)")
    triton_metrics_port: int = Field(default=8002, description="Triton's Prometheus metrics")
    worker_web_port: int = Field(default=6066, description="first worker's HTTP port")
    workers: int = Field(default=1, ge=1, le=16, description="recommender workers to run")
    trainer: bool = Field(default=True, description="run the trainer service (retraining)")
    trainer_port: int = Field(default=6070, description="the trainer's HTTP port")
    dashboard: bool = Field(default=True, description="run the live dashboard")
    dashboard_port: int = Field(default=6080, description="the dashboard's HTTP port")
    topic_partitions: int = Field(
        default=4, ge=1, description="partitions of the contract topics, created at start"
    )
    run_dir: Path = Field(
        default=REPO_ROOT / ".run", description="logs, state.json, worker and Feast data"
    )
    tools_dir: Path = Field(
        default=REPO_ROOT / ".tools", description="tritonserver and its Python environment"
    )
    model_repository: Path = Field(
        default=REPO_ROOT / "triton_models", description="the repository Triton serves"
    )
    triton_models: tuple[str, ...] = Field(
        default=("scorer", "item_encoder"), description="models loaded at start (JSON list)"
    )
    startup_timeout_s: float = Field(
        default=120.0, description="longest a component may take to turn healthy"
    )
    max_restarts: int = Field(default=5, description="per component, within restart_window_s")
    restart_window_s: float = Field(
        default=300.0, description="window in which max_restarts are counted"
    )
    # Loading a model runs its code (python backend), so Triton's model-repository API is
    # restricted to this key, as in docker-compose.yml; inference and health stay open.
    triton_admin_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("STREAMREC_TRITON_ADMIN_KEY", "TRITON_ADMIN_KEY"),
        description=(
            "the key Triton's model-repository, shared-memory, trace and logging APIs ask "
            "for (header `admin-key`); unset, `up` generates one into the run dir's "
            f"`{ADMIN_KEY_FILE}` (mode 0600)"
        ),
    )

    @field_validator("triton_admin_key")
    @classmethod
    def _empty_key_is_no_key(cls, value: SecretStr | None) -> SecretStr | None:
        # `TRITON_ADMIN_KEY=` must not restrict Triton to an empty key anyone can send.
        return value if value is not None and value.get_secret_value().strip() else None

    def to_env(self) -> dict[str, str]:
        """These settings as ``STREAMREC_`` variables, for a process that reads its own."""
        env = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if value is None:
                continue  # absent is how an unset optional setting reads back
            if isinstance(value, SecretStr):
                text = value.get_secret_value()  # the child needs the secret, not its mask
            elif isinstance(value, tuple):
                text = json.dumps(list(value))
            else:
                text = str(value)
            env[f"STREAMREC_{name.upper()}"] = text
        return env

    def kafka(self) -> KafkaSettings:
        """The Kafka client settings for this stack's broker: its address, with the
        security settings (``STREAMREC_KAFKA_SECURITY_PROTOCOL``, SASL, TLS) of the
        environment, so every client the stack makes goes through one configuration."""
        from services.kafka.settings import KafkaSettings

        return KafkaSettings(bootstrap=self.bootstrap)

    def admin_key(self) -> str | None:
        """The key this stack's Triton asks for on model control: the configured one, else
        the one `up` generated into the run dir; None when neither exists."""
        if self.triton_admin_key is not None:
            return self.triton_admin_key.get_secret_value()
        try:
            return self.admin_key_file.read_text().strip() or None
        except OSError:
            return None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.broker_port}"

    @property
    def triton_grpc_url(self) -> str:
        return f"{self.host}:{self.triton_grpc_port}"

    @property
    def triton_http_url(self) -> str:
        return f"http://{self.host}:{self.triton_http_port}"

    @property
    def dashboard_url(self) -> str:
        return f"http://{self.host}:{self.dashboard_port}"

    @property
    def logs_dir(self) -> Path:
        return self.run_dir / "logs"

    @property
    def state_file(self) -> Path:
        return self.run_dir / "state.json"

    @property
    def pid_file(self) -> Path:
        return self.run_dir / "supervisor.pid"

    @property
    def admin_key_file(self) -> Path:
        return self.run_dir / ADMIN_KEY_FILE

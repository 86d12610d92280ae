"""Settings of the embedded stack: every address and port, overridable with ``STREAMREC_``."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[2]


class StackSettings(BaseSettings):
    """Where each component listens and where the stack keeps its files.

    Two stacks run side by side when each gets its own ports and ``run_dir``.
    """

    model_config = SettingsConfigDict(env_prefix="STREAMREC_", frozen=True, extra="ignore")

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

    def to_env(self) -> dict[str, str]:
        """These settings as ``STREAMREC_`` variables, for a process that reads its own."""
        env = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            text = json.dumps(list(value)) if isinstance(value, tuple) else str(value)
            env[f"STREAMREC_{name.upper()}"] = text
        return env

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

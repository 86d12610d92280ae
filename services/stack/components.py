"""The processes that make up the embedded stack, in start order."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from services.stack import health
from services.stack.settings import StackSettings
from services.stack.tools import broker_binary, require_triton


@dataclass
class Component:
    """One supervised process: how to start it and how to tell it is healthy."""

    name: str
    argv: list[str]
    healthy: Callable[[], bool]
    endpoint: str
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    # Runs after the component first turns healthy and after every restart
    # (tansu keeps topics in memory: a restarted broker needs them again).
    after_start: Callable[[], object] | None = None
    stop_timeout_s: float = 20.0


def worker_environment(settings: StackSettings, index: int) -> dict[str, str]:
    """Environment for worker ``index``: the stack's addresses, the user's other settings."""
    env = dict(os.environ)
    env.update(
        {
            "STREAMREC_KAFKA_BOOTSTRAP": settings.bootstrap,
            "STREAMREC_TRITON_URL": settings.triton_grpc_url,
            "STREAMREC_TOPIC_PARTITIONS": str(settings.topic_partitions),
            "STREAMREC_WORKER_WEB_HOST": settings.host,
            "STREAMREC_WORKER_WEB_PORT": str(settings.worker_web_port + index),
            "STREAMREC_WORKER_DATA_DIR": str(settings.run_dir / f"worker-{index}"),
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.setdefault("STREAMREC_FEAST_DATA_DIR", str(settings.run_dir / "feast"))
    return env


def trainer_environment(settings: StackSettings) -> dict[str, str]:
    """The trainer follows the stack's repository, Triton and broker; the user's
    ``STREAMREC_TRAINER_`` settings (interval, tolerance, ...) pass through."""
    env = dict(os.environ)
    env.update(
        {
            "STREAMREC_KAFKA_BOOTSTRAP": settings.bootstrap,
            "STREAMREC_TRAINER_MODEL_REPOSITORY": str(settings.model_repository),
            "STREAMREC_TRAINER_TRITON_HTTP_URL": settings.triton_http_url,
            "STREAMREC_TRAINER_HOST": settings.host,
            "STREAMREC_TRAINER_PORT": str(settings.trainer_port),
            "STREAMREC_TRAINER_DATA_DIR": str(settings.run_dir / "trainer"),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def dashboard_environment(settings: StackSettings) -> dict[str, str]:
    """The dashboard watches this stack: its broker, workers, trainer (if any) and Triton."""
    env = dict(os.environ)
    workers = [
        f"http://{settings.host}:{settings.worker_web_port + i}" for i in range(settings.workers)
    ]
    trainer = f"http://{settings.host}:{settings.trainer_port}" if settings.trainer else ""
    env.update(
        {
            "STREAMREC_KAFKA_BOOTSTRAP": settings.bootstrap,
            "STREAMREC_DASHBOARD_HOST": settings.host,
            "STREAMREC_DASHBOARD_PORT": str(settings.dashboard_port),
            "STREAMREC_DASHBOARD_WORKER_URLS": json.dumps(workers),
            "STREAMREC_DASHBOARD_TRAINER_URL": trainer,
            "STREAMREC_DASHBOARD_TRITON_URL": settings.triton_http_url,
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def dashboard_component(settings: StackSettings) -> Component:
    """Started last: healthy once it reads the topics from their ends, so every answer the
    stack gives from `up` on reaches the page."""
    url = settings.dashboard_url
    return Component(
        name="dashboard",
        argv=[sys.executable, "-m", "services.dashboard"],
        healthy=partial(health.http_ok, f"{url}/healthz"),
        endpoint=f"{url}/",
        env=dashboard_environment(settings),
        stop_timeout_s=10.0,
    )


def build_components(settings: StackSettings) -> list[Component]:
    from services.kafka.admin import ensure_topics
    from services.kafka.settings import KafkaSettings

    listener = f"tcp://{settings.host}:{settings.broker_port}"
    kafka = KafkaSettings(bootstrap=settings.bootstrap)
    broker = Component(
        name="broker",
        argv=[
            str(broker_binary()),
            "broker",
            "--listener-url",
            listener,
            "--advertised-listener-url",
            listener,
            "--storage-engine",
            "memory://tansu/",
        ],
        healthy=partial(health.broker_ready, settings.bootstrap),
        endpoint=settings.bootstrap,
        after_start=partial(ensure_topics, kafka, settings.topic_partitions),
        stop_timeout_s=5.0,
    )

    triton = require_triton(settings.tools_dir)
    triton_argv = [
        str(triton.binary),
        f"--model-repository={settings.model_repository}",
        f"--backend-directory={triton.backends}",
        "--model-control-mode=explicit",
        *[f"--load-model={m}" for m in settings.triton_models],
        f"--http-address={settings.host}",
        f"--http-port={settings.triton_http_port}",
        f"--grpc-address={settings.host}",
        f"--grpc-port={settings.triton_grpc_port}",
        f"--metrics-address={settings.host}",
        f"--metrics-port={settings.triton_metrics_port}",
        "--exit-timeout-secs=10",
        "--log-verbose=0",
    ]
    tritonserver = Component(
        name="tritonserver",
        argv=triton_argv,
        healthy=partial(health.triton_ready, settings.triton_http_url, settings.triton_models),
        endpoint=f"grpc {settings.triton_grpc_url}, http {settings.triton_http_url}",
        env=triton.environment(),
        stop_timeout_s=15.0,
    )

    workers = []
    for i in range(settings.workers):
        port = settings.worker_web_port + i
        workers.append(
            Component(
                name=f"worker-{i}",
                argv=[sys.executable, "-m", "services.recommender", "worker"],
                healthy=partial(health.http_ok, f"http://{settings.host}:{port}/healthz"),
                endpoint=f"http://{settings.host}:{port}/healthz",
                env=worker_environment(settings, i),
                stop_timeout_s=30.0,
            )
        )
    trainer = []
    if settings.trainer:
        url = f"http://{settings.host}:{settings.trainer_port}"
        trainer.append(
            Component(
                name="trainer",
                argv=[sys.executable, "-m", "services.trainer", "serve"],
                healthy=partial(health.http_ok, f"{url}/healthz"),
                endpoint=f"{url}/status",
                env=trainer_environment(settings),
                stop_timeout_s=30.0,
            )
        )
    dashboard = [dashboard_component(settings)] if settings.dashboard else []
    return [broker, tritonserver, *trainer, *workers, *dashboard]

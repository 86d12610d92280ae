"""The processes that make up the embedded stack, in start order."""

from __future__ import annotations

import json
import logging
import os
import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from services.stack import health
from services.stack.settings import TRITON_ADMIN_HEADER, StackSettings
from services.stack.tools import TritonInstall, broker_binary, require_triton

log = logging.getLogger(__name__)

# Triton's APIs that only an operator needs: loading a model runs code from the repository
# (python backend), and the others reveal or change server internals. Inference, health,
# metadata, model config and statistics stay open to the workers and the dashboard's
# metrics. The same list as docker-compose.yml.
RESTRICTED_TRITON_APIS = ("model-repository", "shared-memory", "trace", "logging")
# Environment variables that carry the admin key; only the trainer's environment keeps them.
ADMIN_KEY_VARIABLES = (
    "TRITON_ADMIN_KEY",
    "STREAMREC_TRITON_ADMIN_KEY",
    "STREAMREC_TRAINER_ADMIN_KEY",
)


def _without_admin_key(env: dict[str, str]) -> dict[str, str]:
    """``env`` less the admin key: a component that does no model control never holds it."""
    return {k: v for k, v in env.items() if k not in ADMIN_KEY_VARIABLES}


@dataclass
class Component:
    """One supervised process: how to start it and how to tell it is healthy."""

    name: str
    argv: list[str]
    healthy: Callable[[], bool]
    endpoint: str
    env: dict[str, str] = field(default_factory=lambda: _without_admin_key(dict(os.environ)))
    # Runs after the component first turns healthy and after every restart
    # (tansu keeps topics in memory: a restarted broker needs them again).
    after_start: Callable[[], object] | None = None
    # Runs before every start, the first and each restart.
    before_start: Callable[[], object] | None = None
    stop_timeout_s: float = 20.0


def issue_admin_key(settings: StackSettings) -> str:
    """The key this stack's Triton will ask for: the configured one, else a new random one
    written to ``settings.admin_key_file`` (mode 0600) for the CLI; a fresh one per `up`,
    so a key read from an earlier run dir opens nothing."""
    configured = settings.triton_admin_key
    path = settings.admin_key_file
    if configured is not None:
        # A file left by an earlier `up` would hand the CLI a key that no longer works.
        path.unlink(missing_ok=True)
        return configured.get_secret_value()
    key = secrets.token_hex(32)
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    _write_private(path, key)
    return key


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner alone, replacing it atomically
    (created 0600: never a moment where another user could open it)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def triton_argv(settings: StackSettings, triton: TritonInstall, admin_key: str) -> list[str]:
    """tritonserver's command line: explicit model control, every address on
    ``settings.host``, the operator's APIs behind ``admin_key``."""
    restricted = f"{','.join(RESTRICTED_TRITON_APIS)}:{TRITON_ADMIN_HEADER}={admin_key}"
    return [
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
        f"--http-restricted-api={restricted}",
        f"--grpc-restricted-protocol={restricted}",
        "--exit-timeout-secs=10",
        "--log-verbose=0",
    ]


def worker_environment(settings: StackSettings, index: int) -> dict[str, str]:
    """Environment for worker ``index``: the stack's addresses, the user's other settings."""
    env = _without_admin_key(dict(os.environ))
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


def trainer_environment(settings: StackSettings, admin_key: str) -> dict[str, str]:
    """The trainer follows the stack's repository, Triton and broker, and holds the admin
    key its releases load models with; the user's ``STREAMREC_TRAINER_`` settings
    (interval, tolerance, ...) pass through."""
    env = _without_admin_key(dict(os.environ))
    env.update(
        {
            "STREAMREC_KAFKA_BOOTSTRAP": settings.bootstrap,
            "STREAMREC_TRAINER_MODEL_REPOSITORY": str(settings.model_repository),
            "STREAMREC_TRAINER_TRITON_HTTP_URL": settings.triton_http_url,
            "STREAMREC_TRAINER_ADMIN_KEY": admin_key,
            "STREAMREC_TRAINER_HOST": settings.host,
            "STREAMREC_TRAINER_PORT": str(settings.trainer_port),
            "STREAMREC_TRAINER_DATA_DIR": str(settings.run_dir / "trainer"),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def dashboard_environment(settings: StackSettings) -> dict[str, str]:
    """The dashboard watches this stack: its broker, workers, trainer (if any) and Triton."""
    env = _without_admin_key(dict(os.environ))
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


def set_aside_unservable_scorers(settings: StackSettings) -> list[int]:
    """Retire the versions of the trainer's model that no release vouches for and that
    fail validation, before Triton (re)starts; returns them."""
    from services.trainer.release import set_aside_before_start
    from services.trainer.settings import TrainerSettings

    model = TrainerSettings(model_repository=settings.model_repository).model
    try:
        retired = set_aside_before_start(settings.model_repository, model)
    except Exception as exc:  # a check that fails must not keep Triton from starting
        log.warning("could not check %s's versions before Triton starts: %s", model, exc)
        return []
    if retired:
        log.warning(
            "set aside %s version(s) %s: not published by a release and not servable "
            "(see %s/.retired/)",
            model,
            retired,
            settings.model_repository / model,
        )
    return retired


def build_components(settings: StackSettings) -> list[Component]:
    """Every component of the stack, in start order; issues the Triton admin key (see
    :func:`issue_admin_key`), so call it once per `up`."""
    from services.kafka.admin import ensure_topics

    listener = f"tcp://{settings.host}:{settings.broker_port}"
    kafka = settings.kafka()
    admin_key = issue_admin_key(settings)
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
        healthy=partial(health.broker_ready, kafka),
        endpoint=settings.bootstrap,
        after_start=partial(ensure_topics, kafka, settings.topic_partitions),
        stop_timeout_s=5.0,
    )

    triton = require_triton(settings.tools_dir)
    tritonserver = Component(
        name="tritonserver",
        argv=triton_argv(settings, triton, admin_key),
        healthy=partial(health.triton_ready, settings.triton_http_url, settings.triton_models),
        endpoint=f"grpc {settings.triton_grpc_url}, http {settings.triton_http_url}",
        env=triton.environment(_without_admin_key(dict(os.environ))),
        # Triton loads the highest version at start: a broken folder copied in by hand
        # must not be that one (services/trainer/release.py:set_aside_before_start).
        before_start=partial(set_aside_unservable_scorers, settings),
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
                env=trainer_environment(settings, admin_key),
                stop_timeout_s=30.0,
            )
        )
    dashboard = [dashboard_component(settings)] if settings.dashboard else []
    return [broker, tritonserver, *trainer, *workers, *dashboard]

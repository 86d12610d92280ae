"""tritonserver alone, on free ports, for benchmarks and tests that need only Triton."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from services.stack.components import build_components
from services.stack.settings import StackSettings
from tests.support.infra import free_ports


@contextmanager
def triton_alone(repository: Path, models: tuple[str, ...]) -> Iterator[StackSettings]:
    """Start the embedded tritonserver on ``repository`` loading ``models``; stop it after."""
    from services.stack.supervisor import Supervisor

    http, grpc, metrics = free_ports(3)
    settings = StackSettings(
        triton_http_port=http,
        triton_grpc_port=grpc,
        triton_metrics_port=metrics,
        run_dir=Path(tempfile.mkdtemp()),
        model_repository=repository,
        triton_models=models,
    )
    supervisor = Supervisor(
        settings, [c for c in build_components(settings) if c.name == "tritonserver"]
    )
    supervisor.start()
    try:
        yield settings
    finally:
        supervisor.stop()

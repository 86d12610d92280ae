"""The dashboard's data in one place: the stream's aggregates and the components' health."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from services.dashboard.settings import DashboardSettings
from services.dashboard.stats import LiveStats
from services.kafka.titles import Titles


class StreamSource(Protocol):
    """Reads the topics into the stats and titles (services/dashboard/follower.py)."""

    def start(self) -> None: ...

    def stop(self, timeout: float = ...) -> None: ...

    def status(self) -> dict[str, Any]: ...

    def is_positioned(self) -> bool: ...


class ComponentSource(Protocol):
    """Polls the components (services/dashboard/probes.py)."""

    def start(self) -> None: ...

    def stop(self, timeout: float = ...) -> None: ...

    def snapshot(self) -> dict[str, Any]: ...


class Collector:
    """What ``/api/summary`` answers, and whether the dashboard is ready (``/healthz``)."""

    def __init__(
        self,
        stats: LiveStats,
        titles: Titles,
        stream: StreamSource,
        components: ComponentSource,
        refresh_ms: int = 1500,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.stats, self.titles = stats, titles
        self.stream, self.components = stream, components
        self.refresh_ms = refresh_ms
        self._clock = clock

    def start(self) -> None:
        self.stream.start()
        self.components.start()

    def stop(self) -> None:
        self.components.stop()
        self.stream.stop()

    def ready(self) -> bool:
        """Positioned at the topics' ends at least once: every answer from then on counts."""
        return self.stream.is_positioned()

    def summary(self) -> dict[str, Any]:
        return {
            "generated_at": self._clock(),
            "refresh_ms": self.refresh_ms,
            "stream": {**self.stats.snapshot(self.titles.get), "reader": self.stream.status()},
            "components": self.components.snapshot(),
        }


def build_collector(settings: DashboardSettings) -> Collector:
    """The real collaborators: a Kafka follower and an HTTP poller."""
    from services.dashboard.follower import StreamFollower
    from services.dashboard.probes import ComponentPoller, HttpxProbe

    stats = LiveStats(
        window_s=settings.window_s,
        latest=settings.latest,
        max_users=settings.max_users,
        rate_s=settings.rate_s,
    )
    titles = Titles()
    poller = ComponentPoller(
        HttpxProbe(settings.probe_timeout_s),
        settings.worker_urls,
        settings.trainer_url or None,
        settings.triton_url,
        interval_s=settings.poll_s,
    )
    follower = StreamFollower(settings.kafka, stats, titles)
    return Collector(stats, titles, follower, poller, refresh_ms=settings.refresh_ms)

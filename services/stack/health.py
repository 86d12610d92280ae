"""Health probes for the stack's components: each answers True only when it can serve."""

from __future__ import annotations

import socket
from collections.abc import Iterable
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from services.kafka.settings import KafkaSettings


def tcp_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def broker_ready(kafka: KafkaSettings | str, timeout: float = 2.0) -> bool:
    """The broker answers a metadata request (an open port alone is not enough).

    Asked through :class:`KafkaSettings` like every other client, so a SASL/TLS broker
    gets its credentials; a bare ``HOST:PORT`` takes the security settings of the
    environment (``STREAMREC_KAFKA_*``), as the stack's own clients do.
    """
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    from services.kafka.settings import KafkaSettings

    settings = kafka if isinstance(kafka, KafkaSettings) else KafkaSettings(bootstrap=kafka)
    host, _, port = settings.bootstrap.split(",")[0].strip().rpartition(":")
    if not tcp_open(host, int(port)):
        return False
    try:
        AdminClient(settings.confluent_config()).list_topics(timeout=timeout)
        return True
    except KafkaException:
        return False


def triton_ready(http_url: str, models: Iterable[str] = (), timeout: float = 2.0) -> bool:
    """The server is ready and every named model is loaded and ready."""
    try:
        with httpx.Client(base_url=http_url, timeout=timeout) as client:
            if client.get("/v2/health/ready").status_code != 200:
                return False
            return all(client.get(f"/v2/models/{m}/ready").status_code == 200 for m in models)
    except httpx.HTTPError:
        return False


def http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        return httpx.get(url, timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False

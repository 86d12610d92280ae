"""Health probes for the stack's components: each answers True only when it can serve."""

from __future__ import annotations

import socket
from collections.abc import Iterable

import httpx


def tcp_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def broker_ready(bootstrap: str, timeout: float = 2.0) -> bool:
    """The broker answers a metadata request (an open port alone is not enough)."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    host, _, port = bootstrap.rpartition(":")
    if not tcp_open(host, int(port)):
        return False
    try:
        AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=timeout)
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

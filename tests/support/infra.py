"""Kafka and Redis for tests: testcontainers when a Docker engine answers, embedded otherwise.

There is no Docker engine on our CI machines, so there the embedded tansu broker
and the machine's Redis (127.0.0.1:6379, started by .ci/run) serve instead.
Both paths give the tests the same thing: a bootstrap address and a Redis URL.
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    """One free port for a server a test starts (see :func:`free_ports`)."""
    return free_ports(1)[0]


def _ephemeral_low(path: Path = Path("/proc/sys/net/ipv4/ip_local_port_range")) -> int:
    """The first port the kernel hands to outgoing connections (32768 where unknown)."""
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_ports(n: int, run: int = 1) -> list[int]:
    """n distinct free ports for servers a test starts; the last one begins ``run``
    consecutive free ports (a stack's workers listen on consecutive ports).

    Drawn below the kernel's ephemeral range. A port there is also what an outgoing
    connection gets, so between this check and the server's own bind a client socket
    could take it: CI once saw a second worker fail on "address already in use" on the
    port after the first worker's. Each candidate is bound (and held until all are
    found), so ports in use by the machine's services are skipped.
    """
    low, high = 20_000, _ephemeral_low()
    if high - low < 1_000:  # an unusual range: take what the kernel gives
        low, high = 1_024, 65_000
    rng = random.SystemRandom()
    held: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < n:
            width = run if len(ports) == n - 1 else 1
            start = rng.randrange(low, high - width)
            if any(start <= p < start + width for p in ports):
                continue
            socks = []
            try:
                for port in range(start, start + width):
                    s = socket.socket()
                    socks.append(s)
                    s.bind(("127.0.0.1", port))
            except OSError:
                for s in socks:
                    s.close()
                continue
            held += socks
            ports.append(start)
        return ports
    finally:
        for s in held:
            s.close()


def docker_engine_answers() -> bool:
    """True when a Docker engine answers its /_ping (the docker SDK leaks a socket when it
    does not, which our warnings-as-errors test run would report)."""
    if os.environ.get("STREAMREC_TEST_NO_DOCKER"):
        return False
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        if host.startswith("unix://"):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(3)
                sock.connect(host[len("unix://") :])
                sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
                reply = sock.recv(1024)
        elif host.startswith("tcp://"):
            import httpx

            reply = httpx.get(f"http://{host[len('tcp://') :]}/_ping", timeout=3).content
        else:
            return False
    except OSError:
        return False
    except Exception:
        return False
    return b"OK" in reply


@dataclass(frozen=True)
class Infra:
    kafka_bootstrap: str
    redis_url: str
    backend: str  # "testcontainers" or "embedded"


@contextlib.contextmanager
def embedded_kafka(port: int | None = None) -> Iterator[str]:
    """A tansu broker on memory storage, on ``port`` (a free one by default): a second
    one started on the same port is that broker restarted, empty."""
    from services.stack.health import broker_ready
    from services.stack.tools import broker_binary

    port = port or free_port()
    url = f"tcp://127.0.0.1:{port}"
    log = tempfile.NamedTemporaryFile(prefix="tansu-", suffix=".log", delete=False)  # noqa: SIM115
    proc = subprocess.Popen(
        [
            str(broker_binary()),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    bootstrap = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while not broker_ready(bootstrap):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"tansu did not start; log: {Path(log.name).read_text()[-2000:]}"
                )
            time.sleep(0.1)
        yield bootstrap
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        os.unlink(log.name)


def machine_redis_url() -> str:
    import redis

    # Database 15 keeps test keys away from anything a developer keeps in db 0.
    url = os.environ.get("STREAMREC_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        raise RuntimeError(
            f"Redis at {url} does not answer ({exc}); start it (`.ci/run` does) or set "
            "STREAMREC_TEST_REDIS_URL"
        ) from exc
    return url


@contextlib.contextmanager
def provide_infra() -> Iterator[Infra]:
    if docker_engine_answers():
        from testcontainers.kafka import KafkaContainer
        from testcontainers.redis import RedisContainer

        with KafkaContainer().with_kraft() as kafka, RedisContainer() as rc:
            host, port = rc.get_container_host_ip(), rc.get_exposed_port(6379)
            yield Infra(kafka.get_bootstrap_server(), f"redis://{host}:{port}/15", "testcontainers")
        return
    with embedded_kafka() as bootstrap:
        yield Infra(bootstrap, machine_redis_url(), "embedded")

"""The embedded stack's network surfaces against the real processes: tritonserver as the
stack starts it (operator APIs behind the admin key, inference open, loopback only), the
CLI deploying with the key `up` wrote, and the Kafka security settings reaching the real
broker through the stack's own clients.

The rules as the code and configuration state them are checked in
tests/unit/test_security.py; here the servers say whether they hold.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from services.recommender.triton import rank_inputs
from services.stack.settings import TRITON_ADMIN_HEADER, StackSettings
from services.trainer.triton import TritonAccessDenied, TritonControl
from services.trainer.validate import read_config, scorer_probes
from tests.support.scorer_models import expected_scores, scorer_repository, write_scorer
from tests.support.triton import triton_alone

pytestmark = pytest.mark.integration

GRPC_ADMIN_HEADER = f"triton-grpc-protocol-{TRITON_ADMIN_HEADER}"


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return scorer_repository(tmp_path_factory.mktemp("secure-repo"))


@pytest.fixture(scope="module")
def server(repository: Path) -> Iterator[StackSettings]:
    """tritonserver started by the stack's own component (``build_components``), which
    issues a fresh admin key into the run dir."""
    with pytest.MonkeyPatch.context() as mp:
        for name in ("TRITON_ADMIN_KEY", "STREAMREC_TRITON_ADMIN_KEY"):
            mp.delenv(name, raising=False)
        with triton_alone(repository, ("scorer",)) as settings:
            yield settings


@pytest.fixture(scope="module")
def key(server: StackSettings) -> str:
    value = server.admin_key()
    assert value, f"the stack wrote no admin key to {server.admin_key_file}"
    return value


def score(server: StackSettings) -> tuple[str, np.ndarray, np.ndarray]:
    """One scorer request over HTTP without any key: (model_version, scores, side)."""
    import tritonclient.http as httpclient

    probe = scorer_probes(384)[0]
    client = httpclient.InferenceServerClient(server.triton_http_url.removeprefix("http://"))
    try:
        result = client.infer("scorer", rank_inputs(httpclient, probe))
        return result.get_response()["model_version"], result.as_numpy("SCORES")[0], probe.side
    finally:
        client.close()


def test_operator_apis_refuse_a_request_without_the_right_key(
    server: StackSettings, key: str
) -> None:
    url = server.triton_http_url
    for headers in (None, {TRITON_ADMIN_HEADER: "not-the-key"}):
        calls = {
            "index": httpx.post(f"{url}/v2/repository/index", json={}, headers=headers),
            "load": httpx.post(f"{url}/v2/repository/models/scorer/load", json={}, headers=headers),
            "unload": httpx.post(
                f"{url}/v2/repository/models/scorer/unload", json={}, headers=headers
            ),
            "trace": httpx.get(f"{url}/v2/trace/setting", headers=headers),
            "logging": httpx.get(f"{url}/v2/logging", headers=headers),
        }
        refused = {name: r.status_code for name, r in calls.items()}
        assert refused == dict.fromkeys(calls, 403), (headers, refused)
        assert "restricted" in calls["load"].text
    # The refused unload did nothing: version 1 still answers.
    assert score(server)[0] == "1"


def test_model_control_without_the_key_says_how_to_get_it(server: StackSettings) -> None:
    for key, says in ((None, "set TRITON_ADMIN_KEY"), ("not-the-key", "key sent was refused")):
        control = TritonControl(server.triton_http_url, key)
        try:
            with pytest.raises(TritonAccessDenied, match=says):
                control.load("scorer")
            with pytest.raises(TritonAccessDenied, match="restricted"):
                control.ready_version("scorer")
            # A refused canary is the operator's setting, not a verdict on the model.
            with pytest.raises(TritonAccessDenied):
                folder = server.model_repository / "scorer"
                control.canary("scorer", folder / "1", read_config(folder / "config.pbtxt"))
        finally:
            control.close()


def test_model_control_with_the_key_unloads_and_loads(server: StackSettings, key: str) -> None:
    control = TritonControl(server.triton_http_url, key)
    try:
        assert control.ready_version("scorer") == 1
        control.unload("scorer")
        assert control.ready_version("scorer") is None
        control.load("scorer")
        control.wait_ready("scorer", 1, timeout_s=120)
        assert control.ready_version("scorer") == 1
    finally:
        control.close()


def test_inference_health_and_metadata_need_no_key(server: StackSettings) -> None:
    import tritonclient.grpc as grpcclient

    version, scores, side = score(server)
    assert version == "1"
    np.testing.assert_allclose(scores, expected_scores(side, 1.0), rtol=1e-5)
    url = server.triton_http_url
    assert httpx.get(f"{url}/v2/health/ready").status_code == 200
    assert httpx.get(f"{url}/v2/models/scorer/config").status_code == 200  # the worker's probe
    client = grpcclient.InferenceServerClient(server.triton_grpc_url)  # the workers' path
    try:
        probe = scorer_probes(384)[0]
        result = client.infer("scorer", rank_inputs(grpcclient, probe))
        np.testing.assert_allclose(
            result.as_numpy("SCORES")[0], expected_scores(probe.side, 1.0), rtol=1e-5
        )
    finally:
        client.close()


def test_grpc_repository_api_needs_the_key_too(server: StackSettings, key: str) -> None:
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    client = grpcclient.InferenceServerClient(server.triton_grpc_url)
    try:
        with pytest.raises(InferenceServerException, match="restricted"):
            client.get_model_repository_index()
        index = client.get_model_repository_index(headers={GRPC_ADMIN_HEADER: key})
        assert [m.name for m in index.models] == ["scorer"]
    finally:
        client.close()


def test_the_cli_deploys_with_the_key_from_the_run_dir(
    server: StackSettings,
    repository: Path,
    key: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from click.testing import CliRunner

    from services.cli import main

    for name in ("TRITON_ADMIN_KEY", "STREAMREC_TRITON_ADMIN_KEY", "STREAMREC_TRAINER_ADMIN_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("STREAMREC_MODEL_REPOSITORY", str(repository))
    monkeypatch.setenv("STREAMREC_TRITON_HTTP_PORT", str(server.triton_http_port))
    runner = CliRunner()

    # Another run dir holds no key: Triton refuses, the CLI says what to set, and the
    # model is not recorded as rejected (nothing was wrong with it).
    monkeypatch.setenv("STREAMREC_RUN_DIR", str(tmp_path / "elsewhere"))
    refused = runner.invoke(main, ["deploy", str(write_scorer(tmp_path / "v2", scale=2.0))])
    assert refused.exit_code == 1 and "set TRITON_ADMIN_KEY" in refused.output, refused.output
    assert "rejected" not in refused.output
    assert score(server)[0] == "1"

    monkeypatch.setenv("STREAMREC_RUN_DIR", str(server.run_dir))
    done = runner.invoke(main, ["deploy", str(write_scorer(tmp_path / "v2b", scale=2.0))])
    assert done.exit_code == 0, done.output
    version, scores, side = score(server)
    assert version == "2" and "version 2 serves" in done.output
    np.testing.assert_allclose(scores, expected_scores(side, 2.0), rtol=1e-5)
    listing = runner.invoke(main, ["models", "--json"])
    report = json.loads(listing.output)
    assert report["triton_ready_version"] == 2  # the repository index, with the key
    assert [r["outcome"] for r in report["releases"]] == ["serving"]


def _proc_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An address as /proc/net/tcp{,6} writes it: 32-bit words in host (little-endian)
    byte order."""
    raw = bytes.fromhex(text)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return ipaddress.ip_address(words)


def listening_addresses(port: int) -> set[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """Local addresses with a listening TCP socket on ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.partition(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(_proc_address(address))
    return found


def is_loopback(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    mapped = getattr(address, "ipv4_mapped", None)  # gRPC listens on ::ffff:127.0.0.1
    return (mapped or address).is_loopback


def test_triton_listens_on_loopback_only(server: StackSettings) -> None:
    for port in (server.triton_http_port, server.triton_grpc_port, server.triton_metrics_port):
        addresses = listening_addresses(port)
        assert addresses, f"nothing listens on {port}"
        assert all(is_loopback(a) for a in addresses), (port, addresses)


# -- Kafka: the security settings reach the real broker ----------------------------------


def test_the_stack_health_check_speaks_the_configured_protocol(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """tansu speaks plaintext: the stack's probe reaches it as configured, and fails once
    the environment asks for TLS, which shows the setting reached librdkafka."""
    from services.stack.health import broker_ready
    from tests.support.infra import embedded_kafka

    with embedded_kafka() as bootstrap:
        port = int(bootstrap.rpartition(":")[2])
        settings = StackSettings(run_dir=tmp_path, broker_port=port)
        monkeypatch.delenv("STREAMREC_KAFKA_SECURITY_PROTOCOL", raising=False)
        assert broker_ready(settings.kafka())
        monkeypatch.setenv("STREAMREC_KAFKA_SECURITY_PROTOCOL", "SSL")
        assert settings.kafka().confluent_config()["security.protocol"] == "SSL"
        assert not broker_ready(settings.kafka(), timeout=3)
        assert not broker_ready(settings.bootstrap, timeout=3)

"""Security rules that read the code and the configuration: Triton's admin key in the
embedded stack, loopback binds, Kafka security settings reaching every client, and no
unpickling of files that came from outside.

The scanners walk the source with ``ast`` and name ``file:line`` of what breaks a rule;
each is also run on a snippet that breaks it, so a scanner that stopped finding things
fails here instead of passing quietly. The same rules against the real tritonserver and
the real broker are in tests/integration/test_triton_security.py.
"""

from __future__ import annotations

import ast
import stat
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest

from services.kafka.settings import KafkaSettings
from services.stack import components, control, health
from services.stack.settings import ADMIN_KEY_FILE, TRITON_ADMIN_HEADER, StackSettings
from services.stack.tools import TritonInstall

REPO = Path(__file__).resolve().parents[2]
SCANNED = ("services", "models")  # what runs in production; tests build their own clients


def sources() -> Iterator[tuple[Path, ast.Module]]:
    for top in SCANNED:
        for path in sorted((REPO / top).rglob("*.py")):
            yield path, ast.parse(path.read_text(), filename=str(path))


def where(path: Path, node: ast.AST) -> str:
    return f"{path.relative_to(REPO)}:{getattr(node, 'lineno', '?')}"


def dotted(node: ast.AST | None) -> str:
    """``a.b.c`` as written ("" for anything that is not a dotted name)."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def call_name(call: ast.Call) -> str:
    """``a.b.c(...)`` -> "a.b.c"; the called name as written."""
    return dotted(call.func)


def keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


# -- Triton's admin key in the embedded stack ----------------------------------------


@pytest.fixture
def no_admin_key_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in components.ADMIN_KEY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def fake_install(tmp_path: Path) -> TritonInstall:
    return TritonInstall(root=tmp_path / "triton", python_env=tmp_path / "venv")


def flag(argv: list[str], name: str) -> str:
    (value,) = [a.split("=", 1)[1] for a in argv if a.startswith(f"--{name}=")]
    return value


def test_triton_restricts_the_same_apis_as_compose_to_the_key(tmp_path: Path) -> None:
    import yaml

    argv = components.triton_argv(StackSettings(run_dir=tmp_path), fake_install(tmp_path), "k3y")
    expected = f"model-repository,shared-memory,trace,logging:{TRITON_ADMIN_HEADER}=k3y"
    assert flag(argv, "http-restricted-api") == expected
    assert flag(argv, "grpc-restricted-protocol") == expected
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    for arg in compose["services"]["triton"]["command"]:
        if arg.startswith(("--http-restricted-api=", "--grpc-restricted-protocol=")):
            apis, _, key = arg.split("=", 1)[1].partition(":")
            assert apis == ",".join(components.RESTRICTED_TRITON_APIS), arg
            assert key.startswith(f"{TRITON_ADMIN_HEADER}="), arg


def test_up_generates_a_private_key_per_start_when_none_is_configured(
    tmp_path: Path, no_admin_key_in_env: None
) -> None:
    settings = StackSettings(run_dir=tmp_path / "run")
    first = components.issue_admin_key(settings)
    path = tmp_path / "run" / ADMIN_KEY_FILE
    assert path.read_text() == first and len(first) == 64
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert settings.admin_key() == first  # what the CLI and `status` read
    second = components.issue_admin_key(settings)
    assert second != first and settings.admin_key() == second
    assert not [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_a_configured_key_is_used_and_never_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ADMIN_KEY_FILE).write_text("stale-from-an-earlier-up")
    monkeypatch.setenv("TRITON_ADMIN_KEY", "from-the-operator")
    settings = StackSettings(run_dir=tmp_path)
    assert components.issue_admin_key(settings) == "from-the-operator"
    assert not (tmp_path / ADMIN_KEY_FILE).exists()
    assert settings.admin_key() == "from-the-operator"
    assert "from-the-operator" not in repr(settings)  # a SecretStr: masked in logs


def test_an_empty_key_is_no_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from services.trainer.settings import TrainerSettings

    monkeypatch.setenv("TRITON_ADMIN_KEY", " ")
    settings = StackSettings(run_dir=tmp_path)
    assert settings.triton_admin_key is None and TrainerSettings().admin_key is None
    key = components.issue_admin_key(settings)  # Triton is never restricted to ""
    assert len(key) == 64 and settings.admin_key() == key
    assert TrainerSettings(admin_key="k").admin_key.get_secret_value() == "k"  # by name


def test_only_the_trainer_is_given_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from services.trainer.settings import TrainerSettings

    monkeypatch.setenv("TRITON_ADMIN_KEY", "operator-key")
    settings = StackSettings(run_dir=tmp_path)
    trainer = components.trainer_environment(settings, "stack-key")
    monkeypatch.delenv("TRITON_ADMIN_KEY")
    for name, value in trainer.items():
        monkeypatch.setenv(name, value)
    key = TrainerSettings().admin_key
    assert key is not None and key.get_secret_value() == "stack-key"
    others = {
        "worker": components.worker_environment(settings, 0),
        "dashboard": components.dashboard_environment(settings),
        "default (broker, tritonserver)": components.Component("x", [], lambda: True, "").env,
    }
    for who, env in others.items():
        leaked = set(env) & set(components.ADMIN_KEY_VARIABLES)
        assert not leaked, f"the {who} environment holds the admin key: {leaked}"
        assert "operator-key" not in env.values(), who


def test_status_sends_the_key_to_the_repository_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_admin_key_in_env: None
) -> None:
    import httpx

    settings = StackSettings(run_dir=tmp_path)
    key = components.issue_admin_key(settings)
    sent: list[Any] = []

    def post(url: str, **kwargs: Any) -> httpx.Response:
        sent.append(kwargs.get("headers"))
        return httpx.Response(200, json=[{"name": "scorer", "version": "1", "state": "READY"}])

    monkeypatch.setattr(httpx, "post", post)
    assert control._model_versions(settings) == [
        {"name": "scorer", "version": "1", "state": "READY"}
    ]
    assert sent == [{TRITON_ADMIN_HEADER: key}]


def test_the_cli_uses_the_stack_key_unless_one_is_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_admin_key_in_env: None
) -> None:
    from services.cli import _trainer_settings

    monkeypatch.setenv("STREAMREC_RUN_DIR", str(tmp_path))
    assert _trainer_settings("scorer").admin_key is None  # no stack, no key: sends none
    key = components.issue_admin_key(StackSettings(run_dir=tmp_path))
    assert _trainer_settings("scorer").admin_key.get_secret_value() == key
    monkeypatch.setenv("TRITON_ADMIN_KEY", "explicit")
    assert _trainer_settings("scorer").admin_key.get_secret_value() == "explicit"


def test_triton_control_sends_the_header_only_with_a_key() -> None:
    from pydantic import SecretStr

    from services.trainer.triton import ADMIN_HEADER, TritonControl

    assert ADMIN_HEADER == TRITON_ADMIN_HEADER
    assert TritonControl("http://h:1").headers is None
    assert TritonControl("http://h:1", "k").headers == {ADMIN_HEADER: "k"}
    assert TritonControl("http://h:1", SecretStr("k")).headers == {ADMIN_HEADER: "k"}


# -- loopback by default -----------------------------------------------------------------


def test_every_port_binds_to_loopback_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from services.dashboard.settings import DashboardSettings
    from services.recommender.settings import WorkerSettings
    from services.trainer.settings import TrainerSettings

    for name in ("STREAMREC_HOST", "STREAMREC_WORKER_WEB_HOST", "STREAMREC_TRAINER_HOST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("STREAMREC_DASHBOARD_HOST", raising=False)
    settings = StackSettings(run_dir=tmp_path)
    assert settings.host == "127.0.0.1"
    assert WorkerSettings().worker_web_host == "127.0.0.1"
    assert TrainerSettings().host == "127.0.0.1"
    assert DashboardSettings().host == "127.0.0.1"
    argv = components.triton_argv(settings, fake_install(tmp_path), "k")
    for api in ("http", "grpc", "metrics"):
        assert flag(argv, f"{api}-address") == "127.0.0.1", api
    # The stack hands its host to every process it starts.
    assert components.worker_environment(settings, 0)["STREAMREC_WORKER_WEB_HOST"] == "127.0.0.1"
    assert components.trainer_environment(settings, "k")["STREAMREC_TRAINER_HOST"] == "127.0.0.1"
    assert components.dashboard_environment(settings)["STREAMREC_DASHBOARD_HOST"] == "127.0.0.1"
    assert settings.bootstrap.startswith("127.0.0.1:")  # tansu's listener


# -- Kafka security settings reach every client --------------------------------------

KAFKA_CLIENTS = {"Producer", "Consumer", "AdminClient", "AIOKafkaProducer", "AIOKafkaConsumer"}


def kafka_clients_off_the_factory(path: Path, tree: ast.Module) -> list[str]:
    """Each Kafka client built in a function that does not take its configuration from
    :meth:`KafkaSettings.confluent_config`, and each Faust app given a broker without
    ``broker_credentials``."""
    bad = []
    functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    for fn in functions:
        calls = [n for n in ast.walk(fn) if isinstance(n, ast.Call)]
        uses_factory = any(call_name(c).endswith("confluent_config") for c in calls)
        for call in calls:
            name = call_name(call).rsplit(".", 1)[-1]
            if name in KAFKA_CLIENTS and not uses_factory:
                bad.append(f"{where(path, call)} builds {name} without confluent_config()")
            if keyword(call, "broker") is not None and keyword(call, "broker_credentials") is None:
                bad.append(f"{where(path, call)} gives Faust a broker without broker_credentials")
    # A client built outside any function would escape the rule above.
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        for call in (n for n in ast.walk(node) if isinstance(n, ast.Call)):
            if call_name(call).rsplit(".", 1)[-1] in KAFKA_CLIENTS:
                bad.append(f"{where(path, call)} builds a Kafka client at import")
    return bad


def test_every_kafka_client_takes_its_config_from_kafka_settings() -> None:
    bad: list[str] = []
    found: set[str] = set()
    for path, tree in sources():
        bad += kafka_clients_off_the_factory(path, tree)
        for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
            if call_name(call).rsplit(".", 1)[-1] in KAFKA_CLIENTS:
                found.add(str(path.relative_to(REPO)))
    assert not bad, "Kafka clients that miss the security settings:\n" + "\n".join(bad)
    # The scan sees the clients it is meant to hold to the rule.
    assert {
        "services/kafka/io.py",
        "services/kafka/admin.py",
        "services/stack/health.py",
        "services/stack/control.py",
    } <= found


@pytest.mark.parametrize(
    "snippet",
    [
        'def f(b):\n    return AdminClient({"bootstrap.servers": b})',
        "def f(conf):\n    return confluent_kafka.Producer(conf)",
        "def f(s):\n    return faust.App('x', broker=s.faust_broker_url())",
        "c = Consumer({})",
    ],
)
def test_the_kafka_scan_flags_a_client_off_the_factory(snippet: str) -> None:
    assert kafka_clients_off_the_factory(REPO / "x.py", ast.parse(snippet))


SASL_ENV = {
    "STREAMREC_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    "STREAMREC_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    "STREAMREC_KAFKA_SASL_USERNAME": "streamrec",
    "STREAMREC_KAFKA_SASL_PASSWORD": "s3cret",
    "STREAMREC_KAFKA_SSL_CAFILE": "/etc/ssl/certs/ca-certificates.crt",
}
SASL_CONFIG = {
    "security.protocol": "SASL_SSL",
    "sasl.mechanism": "SCRAM-SHA-512",
    "sasl.username": "streamrec",
    "sasl.password": "s3cret",
    "ssl.ca.location": "/etc/ssl/certs/ca-certificates.crt",
}


@pytest.fixture
def sasl_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SASL_ENV.items():
        monkeypatch.setenv(name, value)


def test_the_client_config_carries_sasl_and_tls_from_the_environment(
    sasl_env: None, tmp_path: Path
) -> None:
    conf = KafkaSettings().confluent_config()
    assert conf.items() >= SASL_CONFIG.items()
    # The stack's own clients: its broker's address, the environment's security.
    stack_conf = StackSettings(run_dir=tmp_path, broker_port=19092).kafka().confluent_config()
    assert stack_conf["bootstrap.servers"] == "127.0.0.1:19092"
    assert stack_conf.items() >= SASL_CONFIG.items()
    assert "s3cret" not in repr(KafkaSettings())


def test_faust_gets_the_same_credentials(sasl_env: None) -> None:
    import faust

    creds = KafkaSettings().faust_credentials()
    assert isinstance(creds, faust.SASLCredentials)
    assert (creds.username, creds.password) == ("streamrec", "s3cret")
    assert str(creds.mechanism.value) == "SCRAM-SHA-512" and creds.ssl_context is not None


def test_sasl_defaults_to_plain_for_both_clients_and_needs_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pydantic import ValidationError

    monkeypatch.setenv("STREAMREC_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    with pytest.raises(ValidationError, match="STREAMREC_KAFKA_SASL_USERNAME"):
        KafkaSettings()
    monkeypatch.setenv("STREAMREC_KAFKA_SASL_USERNAME", "u")
    monkeypatch.setenv("STREAMREC_KAFKA_SASL_PASSWORD", "p")
    settings = KafkaSettings()
    # librdkafka alone would try Kerberos (GSSAPI) where Faust sends PLAIN.
    assert settings.confluent_config()["sasl.mechanism"] == "PLAIN"
    assert str(settings.faust_credentials().mechanism.value) == "PLAIN"


class RecordingAdmin:
    """Stands in for confluent's AdminClient to show the configuration it was given
    (the real broker is asked in tests/integration/test_triton_security.py)."""

    configs: ClassVar[list[dict[str, Any]]] = []

    def __init__(self, conf: dict[str, Any]) -> None:
        RecordingAdmin.configs.append(conf)

    def list_topics(self, timeout: float) -> SimpleNamespace:
        return SimpleNamespace(topics={})


def test_the_stack_health_and_status_clients_carry_the_security_settings(
    sasl_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import confluent_kafka.admin

    RecordingAdmin.configs = []
    monkeypatch.setattr(confluent_kafka.admin, "AdminClient", RecordingAdmin)
    monkeypatch.setattr(health, "tcp_open", lambda host, port, timeout=0.5: True)
    settings = StackSettings(run_dir=tmp_path)
    assert health.broker_ready(settings.kafka())
    assert health.broker_ready(settings.bootstrap)  # a bare address takes the env's too
    assert control._topic_partitions(settings) == {}
    assert len(RecordingAdmin.configs) == 3
    for conf in RecordingAdmin.configs:
        assert conf.items() >= SASL_CONFIG.items(), conf


# -- no unpickling of files from outside -----------------------------------------------


UNSAFE_CALLS = {
    "joblib.load",
    "pd.read_pickle",
    "pandas.read_pickle",
    "yaml.unsafe_load",
    "yaml.unsafe_load_all",
    "yaml.full_load",
    "yaml.full_load_all",
}


def unsafe_loads(path: Path, tree: ast.Module) -> list[str]:
    """Every way in the code to run a file's bytes as Python objects: pickle and its
    cousins, ``torch.load`` without ``weights_only=True``, ``np.load`` with
    ``allow_pickle=True``, ``joblib.load``, ``pd.read_pickle``, and ``yaml.load`` without
    a safe loader."""
    bad = []
    pickling = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "shelve", "joblib"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in pickling:
                    bad.append(f"{where(path, node)} imports {alias.name}")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in pickling:
            bad.append(f"{where(path, node)} imports from {node.module}")
        elif isinstance(node, ast.Call):
            name = call_name(node)
            short = name.rsplit(".", 1)[-1]
            if name == "torch.load":
                weights_only = keyword(node, "weights_only")
                if not (isinstance(weights_only, ast.Constant) and weights_only.value is True):
                    bad.append(f"{where(path, node)} torch.load without weights_only=True")
            elif name in ("np.load", "numpy.load"):
                allow = keyword(node, "allow_pickle")
                if allow is not None and not (
                    isinstance(allow, ast.Constant) and allow.value is False
                ):
                    bad.append(f"{where(path, node)} np.load with allow_pickle")
            elif name in UNSAFE_CALLS:
                bad.append(f"{where(path, node)} {name}")
            elif name in ("yaml.load", "yaml.load_all"):
                loader = keyword(node, "Loader")
                if loader is None and len(node.args) > 1:
                    loader = node.args[1]
                if dotted(loader).rsplit(".", 1)[-1] not in ("SafeLoader", "CSafeLoader"):
                    bad.append(f"{where(path, node)} {name} without SafeLoader")
            elif short in ("loads", "load") and name.split(".")[0] in pickling:
                bad.append(f"{where(path, node)} {name}")
    return bad


def test_no_code_unpickles_what_it_reads() -> None:
    bad = [line for path, tree in sources() for line in unsafe_loads(path, tree)]
    assert not bad, "unsafe deserialisation (use safetensors, JSON or weights_only):\n" + (
        "\n".join(bad)
    )


@pytest.mark.parametrize(
    "snippet",
    [
        "import pickle",
        "from pickle import loads",
        "import torch\ntorch.load(p)",
        "import torch\ntorch.load(p, weights_only=False)",
        "import numpy as np\nnp.load(p, allow_pickle=True)",
        "import joblib",
        "import yaml\nyaml.load(text)",
        "import yaml\nyaml.load(text, Loader=yaml.FullLoader)",
        "import yaml\nyaml.unsafe_load(text)",
        "import pandas as pd\npd.read_pickle(p)",
    ],
)
def test_the_unpickling_scan_flags_each_unsafe_load(snippet: str) -> None:
    assert unsafe_loads(REPO / "x.py", ast.parse(snippet))


@pytest.mark.parametrize(
    "snippet",
    [
        "import torch\ntorch.load(p, weights_only=True)",
        "import numpy as np\nnp.load(p)",
        "import yaml\nyaml.load(text, Loader=yaml.SafeLoader)",
        "import yaml\nyaml.safe_load(text)",
    ],
)
def test_the_unpickling_scan_lets_safe_loads_pass(snippet: str) -> None:
    assert not unsafe_loads(REPO / "x.py", ast.parse(snippet))

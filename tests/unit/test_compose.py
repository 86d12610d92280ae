"""Static checks of the production stack: docker-compose.yml, Dockerfile and .dockerignore,
and the Prometheus and Grafana configuration under deploy/.

No Docker engine is needed: the compose file is parsed with PyYAML and held to the rules
the stack depends on (health-gated start-up, loopback-only ports, a GPU for Triton, Kafka
in KRaft mode, files that exist, Prometheus scraping what the workers and Triton serve, a
dashboard that queries only metrics the worker registers). Each rule is a function
returning a list of problems, so every rule is also run against a deliberately broken
stack to show it can fail. When a Docker engine answers, ``docker compose config``
validates the file as well.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.recommender.metrics import WorkerExporter, WorkerMetrics
from services.stack.tools import TRITON_PYTHON_REQUIREMENTS

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "streamrec.json"

Compose = dict[str, Any]

HEALTH_CONDITIONS = {"service_healthy", "service_completed_successfully"}
ONE_SHOT_RESTARTS = {"no", "on-failure"}


# --------------------------------------------------------------------------------------
# Reading compose's several spellings of the same thing
# --------------------------------------------------------------------------------------


def load_compose(path: Path = COMPOSE_FILE) -> Compose:
    with path.open(encoding="utf-8") as f:
        data = yaml.safe_load(f)
    assert isinstance(data, dict), f"{path.name} is not a YAML mapping"
    return data


def services_of(compose: Compose) -> dict[str, dict[str, Any]]:
    return compose.get("services") or {}


def environment_of(service: dict[str, Any]) -> dict[str, str]:
    """The ``environment`` block as a dict, whether written as a mapping or a list."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = (item.split("=", 1) for item in env)
        return {p[0]: (p[1] if len(p) > 1 else "") for p in pairs}
    return {str(k): str(v) for k, v in env.items()}


def command_of(service: dict[str, Any]) -> list[str]:
    command = service.get("command") or []
    return command.split() if isinstance(command, str) else [str(c) for c in command]


def restart_of(service: dict[str, Any]) -> str:
    # An unquoted `restart: no` is YAML 1.1's boolean false.
    restart = service.get("restart", "no")
    return "no" if restart is False else str(restart).split(":", 1)[0]


def has_healthcheck(service: dict[str, Any]) -> bool:
    check = service.get("healthcheck")
    if not isinstance(check, dict) or check.get("disable"):
        return False
    test = check.get("test")
    return bool(test) and test != ["NONE"]


def is_one_shot(service: dict[str, Any]) -> bool:
    """A task that runs to completion: never restarted after a clean exit."""
    return restart_of(service) in ONE_SHOT_RESTARTS


def published_host_ip(port: Any) -> str | None:
    """The host address a published port binds to; None means every interface."""
    if isinstance(port, dict):
        return port.get("host_ip")
    spec = str(port).split("/", 1)[0]
    if spec.startswith("["):
        return spec[1 : spec.index("]")]
    parts = spec.split(":")
    return parts[0] if len(parts) == 3 else None


def mounts_of(service: dict[str, Any]) -> list[tuple[str, str | None, bool]]:
    """(type, source, read_only) for each volume entry, short or long syntax."""
    mounts: list[tuple[str, str | None, bool]] = []
    for entry in service.get("volumes") or []:
        if isinstance(entry, dict):
            kind = entry.get("type", "volume")
            mounts.append((kind, entry.get("source"), bool(entry.get("read_only"))))
            continue
        parts = str(entry).split(":")
        if len(parts) == 1:
            mounts.append(("volume", None, False))  # anonymous volume
            continue
        source, options = parts[0], parts[2:]
        kind = "bind" if source.startswith((".", "/", "~", "$")) else "volume"
        read_only = any("ro" in opt.split(",") for opt in options)
        mounts.append((kind, source, read_only))
    return mounts


# --------------------------------------------------------------------------------------
# Rules: each returns the problems it finds, an empty list when the stack complies
# --------------------------------------------------------------------------------------


def check_health_or_one_shot(compose: Compose) -> list[str]:
    return [
        f"{name}: no healthcheck, yet restarted as a long-running service "
        f"(restart: {restart_of(svc)})"
        for name, svc in services_of(compose).items()
        if not has_healthcheck(svc) and not is_one_shot(svc)
    ]


def check_depends_on(compose: Compose) -> list[str]:
    services = services_of(compose)
    problems = []
    for name, svc in services.items():
        deps = svc.get("depends_on") or {}
        if isinstance(deps, list):
            problems.append(f"{name}: depends_on is a list, so it waits for start, not health")
            continue
        for target, spec in deps.items():
            condition = (spec or {}).get("condition", "service_started")
            if target not in services:
                problems.append(f"{name}: depends on undefined service {target!r}")
                continue
            if condition not in HEALTH_CONDITIONS:
                problems.append(f"{name} -> {target}: condition {condition!r} does not gate")
            elif condition == "service_healthy" and not has_healthcheck(services[target]):
                problems.append(f"{name} -> {target}: waits for health but {target} has none")
            elif condition == "service_completed_successfully" and not is_one_shot(
                services[target]
            ):
                problems.append(f"{name} -> {target}: waits for completion of a restarted service")
    return problems


def check_files_exist(compose: Compose, root: Path = ROOT) -> list[str]:
    """Bind-mount sources, build contexts, Dockerfiles, required env files; named volumes."""
    declared_volumes = set(compose.get("volumes") or {})
    problems = []
    for name, svc in services_of(compose).items():
        for kind, source, _ in mounts_of(svc):
            if kind == "bind":
                if source is None or "$" in source:
                    problems.append(f"{name}: bind source {source!r} cannot be checked")
                elif not (root / source).expanduser().exists():
                    problems.append(f"{name}: bind source {source} does not exist")
            elif kind == "volume" and source is not None and source not in declared_volumes:
                problems.append(f"{name}: named volume {source!r} is not declared")
        build = svc.get("build")
        if build is not None:
            spec = {"context": build} if isinstance(build, str) else build
            context = root / spec.get("context", ".")
            if not context.is_dir():
                problems.append(f"{name}: build context {context} is not a directory")
            elif "dockerfile_inline" not in spec:
                dockerfile = context / spec.get("dockerfile", "Dockerfile")
                if not dockerfile.is_file():
                    problems.append(f"{name}: Dockerfile {dockerfile} does not exist")
        env_files = svc.get("env_file") or []
        for entry in [env_files] if isinstance(env_files, str | dict) else env_files:
            spec = {"path": entry} if isinstance(entry, str) else entry
            if spec.get("required", True) and not (root / spec["path"]).is_file():
                problems.append(f"{name}: required env_file {spec['path']} does not exist")
    return problems


def check_ports_on_loopback(compose: Compose) -> list[str]:
    return [
        f"{name}: port {port!r} binds to {published_host_ip(port) or 'every interface'}"
        for name, svc in services_of(compose).items()
        for port in svc.get("ports") or []
        if published_host_ip(port) != "127.0.0.1"
    ]


def check_gpu_reserved(compose: Compose, service: str = "triton") -> list[str]:
    svc = services_of(compose).get(service)
    if svc is None:
        return [f"no {service} service"]
    devices = (
        svc.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices") or []
    )
    gpus = [
        d for d in devices if d.get("driver") == "nvidia" and "gpu" in (d.get("capabilities") or [])
    ]
    return [] if gpus else [f"{service}: reserves no NVIDIA GPU device"]


def check_kraft(compose: Compose) -> list[str]:
    services = services_of(compose)
    problems = [
        f"{name}: ZooKeeper has no place in a KRaft stack"
        for name, svc in services.items()
        if "zookeeper" in name.lower() or "zookeeper" in str(svc.get("image", "")).lower()
    ]
    brokers = {n: s for n, s in services.items() if "kafka" in str(s.get("image", "")).lower()}
    if not brokers:
        problems.append("no Kafka broker service")
    for name, svc in brokers.items():
        env = environment_of(svc)
        roles = {r.strip() for r in env.get("KAFKA_PROCESS_ROLES", "").split(",")}
        if not {"broker", "controller"} <= roles:
            problems.append(f"{name}: KAFKA_PROCESS_ROLES is {roles}, not broker,controller")
        for key in ("KAFKA_CONTROLLER_QUORUM_VOTERS", "KAFKA_CONTROLLER_LISTENER_NAMES"):
            if not env.get(key):
                problems.append(f"{name}: {key} is not set")
        if not env.get("CLUSTER_ID"):
            problems.append(f"{name}: CLUSTER_ID is not set, so storage cannot be formatted")
        problems += [f"{name}: {key} is a ZooKeeper setting" for key in env if "ZOOKEEPER" in key]
    return problems


ALL_RULES = (
    check_health_or_one_shot,
    check_depends_on,
    check_files_exist,
    check_ports_on_loopback,
    check_gpu_reserved,
    check_kraft,
)


# --------------------------------------------------------------------------------------
# The real stack
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> Compose:
    return load_compose()


@pytest.mark.parametrize("rule", ALL_RULES, ids=lambda r: r.__name__)
def test_stack_follows_rule(compose: Compose, rule: Any) -> None:
    assert rule(compose) == []


def test_stack_has_the_expected_services(compose: Compose) -> None:
    expected = {"kafka", "topics", "redis", "triton", "worker", "prometheus", "grafana"}
    assert expected <= set(services_of(compose))


def test_workers_wait_for_topics_and_every_backend(compose: Compose) -> None:
    deps = services_of(compose)["worker"]["depends_on"]
    assert deps["topics"]["condition"] == "service_completed_successfully"
    for backend in ("kafka", "redis", "triton"):
        assert deps[backend]["condition"] == "service_healthy"


def test_topics_is_a_one_shot_create_topics_run(compose: Compose) -> None:
    topics = services_of(compose)["topics"]
    assert is_one_shot(topics)
    assert not has_healthcheck(topics)
    assert topics["entrypoint"] == ["python", "-m", "services.stack", "create-topics"]
    assert topics["depends_on"]["kafka"]["condition"] == "service_healthy"


def test_worker_and_topics_share_the_built_image(compose: Compose) -> None:
    services = services_of(compose)
    worker, topics = services["worker"], services["topics"]
    assert worker["image"] == topics["image"]
    assert worker["build"] == topics["build"] == {"context": ".", "dockerfile": "Dockerfile"}
    partitions = "STREAMREC_TOPIC_PARTITIONS"
    assert environment_of(worker)[partitions] == environment_of(topics)[partitions]


def test_workers_reach_backends_by_service_name(compose: Compose) -> None:
    env = environment_of(services_of(compose)["worker"])
    assert env["STREAMREC_KAFKA_BOOTSTRAP"] == "kafka:9092"
    assert env["STREAMREC_TRITON_URL"] == "triton:8001"
    assert env["STREAMREC_FEAST_ONLINE_STORE"] == "redis"
    assert env["STREAMREC_FEAST_REDIS_URL"].startswith("redis://redis:6379/")


def test_worker_healthcheck_probes_its_web_port(compose: Compose) -> None:
    worker = services_of(compose)["worker"]
    probe = " ".join(worker["healthcheck"]["test"])
    assert "STREAMREC_WORKER_WEB_PORT" in probe
    assert environment_of(worker)["STREAMREC_WORKER_WEB_PORT"] == "6066"
    assert worker["deploy"]["replicas"] >= 1
    assert not worker.get("ports"), "replicas would clash on a fixed host port"


def test_triton_image_is_nvidias_with_the_python_backend_needs(compose: Compose) -> None:
    build = services_of(compose)["triton"]["build"]
    inline = dockerfile_instructions(build["dockerfile_inline"])
    (base,) = [args for keyword, args in inline if keyword == "FROM"]
    assert base.startswith("nvcr.io/nvidia/tritonserver:")
    assert base.endswith("-py3")
    # What the embedded stack gives Triton's Python must be in the container too.
    installs = " ".join(args for keyword, args in inline if keyword == "RUN")
    for requirement in TRITON_PYTHON_REQUIREMENTS:
        package = re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0]
        if package != "numpy":  # the image's own numpy is kept on purpose
            assert f'"{package}' in installs, f"{package} is not installed for Triton"
    assert ("COPY", "models /opt/streamrec/models") in inline


def test_triton_serves_explicit_models_read_only(compose: Compose) -> None:
    triton = services_of(compose)["triton"]
    args = command_of(triton)
    assert "--model-control-mode=explicit" in args
    assert any(a.startswith("--load-model=") for a in args)
    assert "--model-repository=/models" in args
    assert ("bind", "./triton_models", True) in mounts_of(triton)
    assert "/v2/health/ready" in " ".join(triton["healthcheck"]["test"])


def test_the_trainer_alone_writes_the_model_repository(compose: Compose) -> None:
    services = services_of(compose)
    trainer = services["trainer"]
    assert ("bind", "./triton_models", False) in mounts_of(trainer)
    assert ("bind", "./triton_models", True) in mounts_of(services["triton"])
    for name, service in services.items():
        if name not in ("trainer", "triton"):
            assert not any(m[1] == "./triton_models" for m in mounts_of(service)), name
    env = trainer["environment"]
    assert env["STREAMREC_TRAINER_MODEL_REPOSITORY"] == "/models"
    assert env["TRITON_ADMIN_KEY"].startswith("${TRITON_ADMIN_KEY:?")
    assert command_of(trainer)[-2:] == ["services.trainer", "serve"]


def test_triton_model_control_needs_the_admin_key(compose: Compose) -> None:
    args = command_of(services_of(compose)["triton"])
    for flag in ("--http-restricted-api=", "--grpc-restricted-protocol="):
        (arg,) = [a for a in args if a.startswith(flag)]
        apis, _, key = arg.removeprefix(flag).partition(":")
        assert "model-repository" in apis.split(",")
        assert "inference" not in apis.split(","), "workers must infer without the key"
        # `:?` makes compose refuse to start rather than run with an empty key.
        assert key.startswith("admin-key=${TRITON_ADMIN_KEY:?")


def test_kafka_keeps_its_log_on_a_volume_and_creates_no_topics(compose: Compose) -> None:
    kafka = services_of(compose)["kafka"]
    env = environment_of(kafka)
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert f"kafka-data:{env['KAFKA_LOG_DIRS']}" in kafka["volumes"]


def test_prometheus_and_grafana_mount_their_config_from_the_repository(compose: Compose) -> None:
    services = services_of(compose)
    prometheus, grafana = services["prometheus"], services["grafana"]
    assert binds_of(prometheus)["/etc/prometheus/prometheus.yml"] == (
        "./deploy/prometheus/prometheus.yml",
        True,
    )
    assert "--config.file=/etc/prometheus/prometheus.yml" in command_of(prometheus)
    grafana_binds = binds_of(grafana)
    assert grafana_binds["/etc/grafana/provisioning"] == ("./deploy/grafana/provisioning", True)
    dashboards_source, read_only = grafana_binds[dashboards_path(GRAFANA / "provisioning")]
    assert read_only and (ROOT / dashboards_source / DASHBOARD.name).is_file()
    for target, (source, _) in {**binds_of(prometheus), **grafana_binds}.items():
        assert (ROOT / source).exists(), f"{source} (mounted at {target}) is not in the repository"
    assert grafana["depends_on"]["prometheus"]["condition"] == "service_healthy"


def test_grafana_needs_an_admin_password_from_the_environment(compose: Compose) -> None:
    env = environment_of(services_of(compose)["grafana"])
    assert env["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD:?")


# --------------------------------------------------------------------------------------
# Prometheus and Grafana: what they scrape and query exists
# --------------------------------------------------------------------------------------


def load_yaml(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as f:
        data = yaml.safe_load(f)
    assert isinstance(data, dict), f"{path} is not a YAML mapping"
    return data


def binds_of(service: dict[str, Any]) -> dict[str, tuple[str, bool]]:
    """Container path -> (host source, read-only) for the short-syntax bind mounts."""
    binds = {}
    for entry in service.get("volumes") or []:
        parts = str(entry).split(":")
        if len(parts) >= 2 and parts[0].startswith("."):
            binds[parts[1]] = (parts[0], "ro" in parts[2:])
    return binds


def container_ports(service: dict[str, Any]) -> set[int]:
    """The container side of each published port (short syntax)."""
    ports = set()
    for port in service.get("ports") or []:
        spec = str(port).split("/", 1)[0]
        ports.add(int(spec.rsplit(":", 1)[-1]))
    return ports


def scrape_targets(config: dict[str, Any]) -> dict[str, list[tuple[str, int, str]]]:
    """job_name -> (host, port, metrics path) for static targets and DNS discovery."""
    jobs: dict[str, list[tuple[str, int, str]]] = {}
    for job in config.get("scrape_configs") or []:
        path = job.get("metrics_path", "/metrics")
        targets = jobs.setdefault(job["job_name"], [])
        for static in job.get("static_configs") or []:
            for target in static.get("targets") or []:
                host, _, port = str(target).rpartition(":")
                targets.append((host, int(port), path))
        for dns in job.get("dns_sd_configs") or []:
            targets += [(name, int(dns["port"]), path) for name in dns.get("names") or []]
    return jobs


def check_prometheus_scrapes_the_stack(compose: Compose, config: dict[str, Any]) -> list[str]:
    """Every worker replica and Triton's metrics port are scraped, on ports they serve."""
    services = services_of(compose)
    jobs = scrape_targets(config)
    problems = []
    worker = services.get("worker")
    if worker is None:
        return ["no worker service"]
    env = environment_of(worker)
    port = int(env.get("STREAMREC_WORKER_WEB_PORT", "6066"))
    if env.get("STREAMREC_WORKER_WEB_HOST") != "0.0.0.0":
        problems.append("worker: its web server does not listen on the project network")
    if ("worker", port, "/metrics") not in jobs.get("worker", []):
        problems.append(f"no scrape of the worker service's /metrics on port {port}")
    triton = services.get("triton")
    if triton is None or 8002 not in container_ports(triton):
        problems.append("triton does not serve its metrics port 8002")
    if ("triton", 8002, "/metrics") not in jobs.get("triton", []):
        problems.append("no scrape of triton:8002/metrics")
    problems += [
        f"job {job}: scrapes {host}, which is not a compose service"
        for job, targets in jobs.items()
        for host, _, _ in targets
        if host not in services and host != "localhost"
    ]
    return problems


def dashboards_path(provisioning: Path) -> str:
    (provider,) = load_yaml(provisioning / "dashboards" / "streamrec.yml")["providers"]
    return str(provider["options"]["path"])


def dashboard_queries(dashboard: dict[str, Any]) -> list[str]:
    return [
        target["expr"]
        for panel in dashboard["panels"]
        for target in panel.get("targets") or []
        if target.get("expr")
    ]


def worker_series_names() -> set[str]:
    """Every series name the worker's registry can expose, as Prometheus stores them."""
    suffixes = {
        "counter": ("_total",),
        "histogram": ("_bucket", "_count", "_sum"),
        "info": ("_info",),
        "gauge": ("",),
    }
    names = set()
    for family in WorkerExporter(WorkerMetrics()).registry.collect():
        names |= {family.name + suffix for suffix in suffixes[family.type]}
    return names


def check_dashboard_queries(dashboard: dict[str, Any], registered: set[str]) -> list[str]:
    return [
        f"the dashboard queries {name}, which the worker does not register"
        for expr in dashboard_queries(dashboard)
        for name in re.findall(r"\bstreamrec_\w+", expr)
        if name not in registered
    ]


@pytest.fixture(scope="module")
def prometheus_config() -> dict[str, Any]:
    return load_yaml(PROMETHEUS_CONFIG)


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    data = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_prometheus_scrapes_every_worker_and_triton(
    compose: Compose, prometheus_config: dict[str, Any]
) -> None:
    assert check_prometheus_scrapes_the_stack(compose, prometheus_config) == []


def test_prometheus_does_not_scrape_the_trainer(prometheus_config: dict[str, Any]) -> None:
    # It has no metrics page (/healthz, /status and POST /train only).
    hosts = {
        host for targets in scrape_targets(prometheus_config).values() for host, _, _ in targets
    }
    assert "trainer" not in hosts


def test_the_dashboard_queries_only_metrics_the_worker_registers(
    dashboard: dict[str, Any],
) -> None:
    registered = worker_series_names()
    assert check_dashboard_queries(dashboard, registered) == []
    queried = {n for e in dashboard_queries(dashboard) for n in re.findall(r"\b\w+", e)}
    # The panels the stack is watched by: throughput, stages, latency, batch size, DLQ and
    # degraded rates, lag, the model version, and Triton's own request rate and queue time.
    assert {
        "streamrec_clicks_total",
        "streamrec_recommendations_total",
        "streamrec_stage_seconds_bucket",
        "streamrec_click_to_recommendation_seconds_bucket",
        "streamrec_batch_clicks_bucket",
        "streamrec_dead_letters_total",
        "streamrec_degraded_recommendations_total",
        "streamrec_consumer_lag_messages",
        "streamrec_model_info",
        "nv_inference_request_success",
        "nv_inference_queue_duration_us",
    } <= queried


def test_grafana_provisions_the_data_source_the_dashboard_uses(
    compose: Compose, dashboard: dict[str, Any]
) -> None:
    (source,) = load_yaml(GRAFANA / "provisioning" / "datasources" / "prometheus.yml")[
        "datasources"
    ]
    host, _, port = source["url"].removeprefix("http://").partition(":")
    prometheus = services_of(compose)[host]
    assert int(port) in container_ports(prometheus)
    uids = {
        target["datasource"]["uid"]
        for panel in dashboard["panels"]
        for target in panel.get("targets") or []
    }
    assert uids == {source["uid"]}


# --------------------------------------------------------------------------------------
# Dockerfile and .dockerignore
# --------------------------------------------------------------------------------------


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuations joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    current = ""
    heredoc_end: str | None = None
    for raw in text.splitlines():
        if heredoc_end is not None:
            heredoc_end = None if raw.strip() == heredoc_end else heredoc_end
            continue
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        keyword, _, args = current.partition(" ")
        instructions.append((keyword.upper(), args.strip()))
        if "<<" in args:
            heredoc_end = args.split("<<", 1)[1].strip().strip("'\"-")
        current = ""
    return instructions


@pytest.fixture(scope="module")
def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions(DOCKERFILE.read_text(encoding="utf-8"))
    starts = [i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM"]
    assert starts, "Dockerfile has no FROM"
    return instructions[starts[-1] :]


def test_dockerfile_parser_joins_continuations_and_skips_heredocs() -> None:
    text = "FROM x\n# note\nRUN a \\\n  b\nRUN python <<EOF\nUSER root\nEOF\nUSER app\n"
    assert dockerfile_instructions(text) == [
        ("FROM", "x"),
        ("RUN", "a  b"),
        ("RUN", "python <<EOF"),
        ("USER", "app"),
    ]


def test_image_is_python_311_slim() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in text
    froms = [args for kw, args in dockerfile_instructions(text) if kw == "FROM"]
    assert froms and all(f.startswith("${PYTHON_IMAGE}") for f in froms)


def test_image_runs_the_worker_as_a_non_root_user(final_stage: list[tuple[str, str]]) -> None:
    users = [args for keyword, args in final_stage if keyword == "USER"]
    assert users, "the final stage never leaves root"
    user = users[-1].split(":", 1)[0]
    assert user not in {"root", "0"}
    (entrypoint,) = [args for keyword, args in final_stage if keyword == "ENTRYPOINT"]
    assert json.loads(entrypoint) == ["python", "-m", "services.recommender", "worker"]


def test_image_installs_the_package_and_cpu_torch() -> None:
    runs = " ".join(
        args
        for keyword, args in dockerfile_instructions(DOCKERFILE.read_text(encoding="utf-8"))
        if keyword == "RUN"
    )
    assert "--index-url https://download.pytorch.org/whl/cpu" in runs
    assert "pip install --no-deps --editable ." in runs


def test_dockerignore_keeps_local_state_and_secrets_out() -> None:
    patterns = {
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", ".run", "*.env", ".env"} <= patterns
    # pyproject.toml names README.md as the readme, and the image needs the sources.
    assert not patterns & {"*.md", "README.md", "services", "models", "pyproject.toml"}


# --------------------------------------------------------------------------------------
# The rules fail on broken stacks
# --------------------------------------------------------------------------------------


def _stack(**services: dict[str, Any]) -> Compose:
    return {"services": services, "volumes": {"data": None}}


BROKEN_STACKS = [
    pytest.param(
        check_health_or_one_shot,
        _stack(api={"image": "x", "restart": "unless-stopped"}),
        "no healthcheck",
        id="long-running-without-healthcheck",
    ),
    pytest.param(
        check_health_or_one_shot,
        _stack(api={"image": "x", "healthcheck": {"test": ["NONE"]}, "restart": "always"}),
        "no healthcheck",
        id="healthcheck-disabled",
    ),
    pytest.param(
        check_depends_on,
        _stack(api={"image": "x", "depends_on": ["db"]}, db={"image": "y"}),
        "is a list",
        id="depends-on-list",
    ),
    pytest.param(
        check_depends_on,
        _stack(api={"image": "x", "depends_on": {"db": {"condition": "service_healthy"}}}),
        "undefined service 'db'",
        id="depends-on-missing-service",
    ),
    pytest.param(
        check_depends_on,
        _stack(
            api={"image": "x", "depends_on": {"db": {"condition": "service_started"}}},
            db={"image": "y", "healthcheck": {"test": ["CMD", "true"]}},
        ),
        "'service_started' does not gate",
        id="depends-on-service-started",
    ),
    pytest.param(
        check_depends_on,
        _stack(
            api={"image": "x", "depends_on": {"db": {"condition": "service_healthy"}}},
            db={"image": "y", "restart": "always"},
        ),
        "db has none",
        id="waits-for-health-of-service-without-healthcheck",
    ),
    pytest.param(
        check_files_exist,
        _stack(api={"image": "x", "volumes": ["./no-such-dir:/data:ro"]}),
        "./no-such-dir does not exist",
        id="missing-bind-source",
    ),
    pytest.param(
        check_files_exist,
        _stack(api={"image": "x", "volumes": [{"type": "bind", "source": "./nope"}]}),
        "./nope does not exist",
        id="missing-bind-source-long-syntax",
    ),
    pytest.param(
        check_files_exist,
        _stack(api={"image": "x", "volumes": ["undeclared:/data"]}),
        "'undeclared' is not declared",
        id="undeclared-named-volume",
    ),
    pytest.param(
        check_files_exist,
        _stack(api={"build": "./no-such-context"}),
        "is not a directory",
        id="missing-build-context",
    ),
    pytest.param(
        check_files_exist,
        _stack(api={"build": {"context": ".", "dockerfile": "Nope.Dockerfile"}}),
        "Nope.Dockerfile does not exist",
        id="missing-dockerfile",
    ),
    pytest.param(
        check_ports_on_loopback,
        _stack(api={"image": "x", "ports": ["8000:8000"]}),
        "every interface",
        id="port-on-every-interface",
    ),
    pytest.param(
        check_ports_on_loopback,
        _stack(api={"image": "x", "ports": ["0.0.0.0:8000:8000/tcp"]}),
        "binds to 0.0.0.0",
        id="port-on-0.0.0.0",
    ),
    pytest.param(
        check_ports_on_loopback,
        _stack(api={"image": "x", "ports": [8000]}),
        "every interface",
        id="port-as-number",
    ),
    pytest.param(
        check_ports_on_loopback,
        _stack(api={"image": "x", "ports": [{"target": 8000, "published": 8000}]}),
        "every interface",
        id="long-syntax-port-without-host-ip",
    ),
    pytest.param(
        check_gpu_reserved,
        _stack(triton={"image": "nvcr.io/nvidia/tritonserver:26.10-py3"}),
        "reserves no NVIDIA GPU",
        id="triton-without-gpu",
    ),
    pytest.param(
        check_gpu_reserved,
        _stack(
            triton={
                "deploy": {
                    "resources": {
                        "reservations": {"devices": [{"driver": "nvidia", "capabilities": []}]}
                    }
                }
            }
        ),
        "reserves no NVIDIA GPU",
        id="triton-device-without-gpu-capability",
    ),
    pytest.param(
        check_kraft,
        _stack(
            zookeeper={"image": "zookeeper:3.9"},
            kafka={
                "image": "apache/kafka:4.3.1",
                "environment": {"KAFKA_ZOOKEEPER_CONNECT": "zookeeper:2181"},
            },
        ),
        "KAFKA_ZOOKEEPER_CONNECT is a ZooKeeper setting",
        id="kafka-on-zookeeper",
    ),
    pytest.param(
        check_kraft,
        _stack(
            kafka={
                "image": "apache/kafka:4.3.1",
                "environment": ["KAFKA_PROCESS_ROLES=broker", "CLUSTER_ID=abc"],
            }
        ),
        "not broker,controller",
        id="kafka-broker-without-controller",
    ),
    pytest.param(check_kraft, _stack(redis={"image": "redis"}), "no Kafka broker", id="no-kafka"),
]


@pytest.mark.parametrize(("rule", "stack", "expected"), BROKEN_STACKS)
def test_rule_reports_broken_stack(rule: Any, stack: Compose, expected: str) -> None:
    problems = rule(stack)
    assert any(expected in problem for problem in problems), problems


def _scraped_stack(worker_env: dict[str, str]) -> Compose:
    return _stack(
        worker={"environment": worker_env},
        triton={"ports": ["127.0.0.1:8002:8002"]},
    )


_WORKER_ENV = {"STREAMREC_WORKER_WEB_HOST": "0.0.0.0", "STREAMREC_WORKER_WEB_PORT": "6066"}
_SCRAPES = {
    "scrape_configs": [
        {"job_name": "worker", "dns_sd_configs": [{"names": ["worker"], "port": 6066}]},
        {"job_name": "triton", "static_configs": [{"targets": ["triton:8002"]}]},
    ]
}


@pytest.mark.parametrize(
    ("stack", "config", "expected"),
    [
        pytest.param(
            _scraped_stack({**_WORKER_ENV, "STREAMREC_WORKER_WEB_PORT": "7000"}),
            _SCRAPES,
            "on port 7000",
            id="worker-port-moved",
        ),
        pytest.param(
            _scraped_stack({**_WORKER_ENV, "STREAMREC_WORKER_WEB_HOST": "127.0.0.1"}),
            _SCRAPES,
            "does not listen on the project network",
            id="worker-on-loopback",
        ),
        pytest.param(
            _stack(worker={"environment": _WORKER_ENV}, triton={"ports": []}),
            _SCRAPES,
            "metrics port 8002",
            id="triton-without-metrics-port",
        ),
        pytest.param(
            _scraped_stack(_WORKER_ENV),
            {
                "scrape_configs": [
                    *_SCRAPES["scrape_configs"],
                    {"job_name": "x", "static_configs": [{"targets": ["workers:6066"]}]},
                ]
            },
            "workers, which is not a compose service",
            id="target-not-a-service",
        ),
        pytest.param(
            _scraped_stack(_WORKER_ENV),
            {"scrape_configs": _SCRAPES["scrape_configs"][1:]},
            "no scrape of the worker",
            id="workers-not-scraped",
        ),
    ],
)
def test_scrape_rule_reports_broken_config(
    stack: Compose, config: dict[str, Any], expected: str
) -> None:
    assert check_prometheus_scrapes_the_stack(_scraped_stack(_WORKER_ENV), _SCRAPES) == []
    problems = check_prometheus_scrapes_the_stack(stack, config)
    assert any(expected in problem for problem in problems), problems


def test_dashboard_rule_reports_a_renamed_metric() -> None:
    dashboard = {"panels": [{"targets": [{"expr": "rate(streamrec_click_total[5m])"}]}]}
    problems = check_dashboard_queries(dashboard, worker_series_names())
    assert problems == [
        "the dashboard queries streamrec_click_total, which the worker does not register"
    ]


@pytest.mark.parametrize(
    ("port", "host_ip"),
    [
        ("127.0.0.1:8000:8000", "127.0.0.1"),
        ("127.0.0.1::8000", "127.0.0.1"),
        ("127.0.0.1:9000-9001:9000-9001/udp", "127.0.0.1"),
        ("[::1]:8000:8000", "::1"),
        ("8000:8000", None),
        ("8000", None),
        (8000, None),
        ({"target": 80, "published": 8080, "host_ip": "127.0.0.1"}, "127.0.0.1"),
    ],
)
def test_published_host_ip_reads_every_port_syntax(port: Any, host_ip: str | None) -> None:
    assert published_host_ip(port) == host_ip


def test_one_shot_reads_yaml_boolean_restart() -> None:
    assert is_one_shot(yaml.safe_load("restart: no"))
    assert not is_one_shot({"restart": "unless-stopped"})


# --------------------------------------------------------------------------------------
# Docker's own validation, where an engine is at hand
# --------------------------------------------------------------------------------------


def _why_docker_compose_cannot_run() -> str | None:
    docker = shutil.which("docker")
    if docker is None:
        return "no Docker engine answers: the docker CLI is not installed"
    try:
        info = subprocess.run(
            [docker, "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
        if info.returncode != 0:
            detail = (info.stderr.strip().splitlines() or ["docker info failed"])[-1]
            return f"no Docker engine answers ({detail})"
        version = subprocess.run(
            [docker, "compose", "version"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return "no Docker engine answers (docker timed out)"
    if version.returncode != 0:
        return "a Docker engine answers, but the docker compose plugin is not installed"
    return None


def _compose_config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE_FILE), "config", "-q"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_docker_compose_config_accepts_the_file() -> None:
    reason = _why_docker_compose_cannot_run()
    if reason is not None:
        pytest.skip(reason)
    secrets = {"TRITON_ADMIN_KEY": "test-admin-key", "GRAFANA_ADMIN_PASSWORD": "test-password"}
    env = {k: v for k, v in os.environ.items() if k not in secrets}
    for missing in secrets:
        refused = _compose_config({**env, **secrets, missing: ""})
        assert refused.returncode != 0, f"compose ran without {missing}"
        assert missing in refused.stderr
    accepted = _compose_config({**env, **secrets})
    assert accepted.returncode == 0, accepted.stderr

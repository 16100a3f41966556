"""deploy/compose.yaml: Compose accepts it for both profiles, it matches the Compose
Specification's JSON schema, and the rendered services have what the deployment needs.

``docker-compose config`` (Debian's docker-compose 1.29.2 on CI) interpolates and validates
without a Docker engine. It runs with a clean environment and ``--env-file`` pointing at the
committed ``deploy/env.example`` (or a temporary file), so neither the caller's shell nor a
real ``deploy/.env`` can change the result. docker-compose 1.29 prints every service whatever
``--profile`` says, so the tests work out which services a profile starts themselves.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

from seawatch.config import load_settings
from seawatch.dashboards.provision_files import DEFAULT_TOKEN_ENV, export
from tests.deploy.support import setting_field
from tests.servers import require_binary

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
ENV_EXAMPLE = DEPLOY / "env.example"
SCHEMA = DEPLOY / "schemas" / "compose-spec.json"
SCHEMA_README = DEPLOY / "schemas" / "README.md"

PROFILES = {"cpu": "seawatch-cpu", "gpu": "seawatch-gpu"}
ALWAYS = {"kafka", "kafka-init", "influxdb", "influx-dbrp", "dashboards", "grafana"}
FRAME_TOPICS = ("frames.plankton", "frames.otolith", "frames.fish", "frames.dlq")
SECRETS = ("INFLUX_TOKEN", "INFLUX_ADMIN_PASSWORD", "GRAFANA_ADMIN_PASSWORD")


def _compose(env_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``docker-compose -f deploy/compose.yaml --env-file ENV_FILE ARGS`` in a clean env."""
    clean = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/")}
    command = [
        require_binary("docker-compose", "apt-get install docker-compose"),
        "-f",
        str(COMPOSE),
        "--env-file",
        str(env_file),
        *args,
    ]
    return subprocess.run(
        command, cwd=REPO, env=clean, capture_output=True, text=True, timeout=60, check=False
    )


@cache
def _rendered(profile: str, env_file: Path = ENV_EXAMPLE) -> dict[str, Any]:
    done = _compose(env_file, "--profile", profile, "config")
    assert done.returncode == 0, f"docker-compose config --profile {profile}:\n{done.stderr}"
    return yaml.safe_load(done.stdout)


def _active(config: dict[str, Any], profile: str) -> dict[str, dict[str, Any]]:
    """The services ``--profile profile`` starts: those without profiles, and its own."""
    return {
        name: service
        for name, service in config["services"].items()
        if not service.get("profiles") or profile in service["profiles"]
    }


def _env_file_values(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"{path.name}: not KEY=VALUE: {line!r}"
            values[key.strip()] = value.strip()
    return values


def _workers(service: dict[str, Any]) -> int:
    command = service["command"]
    return int(command[command.index("--workers") + 1])


def _volume_at(service: dict[str, Any], target: str) -> str:
    """The named volume a service mounts at ``target`` (short syntax ``name:target[:mode]``)."""
    for volume in service.get("volumes", []):
        source, _, rest = volume.partition(":")
        if rest.split(":")[0] == target:
            return source
    raise AssertionError(f"nothing is mounted at {target}: {service.get('volumes')}")


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_each_profile_renders_its_daemon_and_the_shared_services(profile: str) -> None:
    """``config --profile cpu|gpu`` succeeds; each starts the shared services and its own
    daemon only (the other profile's daemon would share the consumer group and store)."""
    services = _active(_rendered(profile), profile)
    other = {name for key, name in PROFILES.items() if key != profile}
    assert set(services) == ALWAYS | {PROFILES[profile]}
    assert not other & set(services)


def test_compose_file_matches_the_compose_specification_schema() -> None:
    """The file as written (anchors merged) validates against the vendored schema, and the
    schema is strict enough to reject a misspelled key."""
    schema = json.loads(SCHEMA.read_text())
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema)
    document = yaml.safe_load(COMPOSE.read_text())
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]
    assert errors == []
    broken = {**document, "services": {**document["services"]}}
    broken["services"]["kafka"] = {**document["services"]["kafka"], "helthcheck": {}}
    assert not validator.is_valid(broken)


def test_vendored_schema_is_the_recorded_upstream_file() -> None:
    """deploy/schemas/README.md records the schema's repository, commit and sha256; the file
    still has that hash (an edit or a partial copy would change it)."""
    readme = SCHEMA_README.read_text()
    digest = hashlib.sha256(SCHEMA.read_bytes()).hexdigest()
    assert "compose-spec/compose-spec" in readme
    assert "schema/compose-spec.json" in readme
    assert re.search(r"\b[0-9a-f]{40}\b", readme), "no commit recorded"
    assert digest in readme


def test_kafka_runs_in_kraft_mode_from_the_official_image() -> None:
    """apache/kafka at a pinned version, broker and controller in one node, no ZooKeeper, and a
    healthcheck that asks the broker itself."""
    kafka = _rendered("cpu")["services"]["kafka"]
    image, _, tag = kafka["image"].partition(":")
    assert image == "apache/kafka"
    assert re.fullmatch(r"\d+\.\d+\.\d+", tag), f"pin a release, not {tag!r}"
    env = kafka["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] == "CONTROLLER"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@kafka:9093"
    assert "CONTROLLER://:9093" in env["KAFKA_LISTENERS"]
    assert "PLAINTEXT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert not any("ZOOKEEPER" in key for key in env)
    assert env["KAFKA_LOG_DIRS"] == "/var/lib/kafka/data"
    assert _volume_at(kafka, "/var/lib/kafka/data") in _rendered("cpu")["volumes"]
    assert "kafka-broker-api-versions.sh" in " ".join(kafka["healthcheck"]["test"])


@pytest.mark.parametrize("env_source", ["example", "defaults"])
def test_frame_topics_are_created_with_a_partition_for_every_worker(
    env_source: str, tmp_path: Path
) -> None:
    """The one-shot kafka-init creates the four frame topics (idempotently) with at least as
    many partitions as each daemon has workers, with env.example and with the defaults alone
    (an env file holding only the secrets)."""
    env_file = ENV_EXAMPLE
    if env_source == "defaults":
        env_file = tmp_path / "secrets-only.env"
        env_file.write_text("".join(f"{name}=x{name.lower()}\n" for name in SECRETS))
    for profile, daemon in PROFILES.items():
        services = _rendered(profile, env_file)["services"]
        init = services["kafka-init"]
        script = "\n".join(init["command"])
        topics = re.search(r"for topic in ([^;\n]+);", script).group(1).split()
        assert set(topics) == set(FRAME_TOPICS)
        assert "--create --if-not-exists" in script
        partitions = int(re.search(r"want=(\d+)", script).group(1))
        workers = _workers(services[daemon])
        assert partitions >= workers, f"{profile}: {partitions} partitions < {workers} workers"
        assert int(services[daemon]["environment"]["SEAWATCH_KAFKA__PARTITIONS"]) == partitions
        assert init["depends_on"]["kafka"]["condition"] == "service_healthy"
        assert services[daemon]["depends_on"]["kafka-init"] == {
            "condition": "service_completed_successfully"
        }


def test_gpu_daemon_reserves_one_nvidia_gpu_and_the_cpu_daemon_none() -> None:
    """Only the gpu profile's daemon asks for a GPU, built from the TensorRT Dockerfile; the
    cpu one is built from Dockerfile.cpu and runs ONNX Runtime."""
    gpu = _rendered("gpu")["services"]["seawatch-gpu"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    assert gpu["profiles"] == ["gpu"]
    assert gpu["build"]["dockerfile"] == "deploy/docker/Dockerfile.gpu"
    assert Path(gpu["build"]["context"]) == REPO
    cpu = _rendered("cpu")["services"]["seawatch-cpu"]
    assert "deploy" not in cpu
    assert cpu["profiles"] == ["cpu"]
    assert cpu["build"]["dockerfile"] == "deploy/docker/Dockerfile.cpu"
    assert cpu["environment"]["SEAWATCH_INFERENCE__BACKEND"] == "onnxruntime"


def _served_graph_dirs(root: str) -> set[str]:
    """Where the image holds every graph the daemon may serve (otolith view variants too)."""
    models = REPO / "models"
    return {f"{root}/{onnx.parent.relative_to(models)}" for onnx in models.rglob("model.onnx")}


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_the_store_and_outbox_are_on_a_named_volume(profile: str) -> None:
    """The local store (the image's SEAWATCH_STORAGE__LOCAL__PATH) and the outbox beside it
    are on a named volume, so unsent lines outlive a re-created container."""
    config = _rendered(profile)
    daemon = config["services"][PROFILES[profile]]
    dockerfile = (DEPLOY / "docker" / f"Dockerfile.{profile}").read_text()
    store = Path(re.search(r"SEAWATCH_STORAGE__LOCAL__PATH=(\S+)", dockerfile).group(1))
    assert "SEAWATCH_STORAGE__LOCAL__PATH" not in daemon["environment"]
    volume = _volume_at(daemon, str(store.parent))
    assert volume in config["volumes"], volume


def test_gpu_daemon_keeps_an_engine_cache_for_every_served_graph() -> None:
    """TensorRT engines are cached beside each graph (the otolith detector's view variants
    included): a named volume at each, so a re-created container does not build them again;
    Dockerfile.gpu makes the folders seawatch's, so each new volume is writable by it."""
    config = _rendered("gpu")
    gpu = config["services"]["seawatch-gpu"]
    graphs = _served_graph_dirs("/opt/seawatch/models")
    volumes = {graph: _volume_at(gpu, f"{graph}/engines") for graph in graphs}
    assert len(set(volumes.values())) == len(graphs)  # one volume each
    assert set(volumes.values()) <= set(config["volumes"])
    dockerfile = (DEPLOY / "docker" / "Dockerfile.gpu").read_text()
    made = re.search(r"RUN install -d -o seawatch -g seawatch((?:\s+\\?\s*/\S+)+)", dockerfile)
    assert made is not None
    assert set(made.group(1).replace("\\", " ").split()) == {f"{g}/engines" for g in graphs}


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_daemon_listens_for_probes_restarts_and_waits_for_its_servers(profile: str) -> None:
    """The daemon binds 0.0.0.0, is probed on /healthz at its HTTP port, restarts, and starts
    only after Kafka and InfluxDB are healthy and the one-shots finished."""
    daemon = _rendered(profile)["services"][PROFILES[profile]]
    env = daemon["environment"]
    assert env["SEAWATCH_HTTP__HOST"] == "0.0.0.0"
    probe = " ".join(daemon["healthcheck"]["test"])
    assert f"http://127.0.0.1:{env['SEAWATCH_HTTP__PORT']}/healthz" in probe
    assert daemon["restart"] in {"always", "unless-stopped", "on-failure"}
    conditions = {name: dep["condition"] for name, dep in daemon["depends_on"].items()}
    assert conditions["kafka"] == "service_healthy"
    assert conditions["influxdb"] == "service_healthy"
    assert conditions["influx-dbrp"] == "service_completed_successfully"
    assert env["SEAWATCH_KAFKA__BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert urlsplit(env["SEAWATCH_STORAGE__INFLUX__URL"]).hostname == "influxdb"
    unknown = [name for name in env if setting_field(name) is None]
    assert unknown == [], f"not seawatch settings: {unknown}"
    load_settings(**_as_overrides(env))  # every value validates


def _as_overrides(env: dict[str, str]) -> dict[str, str]:
    return {k.removeprefix("SEAWATCH_").lower(): str(v) for k, v in env.items()}


@pytest.mark.parametrize("service", ["kafka", "influxdb", "grafana", "seawatch-cpu"])
def test_long_running_services_have_healthchecks(service: str) -> None:
    """Every server another service waits on (or a human watches) has a real healthcheck."""
    check = _rendered("cpu")["services"][service]["healthcheck"]
    assert check["test"][0] in {"CMD", "CMD-SHELL"}
    assert check.get("interval") and check.get("retries")


def test_influxdb_sets_itself_up_and_maps_the_bucket_for_influxql() -> None:
    """InfluxDB 2.7 runs its initial setup with the org, bucket and token the daemon uses,
    and the one-shot influx-dbrp maps that bucket to the database Grafana queries."""
    services = _rendered("cpu")["services"]
    influx = services["influxdb"]
    assert influx["image"] == "influxdb:2.7"
    env = influx["environment"]
    daemon = services["seawatch-cpu"]["environment"]
    assert env["DOCKER_INFLUXDB_INIT_MODE"] == "setup"
    assert env["DOCKER_INFLUXDB_INIT_ORG"] == daemon["SEAWATCH_STORAGE__INFLUX__ORG"]
    assert env["DOCKER_INFLUXDB_INIT_BUCKET"] == daemon["SEAWATCH_STORAGE__INFLUX__BUCKET"]
    assert env["DOCKER_INFLUXDB_INIT_ADMIN_TOKEN"] == daemon["SEAWATCH_STORAGE__INFLUX__TOKEN"]
    assert "influx" in influx["healthcheck"]["test"] and "ping" in influx["healthcheck"]["test"]
    dbrp = services["influx-dbrp"]
    script = "\n".join(dbrp["command"])
    assert "influx v1 dbrp create" in script
    assert dbrp["depends_on"]["influxdb"]["condition"] == "service_healthy"
    assert dbrp["environment"]["BUCKET"] == env["DOCKER_INFLUXDB_INIT_BUCKET"]
    assert dbrp["environment"]["DATABASE"] == daemon["SEAWATCH_DASHBOARDS__DATABASE"]
    assert dbrp["environment"]["INFLUX_TOKEN"] == env["DOCKER_INFLUXDB_INIT_ADMIN_TOKEN"]


def test_grafana_reads_the_provisioning_that_dashboards_export_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dashboards one-shot exports into the volume Grafana mounts at
    /etc/grafana/provisioning, and Grafana starts after it succeeded. Running the export
    with that service's environment gives a datasource that reaches the influxdb service,
    queries the DBRP database, and takes its token from a variable Grafana has."""
    services = _rendered("cpu")["services"]
    dashboards, grafana = services["dashboards"], services["grafana"]
    assert re.fullmatch(r"grafana/grafana:\d+\.\d+\.\d+", grafana["image"])
    assert grafana["depends_on"]["dashboards"]["condition"] == "service_completed_successfully"
    assert dashboards["command"][:2] == ["dashboards", "export"]
    out_dir = dashboards["command"][2]
    volume = _volume_at(dashboards, out_dir)
    assert _volume_at(grafana, "/etc/grafana/provisioning") == volume
    assert dashboards["restart"] == "no"

    for name in [n for n in os.environ if n.startswith("SEAWATCH_")]:
        monkeypatch.delenv(name)
    for name, value in dashboards["environment"].items():
        monkeypatch.setenv(name, str(value))
    written = export(load_settings(), tmp_path)
    files = {str(p.relative_to(tmp_path)) for p in written}
    assert {"datasources/seawatch.yaml", "dashboards/seawatch.yaml"} <= files
    source = yaml.safe_load((tmp_path / "datasources/seawatch.yaml").read_text())
    [datasource] = source["datasources"]
    url = urlsplit(datasource["url"])
    assert url.hostname in services and url.port == 8086
    assert datasource["jsonData"]["dbName"] == services["influx-dbrp"]["environment"]["DATABASE"]
    token_ref = "${" + DEFAULT_TOKEN_ENV + "}"
    assert datasource["secureJsonData"]["httpHeaderValue1"] == f"Token {token_ref}"
    token = grafana["environment"][DEFAULT_TOKEN_ENV]
    assert token == services["influxdb"]["environment"]["DOCKER_INFLUXDB_INIT_ADMIN_TOKEN"]
    provider = yaml.safe_load((tmp_path / "dashboards/seawatch.yaml").read_text())
    json_path = provider["providers"][0]["options"]["path"]
    assert json_path.startswith("/etc/grafana/provisioning/")
    relative = json_path.removeprefix("/etc/grafana/provisioning/")
    assert any(f.startswith(relative + "/") and f.endswith(".json") for f in files)


def test_secrets_come_from_the_uncommitted_env_file(tmp_path: Path) -> None:
    """deploy/.env is git-ignored and never required by a service (no env_file); a missing
    secret stops Compose with a message naming it; the rendered secrets are env.example's."""
    assert ".env" in (DEPLOY / ".gitignore").read_text().split()
    document = yaml.safe_load(COMPOSE.read_text())
    assert not any("env_file" in s for s in document["services"].values())
    example = _env_file_values(ENV_EXAMPLE)
    services = _rendered("cpu")["services"]
    grafana_env, influx_env = (
        services["grafana"]["environment"],
        services["influxdb"]["environment"],
    )
    assert grafana_env["GF_SECURITY_ADMIN_PASSWORD"] == example["GRAFANA_ADMIN_PASSWORD"]
    assert influx_env["DOCKER_INFLUXDB_INIT_PASSWORD"] == example["INFLUX_ADMIN_PASSWORD"]
    assert influx_env["DOCKER_INFLUXDB_INIT_ADMIN_TOKEN"] == example["INFLUX_TOKEN"]
    for secret in SECRETS:
        env_file = tmp_path / f"without-{secret}.env"
        env_file.write_text("".join(f"{k}=v\n" for k in SECRETS if k != secret))
        done = _compose(env_file, "config")
        assert done.returncode != 0
        assert f"set {secret} in deploy/.env" in done.stderr


def test_env_example_documents_every_variable_compose_reads() -> None:
    """Each ${VAR...} in compose.yaml has a line in env.example (and nothing stale is there)."""
    lines = [line for line in COMPOSE.read_text().splitlines() if not line.lstrip().startswith("#")]
    used = set(re.findall(r"(?<!\$)\$\{([A-Z_][A-Z0-9_]*)", "\n".join(lines)))
    documented = set(_env_file_values(ENV_EXAMPLE))
    assert used - documented == set()
    assert documented - used == set()

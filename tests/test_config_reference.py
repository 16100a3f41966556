"""The configuration reference: the committed docs/configuration.md matches the settings model,
lists every field with its environment variable, and never shows a secret."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel, Field, SecretStr

from seawatch.config import Settings
from seawatch.config_reference import SECRET, main, render_reference, stale_message

DOCS = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def _leaves(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Dotted names of every field that is not itself a section."""
    names = []
    for name, field in model.model_fields.items():
        kind = field.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            names += _leaves(kind, f"{prefix}{name}.")
        else:
            names.append(f"{prefix}{name}")
    return names


def _row(text: str, dotted: str) -> str:
    rows = [line for line in text.splitlines() if line.startswith(f"| `{dotted}` |")]
    assert len(rows) == 1, f"{dotted}: {len(rows)} rows"
    return rows[0]


def test_committed_reference_is_up_to_date() -> None:
    assert DOCS.is_file(), stale_message(Path("docs/configuration.md"))
    assert DOCS.read_text(encoding="utf-8") == render_reference(), stale_message(
        Path("docs/configuration.md")
    )


def test_every_setting_is_listed_with_its_environment_variable() -> None:
    text = render_reference()
    leaves = _leaves(Settings)
    assert "storage.influx.token" in leaves and "log_level" in leaves
    for dotted in leaves:
        env = "SEAWATCH_" + dotted.replace(".", "__").upper()
        assert f"| `{env}` |" in _row(text, dotted)


def test_types_constraints_and_defaults_are_readable() -> None:
    text = render_reference()
    assert "| int (≥ 1, ≤ 10,000) | `64` |" in _row(text, "kafka.max_poll_records")
    assert '"earliest" \\| "latest"' in _row(text, "kafka.auto_offset_reset")
    assert "| path \\| null | `null` |" in _row(text, "kafka.ssl_cafile")
    assert "| float (> 0) | `30.0` |" in _row(text, "storage.outbox.max_backoff_s")
    assert "`67108864` (64 MiB)" in _row(text, "kafka.fetch_max_bytes")
    rules = _row(text, "alerts.rules")
    assert "list of rules" in rules and "otolith-anomaly" in rules
    assert '### `alerts.rules[] with kind "plankton_bloom"`' in text
    assert "&lt;store>-evidence/" in _row(text, "storage.local.evidence_dir")
    assert "Precedence, highest first: environment" in text
    assert "do not edit" in text.splitlines()[2]


class _Vault(BaseModel):
    """A section with secrets."""

    token: SecretStr = SecretStr("hunter2-default-token")
    password: SecretStr | None = Field(SecretStr("hunter2-default-password"), description="pw")
    unset: SecretStr | None = None


class _WithSecrets(BaseModel):
    """Settings whose secrets have values by default."""

    vault: _Vault = _Vault()


def test_secret_defaults_render_as_secret() -> None:
    text = render_reference(_WithSecrets)
    assert "hunter2" not in text
    assert f"| secret | {SECRET} |" in _row(text, "vault.token")
    assert f"| secret \\| null | {SECRET} | pw |" in _row(text, "vault.password")
    assert "| `null` |" in _row(text, "vault.unset")
    # The real model: the tokens render as secrets, whatever the environment holds.
    real = render_reference()
    for dotted in ("storage.influx.token", "dashboards.grafana.token"):
        assert f"| secret | {SECRET} |" in _row(real, dotted)


def test_reference_ignores_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    before = render_reference()
    monkeypatch.setenv("SEAWATCH_STORAGE__INFLUX__TOKEN", "hunter2-from-env")
    monkeypatch.setenv("SEAWATCH_KAFKA__GROUP_ID", "group-from-env")
    after = render_reference()
    assert after == before
    assert "hunter2" not in after and "group-from-env" not in after


def test_main_checks_writes_and_prints(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "docs" / "configuration.md"
    assert main(["--check", "--out", str(out)]) == 1  # missing
    out.parent.mkdir()
    out.write_text("# old\n", encoding="utf-8")
    assert main(["--check", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"{out} is stale; run `seawatch config reference --out {out}`" in err

    assert main(["--out", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == render_reference()
    assert main(["--check", "--out", str(out)]) == 0

    capsys.readouterr()
    assert main([]) == 0
    assert capsys.readouterr().out == render_reference()


def test_stale_message_names_the_fix() -> None:
    assert stale_message() == (
        "docs/configuration.md is stale; run `seawatch config reference --out "
        "docs/configuration.md`"
    )

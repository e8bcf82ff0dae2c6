"""Configuration: every setting from the environment, secrets never shown, and docker-compose.yml
only uses names the services read."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr, ValidationError

from config import Settings
from shopsync.cli import main

REPO = Path(__file__).resolve().parents[1]


def env_names() -> set[str]:
    """Every environment variable name Settings reads."""
    names: set[str] = set()
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if alias is not None and hasattr(alias, "choices"):
            names.update(str(c) for c in alias.choices)
        else:
            names.add(f"SHOPSYNC_{name.upper()}")
    return names


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "k1:9092,k2:9092")
    monkeypatch.setenv("SHOPSYNC_TOPIC_PREFIX", "staging.")
    monkeypatch.setenv("SHOPSYNC_PARTITIONS", "8")
    monkeypatch.setenv("SHOPSYNC_STORE", "memory://")
    s = Settings()
    assert s.kafka_bootstrap_servers == "k1:9092,k2:9092"
    assert (s.topic_prefix, s.partitions, s.store) == ("staging.", 8, "memory://")


def test_secrets_are_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOPIFY_WEBHOOK_SECRETS", "old-secret-1, new-secret-2")
    monkeypatch.setenv("HUBSPOT_TOKEN", "pat-na1-very-secret")
    s = Settings()
    shown = repr(s) + str(s) + s.model_dump_json()
    for secret in ("old-secret-1", "new-secret-2", "pat-na1-very-secret"):
        assert secret not in shown
    assert s.webhook_secrets() == [b"old-secret-1", b"new-secret-2"]
    assert s.hubspot_token.get_secret_value() == "pat-na1-very-secret"


def test_per_shop_secrets_sign_only_their_shops_deliveries(monkeypatch: pytest.MonkeyPatch) -> None:
    """X3: ``shop=secret`` entries are one shop's; bare ones every shop's (a secret may end in '=')."""
    monkeypatch.setenv("SHOPIFY_WEBHOOK_SECRETS", "A.myshopify.com=sec-a, b.myshopify.com=sec-b,app-secret==")
    s = Settings()
    assert s.webhook_secrets("a.myshopify.com") == [b"sec-a", b"app-secret=="]
    assert s.webhook_secrets(" B.MyShopify.com ") == [b"sec-b", b"app-secret=="]
    assert s.webhook_secrets("c.myshopify.com") == [b"app-secret=="]
    assert s.webhook_secrets() == [b"sec-a", b"sec-b", b"app-secret=="]
    assert s.webhook_shops() == ["a.myshopify.com", "b.myshopify.com"]
    monkeypatch.setenv("SHOPIFY_WEBHOOK_SECRETS", "a.myshopify.com=sec-a")
    assert Settings().webhook_secrets("c.myshopify.com") == [], (
        "only per-shop secrets: an unknown shop has none"
    )


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("SHOPSYNC_TOPIC_PREFIX", "bad prefix!", "topic prefix"),
        ("SHOPSYNC_STORE", "redis://", "store must be"),
        ("SHOPSYNC_PARTITIONS", "0", "greater than or equal to 1"),
    ],
)
def test_bad_settings_are_rejected_with_the_reason(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=message):
        Settings()


def test_a_bad_setting_stops_the_cli_with_a_clear_message() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "shopsync", "topics"], capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "SHOPSYNC_PARTITIONS": "zero"},
    )  # fmt: skip
    assert result.returncode != 0
    assert "invalid configuration" in result.stderr and "partitions" in result.stderr


def _interpolate(value: str) -> str:
    """Compose's ${NAME:-default} with nothing set in the environment."""
    return re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", value)


def compose_services() -> dict[str, Any]:
    data = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services: dict[str, Any] = data["services"]
    return services


SANDBOX_ENV = {"HUBSPOT_SANDBOX_TOKEN", "HUBSPOT_SANDBOX_WEBHOOK_SECRET"}
"""Read by `shopsync sandbox serve` itself (the sandbox is not configured by Settings)."""


def test_compose_runs_real_subcommands_with_settings_the_services_read() -> None:
    services = compose_services()
    assert services["kafka"]["image"].startswith("apache/kafka:")
    known = env_names() | SANDBOX_ENV
    project = {name: svc for name, svc in services.items() if svc.get("build")}
    assert {"worker", "topics", "writer", "bridge", "sandbox"} <= set(project)
    for name, svc in project.items():
        command = svc["command"][0]
        assert command in main.commands, f"{name}: `shopsync {command}` does not exist"
        env = {k: _interpolate(str(v)) for k, v in svc["environment"].items()}
        unknown = set(env) - known
        assert not unknown, f"{name} sets variables no service reads: {unknown}"
        settings = Settings.model_validate(
            {field: env[alias] for field, alias in _field_aliases().items() if alias in env}
        )
        if command != "sandbox":
            assert settings.kafka_bootstrap_servers == "kafka:9092"


def _field_aliases() -> dict[str, str]:
    return {name: Settings.env_name(name) for name in Settings.model_fields}


def test_every_subcommand_has_help() -> None:
    for name in [
        "worker",
        "writer",
        "bridge",
        "import",
        "replay",
        "topics",
        "tick",
        "demo",
        "kafka",
        "sandbox",
    ]:
        result = subprocess.run(
            [sys.executable, "-m", "shopsync", name, "--help"], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        assert "Usage:" in result.stdout


def test_every_setting_is_documented_in_the_readme() -> None:
    """The README's configuration table names every environment variable a service reads."""
    readme = (REPO / "README.md").read_text()
    missing = sorted(name for name in _field_aliases().values() if f"`{name}`" not in readme)
    assert not missing, f"undocumented settings: {missing}"


def test_child_processes_get_every_setting() -> None:
    """Settings.to_env round-trips: a child process started with it reads the same settings."""
    original = Settings(
        kafka_bootstrap_servers="k:1", topic_prefix="p.", tick_interval_s=0, sync_variants=False,
        abandon_after=timedelta(minutes=30), hubspot_token=SecretStr("tok"), writer_group_id="g",
    )  # fmt: skip
    env = original.to_env()
    assert set(env) == set(_field_aliases().values())
    assert (
        Settings.model_validate({field: env[alias] for field, alias in _field_aliases().items()}) == original
    )


@pytest.mark.parametrize("command", [["worker"], ["bridge"], ["writer"], ["replay", "--dry-run"]])
def test_a_service_without_the_privacy_secret_refuses_to_start_and_says_which_setting(
    command: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """G1's settings are on by default: a service that seals, opens or pseudonymises stops at
    start-up without the key's secret, naming it, instead of failing at its first record."""
    from click.testing import CliRunner

    for name in ("SHOPSYNC_PRIVACY_SECRET", "SHOPIFY_WEBHOOK_SECRETS", "SHOPSYNC_SEAL_PERSONAL_DATA",
                 "SHOPSYNC_REDACTABLE"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")  # never reached
    result = CliRunner().invoke(main, command)
    assert result.exit_code == 1, result.output
    assert "SHOPSYNC_PRIVACY_SECRET" in result.output and "on by default" in result.output
    from shopsync.cli import _settings

    monkeypatch.setenv("SHOPSYNC_SEAL_PERSONAL_DATA", "false")
    monkeypatch.setenv("SHOPSYNC_REDACTABLE", "false")
    assert not _settings().seal_personal_data, "with both off nothing asks for the secret"
    monkeypatch.delenv("SHOPSYNC_SEAL_PERSONAL_DATA")
    monkeypatch.setenv("SHOPSYNC_PRIVACY_SECRET", "p" * 32)
    assert _settings().seal_personal_data, "and with the secret the default starts"


def test_the_start_up_check_lives_on_settings_so_the_devtools_fail_alike(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``require_privacy_key`` is what the CLI and the devtools (``privacy_scan``) call: it names
    the setting with either G1 setting on, and asks nothing of a deployment that has both off."""
    from config.privacy import G1_OFF

    for name in ("SHOPSYNC_PRIVACY_SECRET", "SHOPIFY_WEBHOOK_SECRETS"):
        monkeypatch.delenv(name, raising=False)
    for seal, redactable in ((True, False), (False, True)):
        with pytest.raises(ValueError, match=r"SHOPSYNC_PRIVACY_SECRET.*on by default"):
            Settings(seal_personal_data=seal, redactable=redactable).require_privacy_key()
    Settings(**G1_OFF).require_privacy_key()
    monkeypatch.setenv("SHOPIFY_WEBHOOK_SECRETS", "shpss")
    Settings().require_privacy_key()  # derived from the Shopify secret
    monkeypatch.delenv("SHOPIFY_WEBHOOK_SECRETS")
    monkeypatch.setenv("SHOPSYNC_PRIVACY_SECRET", "p" * 32)
    Settings().require_privacy_key()


def test_the_rules_fingerprint_moves_with_a_delay_and_never_holds_the_pseudonym_key() -> None:
    """What a stored state's due time was worked out under (``due_at``): another delay is
    another fingerprint (the stamps made under the old one are not trusted); the pseudonym key
    is not part of what is digested."""
    from pydantic import SecretBytes

    from config.rules import RuleConfig

    base = RuleConfig()
    assert base.fingerprint() == RuleConfig().fingerprint() and len(base.fingerprint()) == 16
    assert RuleConfig(abandoned_cart_delay=timedelta(hours=2)).fingerprint() != base.fingerprint()
    keyed = RuleConfig(contact_pseudonym_key=SecretBytes(b"k" * 32))
    assert keyed.fingerprint() == base.fingerprint() and "k" * 8 not in keyed.model_dump_json()

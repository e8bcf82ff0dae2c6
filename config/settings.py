"""``Settings``: every part composed, what each service is started with.

One class, so the README's configuration table, docker-compose.yml and the services agree on
names. Secrets are ``SecretStr``: they never appear in a repr, a log line or an error message.
The methods here are the ones that span parts (a limit derived from Kafka's record size, a
group id defaulted from the app id) or all of them (a child process's environment).
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import AliasChoices, Field, SecretBytes, SecretStr

from config.bridge import ENVELOPE_RESERVE_BYTES, BridgeSettings
from config.importer import ImporterSettings
from config.kafka import KafkaSettings
from config.observability import ObservabilitySettings
from config.privacy import PrivacySettings
from config.rules import RuleConfig, RuleSettings
from config.worker import WorkerSettings
from config.writer import WriterSettings


class Settings(
    PrivacySettings,
    ObservabilitySettings,
    ImporterSettings,
    BridgeSettings,
    WriterSettings,
    RuleSettings,
    WorkerSettings,
    KafkaSettings,
):
    """Configuration shared by the worker, writer, bridge and tools."""

    log_level: str = Field("info", description="Log level of every service.")

    @classmethod
    def env_name(cls, field: str) -> str:
        """The environment variable a field is read from (its first alias, else SHOPSYNC_<FIELD>)."""
        alias = cls.model_fields[field].validation_alias
        return str(alias.choices[0]) if isinstance(alias, AliasChoices) else f"SHOPSYNC_{field.upper()}"

    def to_env(self) -> dict[str, str]:
        """The environment that gives a child process exactly these settings (secrets included)."""
        env = {}
        for field in type(self).model_fields:
            value = getattr(self, field)
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            elif isinstance(value, timedelta):
                value = value.total_seconds()
            elif isinstance(value, bool):
                value = "true" if value else "false"
            elif value is None:
                value = ""
            env[self.env_name(field)] = str(value)
        return env

    def privacy_key(self) -> bytes:
        """The key of the compliance pseudonyms (G1): ``SHOPSYNC_PRIVACY_SECRET``, else derived from
        the first configured Shopify secret (``PrivacySettings.pseudonym_key``)."""
        return self.pseudonym_key([secret for _, secret in self._secret_entries()])

    def require_privacy_key(self) -> None:
        """Fail at start-up, naming the setting, when G1's settings (on by default) are on and no
        key can be made: a service that seals, opens or pseudonymises would otherwise fail at its
        first record, with the bare message, after it has joined its group."""
        if not (self.seal_personal_data or self.redactable):
            return
        try:
            self.privacy_key()
        except ValueError as exc:
            raise ValueError(
                f"{exc}. SHOPSYNC_SEAL_PERSONAL_DATA and SHOPSYNC_REDACTABLE (G1, on by default) need "
                "SHOPSYNC_PRIVACY_SECRET, the same for every service of a deployment (README: Privacy)"
            ) from exc

    def bridge_body_limit(self) -> int:
        """The largest webhook body the bridge reads (413 beyond): the envelope's headers and
        receive time must fit beside it (the envelope's exact size is checked again)."""
        return self.max_delivery_bytes() - ENVELOPE_RESERVE_BYTES

    def rule_config(self) -> RuleConfig:
        """The rules' settings; X3's primary shop defaults to the first shop given its own
        secret (``SHOPIFY_WEBHOOK_SECRETS``), so listing the existing shop first keeps its keys.
        With ``SHOPSYNC_REDACTABLE`` (G1) they carry the pseudonym key (``privacy_key``), so
        every service that keys contacts (router, rules, the writer's readers) keys them alike."""
        config = super().rule_config()
        if config.primary_shop is None and self.first_webhook_shop() is not None:
            config = config.model_copy(update={"primary_shop": self.first_webhook_shop()})
        if self.redactable:  # G1 step 2: contacts keyed by their email's pseudonym
            config = config.model_copy(update={"contact_pseudonym_key": SecretBytes(self.privacy_key())})
        return config

    def writer_group(self) -> str:
        return self.writer_group_id or f"{self.app_id}-writer"


def load_settings() -> Settings:
    return Settings()

"""Every setting of every service, read from the environment (and nothing else).

One class, so the README's configuration table, docker-compose.yml and the services agree on
names. Secrets are ``SecretStr``: they never appear in a repr, a log line or an error message.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from streams.rules.common import RuleConfig

KAFKA_FRAMING_BYTES = 64 * 1024
"""Room beside a record's value in a batch: the batch header, the key and record headers."""
LETTER_RESERVE_BYTES = 64 * 1024
"""Room in a dead letter beside the base64 original: reason, topic, offset, key."""
ENVELOPE_RESERVE_BYTES = 16 * 1024
"""Room in a delivery envelope beside the body: Shopify's headers and the receive time."""


class Settings(BaseSettings):
    """Configuration shared by the worker, writer, bridge and tools."""

    model_config = SettingsConfigDict(env_prefix="SHOPSYNC_", extra="ignore", frozen=True)

    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092",
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "SHOPSYNC_KAFKA_BOOTSTRAP_SERVERS"),
        description="Kafka bootstrap servers, comma-separated host:port.",
    )
    topic_prefix: str = Field(
        "", description="Prefix for every topic name (one cluster, several environments)."
    )
    app_id: str = Field(
        "shopsync", description="Faust application id: the consumer group and table topic prefix."
    )
    partitions: int = Field(4, ge=1, description="Partitions of each topic the project creates.")
    replication_factor: int = Field(1, ge=1, description="Replication factor of those topics.")
    store: str = Field("rocksdb://", description="Faust table store: 'rocksdb://' (default) or 'memory://'.")
    data_dir: Path = Field(Path(".local/worker"), description="Where the worker keeps its RocksDB tables.")
    web_port: int = Field(
        0, ge=0, description="Worker web/metrics port on 127.0.0.1; 0 turns the web server off."
    )
    log_level: str = Field("info", description="Log level of every service.")
    session_timeout_s: float = Field(
        10.0, gt=0, description="Kafka consumer-group session timeout (a crashed worker's "
        "partitions move after this long)."
    )  # fmt: skip

    tick_interval_s: float = Field(
        1.0, ge=0, description="Live clock: seconds between ticks the worker appends to every timer "
        "partition; 0 turns live ticks off (simulations and tests advance time with `shopsync tick`)."
    )  # fmt: skip
    abandon_after: timedelta = Field(
        timedelta(minutes=15), description="A checkout with an email, not completed nor updated for this "
        "long, is abandoned (seconds or ISO 8601, e.g. PT15M)."
    )  # fmt: skip
    abandoned_cart_delay: timedelta = Field(
        timedelta(hours=24), description="W2: abandoned-cart trigger delay after abandonment."
    )
    pending_cleanup_after: timedelta = Field(
        timedelta(hours=48), description="D4: a pending deal never promoted to abandoned leaves the pipeline."
    )
    reengage_after: timedelta = Field(
        timedelta(days=90), description="W3: re-engagement trigger delay after the last purchase."
    )
    dedupe_ttl: timedelta = Field(
        timedelta(hours=48), description="How long (event time) a delivery's event id is remembered."
    )
    trigger_grace: timedelta = Field(
        timedelta(hours=24), description="A trigger due longer ago than this is recorded but not written."
    )
    sync_variants: bool = Field(True, description="P5: sync product variants as HubSpot products.")
    pipeline_label: str = Field("Ecommerce Pipeline", description="Label of the deal pipeline.")

    max_record_bytes: int = Field(
        8 * 1024 * 1024, ge=256 * 1024, description="Largest Kafka record value anywhere (R6): every "
        "producer's max request size and every topic's max.message.bytes are this plus Kafka's "
        "framing, and the bridge's body limit is derived so that a delivery's envelope, its forwards "
        "and its dead letter (base64) all fit. Keep the broker's message.max.bytes at least as large."
    )  # fmt: skip

    hubspot_rate_limit_per_10s: int = Field(
        100, ge=1, description="Requests per 10 s the writer allows itself until HubSpot's headers say "
        "otherwise (100: Free/Starter, 190: Professional/Enterprise)."
    )  # fmt: skip
    hubspot_timeout_s: float = Field(10.0, gt=0, description="Timeout of one HubSpot request.")
    writer_batch_window_ms: int = Field(
        300, ge=0, description="How long the writer gathers commands before a round of calls; longer "
        "windows coalesce more updates into fewer calls, shorter ones lower latency."
    )  # fmt: skip
    writer_max_batch: int = Field(1000, ge=1, description="Most commands the writer takes into one window.")
    writer_retry_attempts: int = Field(6, ge=1, description="Tries of a request that meets 5xx or timeouts.")
    writer_link_wait_s: float = Field(
        120.0, ge=0, description="How long an association waits for its other end to exist in HubSpot "
        "before it is dead-lettered."
    )  # fmt: skip
    writer_group_id: str = Field("", description="The writer's consumer group [default: '<app id>-writer'].")

    bridge_host: str = Field(
        "127.0.0.1", description="Address the bridge listens on (0.0.0.0 in a container)."
    )
    bridge_port: int = Field(8080, ge=0, le=65535, description="Port the bridge listens on.")
    bridge_append_timeout_s: float = Field(
        3.0, gt=0, description="How long the bridge waits for Kafka's acknowledgement before answering "
        "503 (Shopify allows 5 s in all)."
    )  # fmt: skip
    bridge_public_url: str = Field(
        "", description="The bridge's public base URL as HubSpot calls it (for HubSpot's v3 signature, "
        "which covers the URL); empty: the URL of the request as received."
    )  # fmt: skip
    simulation_mode: bool = Field(
        False, description="Simulation only: the bridge takes a delivery's received-at from the "
        "X-Shopsync-Simulated-Received-At header. Never set in production."
    )  # fmt: skip
    hubspot_app_secret: SecretStr = Field(
        SecretStr(""),
        validation_alias=AliasChoices("HUBSPOT_APP_SECRET", "SHOPSYNC_HUBSPOT_APP_SECRET"),
        description="The HubSpot app's client secret, which signs its webhooks (v3).",
    )

    shopify_admin_token: SecretStr = Field(
        SecretStr(""),
        validation_alias=AliasChoices("SHOPIFY_ADMIN_TOKEN", "SHOPSYNC_SHOPIFY_ADMIN_TOKEN"),
        description="Admin API access token of the Shopify app (initial import only).",
    )

    shopify_webhook_secrets: SecretStr = Field(
        SecretStr(""),
        validation_alias=AliasChoices("SHOPIFY_WEBHOOK_SECRETS", "SHOPSYNC_SHOPIFY_WEBHOOK_SECRETS"),
        description="Shopify app client secret(s), comma-separated to allow rotation.",
    )
    hubspot_token: SecretStr = Field(
        SecretStr(""),
        validation_alias=AliasChoices("HUBSPOT_TOKEN", "SHOPSYNC_HUBSPOT_TOKEN"),
        description="HubSpot private-app access token.",
    )
    hubspot_base_url: str = Field(
        "https://api.hubapi.com",
        validation_alias=AliasChoices("HUBSPOT_BASE_URL", "SHOPSYNC_HUBSPOT_BASE_URL"),
        description="HubSpot API base URL (the local sandbox's URL in development).",
    )

    @field_validator("topic_prefix")
    @classmethod
    def _prefix_is_a_topic_name(cls, value: str) -> str:
        allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
        if not set(value) <= allowed:
            raise ValueError("topic prefix may hold only letters, digits, '.', '_' and '-'")
        return value

    @field_validator(
        "abandon_after", "abandoned_cart_delay", "pending_cleanup_after", "reengage_after", "dedupe_ttl",
        "trigger_grace", mode="before",
    )  # fmt: skip
    @classmethod
    def _seconds_or_iso_duration(cls, value: object) -> object:
        """Durations are seconds ("900") or ISO 8601 ("PT15M", "P90D")."""
        if isinstance(value, str):
            try:
                return timedelta(seconds=float(value))
            except ValueError:
                return value
        return value

    @field_validator("store")
    @classmethod
    def _known_store(cls, value: str) -> str:
        if not value.startswith(("rocksdb://", "memory://")):
            raise ValueError("store must be 'rocksdb://' or 'memory://'")
        return value

    def rule_config(self) -> RuleConfig:
        """The rules' settings (W4: every delay configurable): the fields both classes share."""
        return RuleConfig(**{name: getattr(self, name) for name in RuleConfig.model_fields})

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
            env[self.env_name(field)] = str(value)
        return env

    def kafka_message_bytes(self) -> int:
        """A record batch's largest size on the wire: ``max_record_bytes`` plus the batch header,
        the key and the record headers. Producers' ``max_request_size`` and topics'
        ``max.message.bytes`` are set to it, so a record that fits one fits all."""
        return self.max_record_bytes + KAFKA_FRAMING_BYTES

    def max_delivery_bytes(self) -> int:
        """The largest delivery envelope the bridge appends: small enough that its dead letter
        (the original bytes in base64, 4/3 larger, plus the reason) still fits a record."""
        return (self.max_record_bytes - LETTER_RESERVE_BYTES) * 3 // 4

    def bridge_body_limit(self) -> int:
        """The largest webhook body the bridge reads (413 beyond): the envelope's headers and
        receive time must fit beside it (the envelope's exact size is checked again)."""
        return self.max_delivery_bytes() - ENVELOPE_RESERVE_BYTES

    def writer_group(self) -> str:
        return self.writer_group_id or f"{self.app_id}-writer"

    def webhook_secrets(self) -> list[bytes]:
        """The configured Shopify secrets, newest first as given."""
        raw = self.shopify_webhook_secrets.get_secret_value()
        return [s.strip().encode() for s in raw.split(",") if s.strip()]


def load_settings() -> Settings:
    return Settings()

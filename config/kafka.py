"""Kafka: where the cluster is, how the project's topics are named and sized, the consumer group.

The record-size constants live here because every producer, every topic and the bridge's body
limit are derived from one setting (R6: ``SHOPSYNC_MAX_RECORD_BYTES``).
"""

from __future__ import annotations

from pydantic import AliasChoices, Field, field_validator

from config.base import SettingsPart

KAFKA_FRAMING_BYTES = 64 * 1024
"""Room beside a record's value in a batch: the batch header, the key and record headers."""
LETTER_RESERVE_BYTES = 64 * 1024
"""Room in a dead letter beside the base64 original: reason, topic, offset, key."""


class KafkaSettings(SettingsPart):
    """The cluster, the topics the project creates and the size of their records."""

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
    session_timeout_s: float = Field(
        10.0, gt=0, description="Kafka consumer-group session timeout (a crashed worker's "
        "partitions move after this long)."
    )  # fmt: skip
    max_record_bytes: int = Field(
        8 * 1024 * 1024, ge=256 * 1024, description="Largest Kafka record value anywhere (R6): every "
        "producer's max request size and every topic's max.message.bytes are this plus Kafka's "
        "framing, and the bridge's body limit is derived so that a delivery's envelope, its forwards "
        "and its dead letter (base64) all fit. Keep the broker's message.max.bytes at least as large."
    )  # fmt: skip

    @field_validator("topic_prefix")
    @classmethod
    def _prefix_is_a_topic_name(cls, value: str) -> str:
        allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
        if not set(value) <= allowed:
            raise ValueError("topic prefix may hold only letters, digits, '.', '_' and '-'")
        return value

    def kafka_message_bytes(self) -> int:
        """A record batch's largest size on the wire: ``max_record_bytes`` plus the batch header,
        the key and the record headers. Producers' ``max_request_size`` and topics'
        ``max.message.bytes`` are set to it, so a record that fits one fits all."""
        return self.max_record_bytes + KAFKA_FRAMING_BYTES

    def max_delivery_bytes(self) -> int:
        """The largest delivery envelope the bridge appends: small enough that its dead letter
        (the original bytes in base64, 4/3 larger, plus the reason) still fits a record."""
        return (self.max_record_bytes - LETTER_RESERVE_BYTES) * 3 // 4

"""Local Apache Kafka for development and tests, fetched from Maven Central (no Docker needed)."""

from localkafka.broker import (
    DEFAULT_KAFKA_VERSION,
    BrokerError,
    BrokerInfo,
    fetch,
    start,
    status,
    stop,
    wait_until_answers,
)

__all__ = [
    "DEFAULT_KAFKA_VERSION",
    "BrokerError",
    "BrokerInfo",
    "fetch",
    "start",
    "status",
    "stop",
    "wait_until_answers",
]

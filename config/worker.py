"""The stream worker's process: its table store, data directory, web port and live clock."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from config.base import SettingsPart


class WorkerSettings(SettingsPart):
    """How the faust worker keeps its tables and advances its clock."""

    store: str = Field("rocksdb://", description="Faust table store: 'rocksdb://' (default) or 'memory://'.")
    data_dir: Path = Field(Path(".local/worker"), description="Where the worker keeps its RocksDB tables.")
    web_port: int = Field(
        0, ge=0, description="Worker web/metrics port on 127.0.0.1; 0 turns the web server off."
    )
    tick_interval_s: float = Field(
        1.0, ge=0, description="Live clock: seconds between ticks the worker appends to every timer "
        "partition; 0 turns live ticks off (simulations and tests advance time with `shopsync tick`)."
    )  # fmt: skip
    commit_interval_s: float = Field(
        1.0, gt=0, le=60, description="How often the worker commits the offsets of what it finished. "
        "Shorter: less to re-read after a crash and a group lag that says sooner the worker is idle "
        "(simulations wait on it); longer: fewer commit requests."
    )  # fmt: skip

    rocksdb_write_buffer_mib: int = Field(
        2, ge=1, le=256, description="RocksDB memtable size per table partition, in MiB (two of "
        "them at most: one filling, one flushing). The worker opens a database per table and "
        "partition (6 tables x SHOPSYNC_PARTITIONS), so this times 2 x that count bounds what "
        "unflushed writes hold; RocksDB's own default (64 MiB x 3) let a worker grow past a GiB."
    )  # fmt: skip
    rocksdb_block_cache_mib: int = Field(
        4, ge=1, le=4096, description="RocksDB block cache per table partition, in MiB: recently "
        "read state blocks (faust's default is 2 GiB per database, which reads fill over time)."
    )  # fmt: skip

    @field_validator("store")
    @classmethod
    def _known_store(cls, value: str) -> str:
        if not value.startswith(("rocksdb://", "memory://")):
            raise ValueError("store must be 'rocksdb://' or 'memory://'")
        return value

"""Replay tests use the writer's fixtures: the HubSpot sandbox and settings pointing at it."""

from tests.writer.conftest import sandbox, writer_settings

__all__ = ["sandbox", "writer_settings"]

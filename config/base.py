"""What every part of the settings shares: read from the environment only, frozen, SHOPSYNC_ names.

Each part (``config.kafka``, ``config.worker``, ``config.rules``, ``config.writer``,
``config.bridge``, ``config.importer``) is a ``SettingsPart``, so it can also be read on its own;
``config.Settings`` composes them all for the services.
"""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class SettingsPart(BaseSettings):
    """One part's settings: environment variables ``SHOPSYNC_<FIELD>`` unless a field says otherwise."""

    model_config = SettingsConfigDict(env_prefix="SHOPSYNC_", extra="ignore", frozen=True)

"""Every setting of every service, read from the environment (and nothing else).

The bottom layer: any package may import ``config``; ``config`` imports nothing of the project.
Split by part (``kafka``, ``worker``, ``rules``, ``writer``, ``bridge``, ``importer``), composed
into ``Settings``.
"""

from config.settings import Settings, load_settings

__all__ = ["Settings", "load_settings"]

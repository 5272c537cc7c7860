"""patchctl: agentless patch management for mixed Windows and Linux fleets."""

from __future__ import annotations

__version__ = "0.1.0"

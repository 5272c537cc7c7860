"""patchctl's clock: the real time, or a simulated one for rehearsals and tests.

``--now`` / ``PATCHCTL_NOW`` (config key ``now``) takes an ISO 8601 time such as
``2025-03-14T09:00:00Z`` or ``2025-03-14`` (midnight UTC); a time without a zone is UTC.
The simulated time only moves what patchctl *decides* (approvals after N days, bake times,
promotion); the store is never edited to fake it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from patchctl.errors import ConfigError


def parse(value: str, where: str = "--now") -> datetime:
    """An ISO 8601 time as an aware UTC datetime; ConfigError naming ``where`` when malformed."""
    text = value.strip()
    if text.endswith(("z", "Z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{where}: not an ISO 8601 time: {value!r} (e.g. 2025-03-14T09:00:00Z)") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def iso_utc(value: datetime | None) -> str | None:
    """The one timestamp format of patchctl's JSON: ISO 8601 in UTC with a ``Z`` suffix (naive
    datetimes are taken as UTC); ``None`` stays ``None``."""
    if value is None:
        return None
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value.isoformat().replace("+00:00", "Z")


class Clock:
    """The current time: fixed when simulated, else the system's (UTC)."""

    def __init__(self, fixed: datetime | None = None) -> None:
        self.fixed = fixed

    @classmethod
    def from_setting(cls, value: str | None, where: str = "--now") -> Clock:
        return cls(parse(value, where) if value else None)

    def now(self) -> datetime:
        return self.fixed if self.fixed is not None else datetime.now(UTC)

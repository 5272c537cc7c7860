"""One error hierarchy: every failure patchctl reports is a PatchctlError with an exit code."""

from __future__ import annotations

EXIT_OK = 0
EXIT_HOST_FAILURES = 1
EXIT_USAGE = 2
EXIT_POLICY_BLOCKED = 3


class PatchctlError(Exception):
    """An error shown to the user as one line, with the process exit code it maps to."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.message = message
        self.code = code

    def __str__(self) -> str:
        return self.message


class ConfigError(PatchctlError):
    """Bad input: a configuration file, inventory, policy or option (exit 2)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, EXIT_USAGE)


class LabError(PatchctlError):
    """The local lab could not be built, started or stopped."""

    def __init__(self, message: str) -> None:
        super().__init__(message, EXIT_HOST_FAILURES)


class StoreError(PatchctlError):
    """The store could not be opened, migrated or written."""

    def __init__(self, message: str) -> None:
        super().__init__(message, EXIT_USAGE)


class StoreMissing(StoreError):
    """A command that only reads was pointed at a store that does not exist (exit 2).

    For SQLite the file is not there; for PostgreSQL the schema holds no patchctl tables (no
    ``alembic_version``). Nothing is created: a typo in ``--db`` must not read as an empty fleet.
    """

    def __init__(self, url: str) -> None:
        super().__init__(f"no store at {url} (run 'patchctl scan' first, or check --db / PATCHCTL_DB)")
        self.url = url


class StoreOutdated(StoreError):
    """A command that only reads found the store at an older schema revision (exit 2); it does not
    migrate it: ``patchctl scan`` or ``patchctl db upgrade`` does."""

    def __init__(self, url: str, current: str, pending: list[str]) -> None:
        noun, pronoun = ("migration", "it") if len(pending) == 1 else ("migrations", "them")
        super().__init__(
            f"the store at {url} is at schema revision {current}, older than this patchctl: "
            f"{noun} {', '.join(pending)} pending ('patchctl db upgrade' or 'patchctl scan' applies {pronoun})"
        )
        self.url = url
        self.current = current
        self.pending = pending


class PolicyBlocked(PatchctlError):
    """The policy does not allow it now: an early promotion, an unapproved major upgrade (exit 3)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, EXIT_POLICY_BLOCKED)

"""The exception tree of syncd, grouped by what the caller does (STYLE.md, Errors).

Every message names the place, the value seen and the next step, and never a secret. The CLI
turns each into one line and the exit code of ARCHITECTURE section 3.
"""

from __future__ import annotations

from collections.abc import Sequence

EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_USAGE = 2
EXIT_STOPPED = 3


class SyncdError(Exception):
    """The root of every error syncd raises on purpose."""

    exit_code = EXIT_STOPPED

    def lines(self) -> list[str]:
        """What the user reads: one line per problem."""
        return [str(self)]


class OutputClosed(SyncdError):
    """Standard output was closed before the command had written everything (its reader, such
    as `head`, exited): the command stopped there, exit code 3, not 1 (records rejected)."""

    def __init__(self) -> None:
        super().__init__(
            "syncd: stopped: standard output was closed before everything was written (its"
            " reader, such as `head`, exited)."
        )


class ProblemsError(SyncdError):
    """Bad input with every problem found at once: one line each, exit code 2."""

    exit_code = EXIT_USAGE

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))

    def lines(self) -> list[str]:
        return list(self.problems)


class ConfigError(ProblemsError):
    """The config file or the environment is wrong; lists every problem at once."""


class UsageError(SyncdError):
    """A command line that cannot be carried out as typed."""

    exit_code = EXIT_USAGE


class MappingError(ProblemsError):
    """A mapping file is wrong: file, section, key, the value and a suggestion."""


class ConnectorError(SyncdError):
    """A CRM call failed. Carries the system, object, method and a sanitized URL."""

    def __init__(
        self,
        message: str,
        *,
        system: str = "",
        object_name: str = "",
        method: str = "",
        url: str = "",
    ) -> None:
        super().__init__(message)
        self.system = system
        self.object_name = object_name
        self.method = method
        self.url = url


class RetryableError(ConnectorError):
    """429, 5xx or a timeout: worth another try after `retry_after` seconds."""

    def __init__(self, message: str, *, retry_after: float | None = None, **where: str) -> None:
        super().__init__(message, **where)
        self.retry_after = retry_after


class AuthError(ConnectorError):
    """401/403 and the refresh failed: stop this connector."""


class BudgetError(ConnectorError):
    """The API allowance (the CRM's or syncd's own budget) is spent: stop, resume later."""


class RejectedError(ConnectorError):
    """One record refused by the CRM: record it and carry on."""

    exit_code = EXIT_REJECTED


class StoreError(SyncdError):
    """The store's schema or a migration is wrong, or the store is locked: stop."""

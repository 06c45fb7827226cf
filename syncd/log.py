"""Logging: one line per event, `key=value` (or JSON for containers), secrets redacted.

`event(logger, "pull", system="hubspot", rows=2400)` logs
`ts=... level=info event=pull system=hubspot rows=2400`. Every configured secret is replaced
by `***` in every line, at every level, whatever put it there.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Literal

LogFormat = Literal["keyvalue", "json"]


def event(logger: logging.Logger, name: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log one event with its fields."""
    logger.log(level, name, extra={"fields": fields})


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    out: dict[str, Any] = {
        "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
        "level": record.levelname.lower(),
        "logger": record.name,
        "event": record.getMessage(),
    }
    out.update(getattr(record, "fields", {}))
    if record.exc_info:
        out["exc"] = logging.Formatter().formatException(record.exc_info)
    return out


def _quote(value: Any) -> str:
    text = str(value)
    if text == "" or any(c in text for c in ' "=\n\t'):
        return json.dumps(text, ensure_ascii=False)
    return text


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{k}={_quote(v)}" for k, v in _fields(record).items())


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(_fields(record), ensure_ascii=False, default=str)


_SECRETS: set[str] = set()


def register_secret(value: str) -> None:
    """Remember a secret (a configured one, or a token obtained at run time) to redact it."""
    if len(value) >= 4:
        _SECRETS.add(value)


def redact(text: str) -> str:
    """The text with every registered secret replaced by `***`, longest first."""
    for secret in sorted(_SECRETS, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, "***")
    return text


class Redactor(logging.Formatter):
    """Wraps a formatter and blanks every registered secret out of the finished line."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        return redact(self.inner.format(record))


def configure(
    level: str = "info", fmt: LogFormat = "keyvalue", secrets: Iterable[str] = ()
) -> None:
    """Send syncd's log lines to stderr in the chosen format, secrets redacted."""
    for secret in secrets:
        register_secret(secret)
    inner: logging.Formatter = JsonFormatter() if fmt == "json" else KeyValueFormatter()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(Redactor(inner))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # The client libraries log request URLs and bodies at debug; keep them at warning.
    for noisy in ("urllib3", "hubspot", "simple_salesforce", "apscheduler"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))

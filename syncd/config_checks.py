"""What a config value must hold beyond its type, checked when the config is loaded so that a
run fails there (exit 2, one line) and not halfway through: credentials that go into HTTP
headers, path keys and the files they name, and a cron schedule that fires. Also how the config
and the mapping files are read (`read_small_file`, `parse_toml`) and how a value is shown in a
problem line (`escaped`, `quoted`, `cut`). Standard library only: the healthcheck uses it."""

from __future__ import annotations

import json
import re
import ssl
import stat
import string
import tomllib
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

# Characters that would end or garble a one-line problem, or hide in it: C0 and C1 controls,
# line separators and the byte-order mark.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ufeff]")
# Stripped from both ends of a credential, whatever its source: the newline `echo` or an editor
# leaves, and the byte-order mark of a file saved on Windows. A password keeps its spaces.
CREDENTIAL_TRIM = string.whitespace + "\ufeff"
PASSWORD_TRIM = "\r\n\ufeff"
_YEAR = timedelta(days=366)
# A config or mapping file is a few KiB: past this, it is surely the wrong file.
LARGEST_FILE = 1 << 20


class FileRefused(ValueError):
    """A config or mapping file not read (`read_small_file`): a pipe or a device in its place
    (`size` None), which would hang or never end, or a file larger than `LARGEST_FILE`."""

    def __init__(self, size: int | None) -> None:
        super().__init__("not a regular file" if size is None else f"{size:,} bytes")
        self.size = size


class UnparsableToml(ValueError):
    """TOML that tomllib cannot turn into values although it is not a syntax error: nesting past
    Python's recursion limit, or a whole number past its digit limit. The message is the line
    to show after the file's name."""


def read_small_file(path: Path) -> bytes:
    """The bytes of a config or mapping file; `FileRefused` before reading what cannot be one,
    and OSError as opening it raises (a folder, a missing file, permissions)."""
    mode = path.stat().st_mode
    if not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
        raise FileRefused(None)
    with path.open("rb") as opened:
        data = opened.read(LARGEST_FILE + 1)
    if len(data) > LARGEST_FILE:
        raise FileRefused(max(len(data), path.stat().st_size))
    return data


def parse_toml(text: str) -> dict[str, Any]:
    """`tomllib.loads`, raising its TOMLDecodeError for syntax and `UnparsableToml` for the
    rest, where tomllib itself would raise RecursionError or a bare ValueError."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        raise
    except RecursionError:
        raise UnparsableToml(
            "not valid TOML: nested too deeply (lists or tables inside one another); flatten "
            "the value."
        ) from None
    except ValueError:
        raise UnparsableToml("not valid TOML: a number too long to read; shorten it.") from None


def escaped(text: str) -> str:
    """`text` on one line: control characters shown as `\\n`, `\\u0000` and the like."""
    return _CONTROL.sub(lambda found: json.dumps(found.group())[1:-1], text)


def has_control_characters(text: str) -> bool:
    return _CONTROL.search(text) is not None


def cut(text: str, limit: int = 40) -> str:
    """`text`, or its first `limit` characters and an ellipsis: a value shown in a problem."""
    return text if len(text) <= limit else text[:limit] + "…"


def quoted(text: str) -> str:
    return f'"{escaped(text)}"'


def credential_problem(value: str, *, password: bool = False) -> str | None:
    """What makes a credential unusable in an HTTP header or form, without showing it. A
    password goes in a form body, where spaces and any letter may stand: only a control
    character is refused there."""
    if _CONTROL.search(value):
        what = "contains a line break or other control character"
    elif password:
        return None
    elif any(char.isspace() for char in value):
        what = "contains a space"
    elif not value.isascii():
        what = "contains a character that is not ASCII"
    else:
        return None
    rule = "" if password else "; credentials are printable ASCII without spaces"
    return f"{what}{rule}. Check the value where it is set."


def path_problem(section: str, key: str, resolved: Path) -> str | None:
    """What is wrong with a path key's target, caught here so that a run fails before it opens
    the store or a connection (exit 2, nothing written) rather than halfway."""
    if (section, key) == ("store", "path"):
        if resolved.is_dir():
            return f"{resolved} is a folder. Name the store file, e.g. {resolved / 'syncd.db'}."
        parent = next((p for p in resolved.parents if p.exists()), None)
        if parent is not None and not parent.is_dir():
            return f"{parent} is a file, not a folder, so the store cannot be created there."
        return None
    if not resolved.exists():
        return f"{resolved} does not exist."
    if (section, key) == ("sync", "mappings"):
        return None if resolved.is_dir() else (
            f"{resolved} is a file. Name the folder that holds the mapping files."
        )
    if resolved.is_dir():
        return f"{resolved} is a folder. Name the PEM file itself."
    if not resolved.is_file():
        return f"{resolved} is not a regular file. Name the PEM file itself."
    return _private_key_problem(resolved) if key == "private_key_file" else _ca_problem(resolved)


def _ca_problem(path: Path) -> str | None:
    try:
        ssl.create_default_context(cafile=str(path))
    except ssl.SSLError:
        return (
            f"{path} holds no readable PEM certificate (-----BEGIN CERTIFICATE-----). "
            "Name the CA certificate file to trust."
        )
    except OSError as exc:
        return f"{path} cannot be read ({exc.strerror})."
    return None


def _private_key_problem(path: Path) -> str | None:
    """The key must be what the JWT bearer flow signs with (RS256): an unencrypted RSA key."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        data = path.read_bytes()
        data.decode("utf-8")
        key = load_pem_private_key(data, password=None)
    except OSError as exc:
        return f"{path} cannot be read ({exc.strerror})."
    except TypeError:
        return (
            f"{path} is protected by a passphrase. Give the key without one "
            "(openssl pkey -in KEY -out PLAIN_KEY)."
        )
    except (ValueError, UnsupportedAlgorithm):  # UnicodeDecodeError is a ValueError too
        return (
            f"{path} holds no PEM private key (-----BEGIN PRIVATE KEY-----). "
            "Name the connected app's private key file."
        )
    if not isinstance(key, RSAPrivateKey):
        return f"{path} holds a key that is not RSA; the JWT flow signs with RS256. Use an RSA key."
    return None


def cron_problem(value: str, now: datetime) -> str | None:
    """A valid cron that never fires, or not within a year (30 February), would leave the
    daemon idle after its first pass."""
    from syncd.cron import cron_trigger

    shown = quoted(cut(value))
    try:
        trigger = cron_trigger(value)
    except ValueError as exc:
        return f"{shown} is not a cron expression ({escaped(cut(str(exc), 120))})"
    fire: datetime | None = trigger.get_next_fire_time(None, now)
    if fire is not None and fire - now <= _YEAR:
        return None
    when = "never fires" if fire is None else f"does not fire until {fire:%Y-%m-%d}"
    return (
        f"{shown} {when}: no date within a year matches its day and month fields. "
        'Give a schedule such as "*/5 * * * *"'
    )

"""Config TOML + environment -> typed, validated settings (ARCHITECTURE section 4).

Where a value comes from, first match wins: the environment variable
`SYNCD_<SECTION>__<KEY>`, the secrets file `/run/secrets/syncd_<section>_<key>` (folder
overridable with `SYNCD_SECRETS_DIR`), then the config file, where any string may be
`"${ENV_VAR}"`. Every problem is reported at once, each naming the file, section and key.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from syncd.config_checks import (
    CREDENTIAL_TRIM,
    PASSWORD_TRIM,
    FileRefused,
    UnparsableToml,
    credential_problem,
    cron_problem,
    cut,
    escaped,
    parse_toml,
    path_problem,
    quoted,
    read_small_file,
)
from syncd.errors import ConfigError

DEFAULT_CONFIG = "config.toml"
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# Nine digits are more than any sane duration and keep int() far from its digit limit.
_DURATION = re.compile(r"^\s*(\d{1,9})\s*(s|m|h|d)\s*$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# Past a week, a lookback re-reads more history on every pass than `run --once --since` would
# once, and an interval leaves the CRMs unsynced for longer than anyone waits.
_LONGEST = 7 * 86400


def _shown(text: str) -> str:
    """`text` quoted on one line, cut after 40 characters: shown to say which value is wrong,
    not to echo a pasted file back."""
    return quoted(cut(text))


def parse_duration(text: str) -> int:
    """Seconds in a duration such as `"90s"`, `"10m"`, `"2h"` or `"1d"`."""
    found = _DURATION.match(text)
    if not found:
        raise ValueError(f'expected a duration such as "10m", "90s" or "2h", got {_shown(text)}')
    return int(found.group(1)) * _SECONDS[found.group(2)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StoreSettings(_Section):
    path: Path = Path("syncd.db")


class HubSpotSettings(_Section):
    base_url: str = "https://api.hubapi.com"
    access_token: SecretStr | None = None
    ca_bundle: Path | None = None
    requests_per_10s: int = Field(default=100, gt=0, le=1000)
    daily_budget: float = Field(default=0.5, gt=0, le=1)

    @field_validator("base_url")
    @classmethod
    def _https_url(cls, value: str) -> str:
        return _checked_url(value)


class SalesforceSettings(_Section):
    instance_url: str = "https://example.my.salesforce.com"
    api_version: str = "59.0"
    auth: Literal["token", "jwt", "client_credentials", "password"] = "token"
    access_token: SecretStr | None = None
    consumer_key: str | None = None
    username: str | None = None
    private_key_file: Path | None = None
    login_url: str = "https://login.salesforce.com"
    client_id: str | None = None
    client_secret: SecretStr | None = None
    password: SecretStr | None = None
    ca_bundle: Path | None = None
    daily_budget: float = Field(default=0.25, gt=0, le=1)
    bulk_threshold: int = Field(default=10000, ge=0)
    lead_assignment_rules: bool = True

    @field_validator("instance_url", "login_url")
    @classmethod
    def _https_url(cls, value: str) -> str:
        return _checked_url(value)

    @field_validator("api_version")
    @classmethod
    def _version(cls, value: str) -> str:
        if not re.fullmatch(r"\d{2}\.0", value):
            raise ValueError(f'expected a REST API version such as "59.0", got {_shown(value)}')
        return value


class SyncSettings(_Section):
    mappings: Path | None = None
    schedule: str | None = None
    interval: str | None = None
    lookback: str = "10m"

    @field_validator("lookback")
    @classmethod
    def _duration(cls, value: str) -> str:
        if parse_duration(value) > _LONGEST:
            raise ValueError(
                f"must be at most 7d, got {_shown(value)}; to re-read older history once, "
                "run `syncd run --once --since ISO-DATE`"
            )
        return value

    @field_validator("interval")
    @classmethod
    def _period(cls, value: str | None) -> str | None:
        # A zero interval would start the next pass the instant one ends: a busy loop on the
        # CRMs' allowance, never what an admin means.
        if value is not None and parse_duration(value) <= 0:
            raise ValueError(f'expected a period longer than 0s such as "5m", got {_shown(value)}')
        if value is not None and parse_duration(value) > _LONGEST:
            raise ValueError(f"must be at most 7d, got {_shown(value)}")
        return value

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        problem = None if value is None else cron_problem(value, datetime.now(UTC))
        if problem:
            raise ValueError(problem)
        return value

    @property
    def lookback_seconds(self) -> int:
        return parse_duration(self.lookback)


class ServerSettings(_Section):
    port: int = Field(default=9464, ge=0, le=65535)


class Settings(_Section):
    """The whole validated configuration; `source` is the file it was read from."""

    store: StoreSettings = StoreSettings()
    hubspot: HubSpotSettings = HubSpotSettings()
    salesforce: SalesforceSettings = SalesforceSettings()
    sync: SyncSettings = SyncSettings()
    server: ServerSettings = ServerSettings()
    source: Path = Path(DEFAULT_CONFIG)

    def secrets(self) -> list[str]:
        """Every secret value configured, so that logs can redact them."""
        values = [
            self.hubspot.access_token,
            self.salesforce.access_token,
            self.salesforce.client_secret,
            self.salesforce.password,
        ]
        return [v.get_secret_value() for v in values if v is not None and v.get_secret_value()]


_SECTIONS: dict[str, type[_Section]] = {
    "store": StoreSettings,
    "hubspot": HubSpotSettings,
    "salesforce": SalesforceSettings,
    "sync": SyncSettings,
    "server": ServerSettings,
}
_PATH_KEYS = {
    ("store", "path"),
    ("hubspot", "ca_bundle"),
    ("salesforce", "ca_bundle"),
    ("salesforce", "private_key_file"),
    ("sync", "mappings"),
}
_SECRET_KEYS = {"access_token", "client_secret", "password"}
_CREDENTIAL_KEYS = _SECRET_KEYS | {"client_id", "consumer_key", "username"}
_PATH_EXAMPLES = {
    "path": 'a file path such as "syncd.db"',
    "mappings": 'a folder path such as "mappings"',
    "ca_bundle": 'a PEM file path such as "ca.pem"',
    "private_key_file": 'a key file path such as "server.key"',
}
_CREDENTIALS = {
    "token": ("access_token",),
    "jwt": ("consumer_key", "username", "private_key_file"),
    "client_credentials": ("client_id", "client_secret"),
    "password": ("client_id", "client_secret", "username", "password"),
}


def _checked_url(value: str) -> str:
    if not re.match(r"^https://[^\s/]+", value) or re.search(r"\s", value):
        raise ValueError(f"expected an https:// URL, got {_shown(value)}")
    try:
        port = urlsplit(value).port  # raises on a port that is not 0-65535
    except ValueError:
        port = 0  # nothing can be reached on port 0 either
    if port == 0:
        raise ValueError(
            f"expected an https:// URL with a port from 1 to 65535, got {_shown(value)}"
        )
    return value.rstrip("/")


def config_path(option: str | None) -> Path:
    """The config file to read: `--config`, else `SYNCD_CONFIG`, else `./config.toml`."""
    if option is not None and not option.strip():
        # An empty --config (an unset shell variable) must not quietly mean ./config.toml.
        raise ConfigError(["--config: empty path. Pass the file, e.g. --config config.toml."])
    return Path(option or os.environ.get("SYNCD_CONFIG") or DEFAULT_CONFIG)


def load_settings(
    path: Path,
    *,
    environ: Mapping[str, str] | None = None,
    require_credentials: bool = True,
) -> Settings:
    """Read, resolve and validate the config file; raise ConfigError listing every problem."""
    env = os.environ if environ is None else environ
    file = escaped(str(path))  # the config file as every problem line names it
    raw = _read_toml(path, file)
    problems: list[str] = []
    unset: dict[tuple[str, str], str] = {}
    sections = _structure(raw, file, env, problems, unset)
    origins = _apply_overrides(sections, env, problems)
    for section, key in origins:
        unset.pop((section, key), None)
    problems.extend(unset.values())
    reported = set(unset)
    _trim_credentials(sections, file, problems, origins)
    _resolve_paths(sections, path.parent, file, problems, origins, reported)
    settings = _validate(sections, path, file, problems, origins)
    if settings is not None and require_credentials:
        problems.extend(_missing_credentials(settings, env, file, reported))
    if problems or settings is None:
        raise ConfigError(problems)
    return settings


def _read_toml(path: Path, file: str) -> dict[str, Any]:
    try:
        # utf-8-sig: editors on Windows may start the file with a byte-order mark.
        text = read_small_file(path).decode("utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(
            [f"{file}: file not found. Copy config.example.toml there, or pass --config PATH."]
        ) from None
    except FileRefused as exc:
        raise ConfigError([
            f"{file} is not a regular file; pass the config file itself." if exc.size is None
            else f"{file}: larger than 1 MiB, so not a config file; pass the config file itself."
        ]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{file}: cannot be read ({escaped(str(exc))})."]) from None
    try:
        return parse_toml(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{file}: not valid TOML: {exc}. Fix the syntax there."]) from None
    except UnparsableToml as exc:
        raise ConfigError([f"{file}: {exc}"]) from None


def _structure(
    raw: dict[str, Any],
    file: str,
    env: Mapping[str, str],
    problems: list[str],
    unset: dict[tuple[str, str], str],
) -> dict[str, dict[str, Any]]:
    """Sections as dicts, `${VAR}` resolved; unset variables go to `unset` by key, since an
    override may still supply that key."""
    sections: dict[str, dict[str, Any]] = {name: {} for name in _SECTIONS}
    for name, body in raw.items():
        if name not in _SECTIONS:
            problems.append(
                f"{file}: unknown section [{escaped(name)}].{_suggest(name, _SECTIONS)}"
            )
        elif not isinstance(body, dict):
            problems.append(f"{file}: [{name}] must be a table (a [{name}] header), got a value.")
        else:
            for key, value in body.items():
                mistyped = _literal_type_problem(_SECTIONS[name], key, value)
                if mistyped:
                    problems.append(f"{file} [{name}] {key}: {mistyped}")
                    continue
                sections[name][key] = _interpolate(value, (name, key), file, env, unset)
    return sections


_KINDS: dict[Any, tuple[tuple[type, ...], str]] = {
    bool: ((bool,), "true or false"),
    int: ((int,), "a whole number"),
    float: ((int, float), "a number"),
}


def _literal_type_problem(model: type[_Section], key: str, value: Any) -> str | None:
    """A number or boolean key written as text or as the wrong kind in the file.

    TOML is typed, so `port = "9464"` or `port = true` is a mistake the file can show; pydantic's
    lax mode would quietly turn them into 9464 and 1. Environment overrides and `${VAR}` values
    are text by nature and stay lax."""
    field = model.model_fields.get(key)
    if field is None or field.annotation not in _KINDS:
        return None
    kinds, word = _KINDS[field.annotation]
    if isinstance(value, str) and _ENV_REF.search(value):
        return None
    if isinstance(value, kinds) and (field.annotation is bool or not isinstance(value, bool)):
        return None
    if isinstance(value, str):
        unquoted = _parses_as(value, field.annotation)
        hint = " Write it without quotes." if unquoted else ""
        return f"expected {word}, got the text {_shown(value)}.{hint}"
    if isinstance(value, (dict, list)):
        return f"expected {word}, got a {'table' if isinstance(value, dict) else 'list'}."
    shown = str(value).lower() if isinstance(value, bool) else cut(str(value))
    return f"expected {word}, got {shown}."


def _parses_as(text: str, kind: Any) -> bool:
    try:
        parsed = parse_toml(f"v = {text.strip()}")["v"]
    except ValueError:  # TOMLDecodeError and UnparsableToml are ValueErrors
        return False
    kinds = _KINDS[kind][0]
    return isinstance(parsed, kinds) and (kind is bool or not isinstance(parsed, bool))


def _interpolate(
    value: Any,
    where: tuple[str, str],
    file: str,
    env: Mapping[str, str],
    unset: dict[tuple[str, str], str],
) -> Any:
    if not isinstance(value, str):
        return value

    def replace(found: re.Match[str]) -> str:
        name = found.group(1)
        if name not in env:
            unset[where] = (
                f"{file} [{where[0]}] {where[1]}: environment variable {name} is not set. "
                f"Set it, or set SYNCD_{where[0].upper()}__{where[1].upper()}."
            )
            return ""
        return env[name]

    return _ENV_REF.sub(replace, value)


def _apply_overrides(
    sections: dict[str, dict[str, Any]], env: Mapping[str, str], problems: list[str]
) -> dict[tuple[str, str], str]:
    """Secrets files, then `SYNCD_<SECTION>__<KEY>` variables, over the file: the keys set, each
    with where its value came from, so that a bad value is reported there and not in a file
    that never held it."""
    applied: dict[tuple[str, str], str] = {}
    for (section, key), secret in _secret_files(env, problems).items():
        try:
            text = secret.read_text(encoding="utf-8-sig")
            # A password keeps its spaces, as it does from any source (`_trim_credentials`).
            sections[section][key] = text.strip(PASSWORD_TRIM if key == "password" else None)
        except (OSError, UnicodeDecodeError) as exc:
            # The error names the file and the reason, never the bytes it holds.
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            problems.append(f"secrets file {escaped(str(secret))}: cannot be read ({reason}).")
        applied[section, key] = f"secrets file {escaped(str(secret))}"
    for name, value in env.items():
        if not name.startswith("SYNCD_") or "__" not in name:
            continue
        section, _, key = name[len("SYNCD_") :].lower().partition("__")
        if section in _SECTIONS and key in _SECTIONS[section].model_fields:
            sections[section][key] = value
            applied[section, key] = f"environment {escaped(name)}"
        elif not section or not key:
            problems.append(
                f"environment {escaped(name)}: not a config key. Name it SYNCD_<SECTION>__<KEY>, "
                "e.g. SYNCD_SERVER__PORT."
            )
        else:
            problems.append(
                f"environment {escaped(name)}: no key [{escaped(section)}] {escaped(key)} in the "
                f"config.{_suggest(key, _SECTIONS.get(section, Settings).model_fields)}"
            )
    return applied


def _secret_files(env: Mapping[str, str], problems: list[str]) -> dict[tuple[str, str], Path]:
    """The secrets files present, by key. An absent folder holds none (the default
    /run/secrets mostly is); one that cannot be entered is said once, not as a crash."""
    folder = Path(env.get("SYNCD_SECRETS_DIR", "/run/secrets"))
    found: dict[tuple[str, str], Path] = {}
    try:
        for section, model in _SECTIONS.items():
            for key in model.model_fields:
                secret = folder / f"syncd_{section}_{key}"
                if secret.is_file():
                    found[section, key] = secret
    except OSError as exc:
        problems.append(
            f"secrets folder {escaped(str(folder))} cannot be read ({exc.strerror}); let the "
            "user syncd runs as read it, or set SYNCD_SECRETS_DIR."
        )
    return found


def _place(file: str, section: str, key: str, origins: Mapping[tuple[str, str], str]) -> str:
    """Where a key's value was written: the override that set it, else the file's section."""
    return origins.get((section, key)) or f"{file} [{section}] {key}"


def _trim_credentials(
    sections: dict[str, dict[str, Any]],
    file: str,
    problems: list[str],
    origins: Mapping[tuple[str, str], str],
) -> None:
    """Credentials without surrounding whitespace, whatever their source (a secrets file was
    always trimmed; a variable set from a file keeps its newline); what is left must fit an
    HTTP header. The line names the key and never the value."""
    for section, body in sections.items():
        for key in _CREDENTIAL_KEYS & set(body):
            if isinstance(body[key], str):
                password = key == "password"
                body[key] = body[key].strip(PASSWORD_TRIM if password else CREDENTIAL_TRIM)
                problem = credential_problem(body[key], password=password)
                if problem:
                    problems.append(f"{_place(file, section, key, origins)}: {problem}")


def _resolve_paths(
    sections: dict[str, dict[str, Any]],
    folder: Path,
    file: str,
    problems: list[str],
    origins: Mapping[tuple[str, str], str],
    reported: set[tuple[str, str]],
) -> None:
    """Path keys as absolute Paths. A key found wrong here is dropped, so that pydantic does
    not report it again; so is a `reported` one (an unset variable), whose remains
    ("${NOPE}/maps" read as "/maps") would only earn a second line for the same mistake."""
    for section, key in _PATH_KEYS:
        if (section, key) in reported:
            sections[section].pop(key, None)
            continue
        value = sections[section].get(key)
        problem = _path_value_problem(key, value)
        if problem:
            sections[section].pop(key)
            problems.append(f"{_place(file, section, key, origins)}: {problem}")
            continue
        if not isinstance(value, str):
            continue
        if not value:
            sections[section][key] = None
            continue
        try:
            written = Path(value).expanduser()  # "~/syncd.db" means the home folder's
        except RuntimeError:  # "~nobody-here/x", or no home folder to be found
            sections[section].pop(key)
            problems.append(f"{_place(file, section, key, origins)}: {_shown(value)} starts "
                            "with a ~ that names no home folder. Give the full path.")
            continue
        resolved = written if written.is_absolute() else folder / written
        sections[section][key] = resolved
        problem = path_problem(section, key, resolved)
        if problem:
            problems.append(f"{_place(file, section, key, origins)}: {problem}")


def _path_value_problem(key: str, value: Any) -> str | None:
    """A path key that is not a usable path as written: not text, empty where a file is needed,
    or holding a character no file name should (a NUL would crash the open)."""
    if value is None:
        return None
    if not isinstance(value, str):
        kind = {dict: "a table", list: "a list", bool: str(value).lower()}.get(type(value))
        return f"expected {_PATH_EXAMPLES[key]}, got {kind or cut(str(value))}."
    if not value and key == "path":
        return f"empty. Give {_PATH_EXAMPLES[key]}, or leave it out for the default."
    if escaped(value) != value:
        return f"{_shown(value)} contains a control character. Remove it from the path."
    return None


def _validate(
    sections: dict[str, dict[str, Any]],
    path: Path,
    file: str,
    problems: list[str],
    origins: Mapping[tuple[str, str], str],
) -> Settings | None:
    built: dict[str, Any] = {}
    for name, model in _SECTIONS.items():
        try:
            built[name] = model.model_validate(sections[name])
        except ValidationError as exc:
            problems.extend(_describe(exc, name, model, file, origins))
    if len(built) < len(_SECTIONS):
        return None
    sync = built["sync"]
    if sync.schedule and sync.interval:
        problems.append(f"{file} [sync]: give schedule (cron) or interval, not both.")
        return None
    return Settings(source=path, **built)


def _describe(
    exc: ValidationError,
    section: str,
    model: type[_Section],
    file: str,
    origins: Mapping[tuple[str, str], str],
) -> list[str]:
    lines = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"]) or "?"
        if error["type"] == "extra_forbidden":
            hint = _suggest(key, model.model_fields)
            lines.append(f"{file} [{section}] {escaped(key)}: unknown key.{hint}")
            continue
        message = _plain(error["type"], error.get("ctx") or {}) or str(error["msg"])
        message = message.removeprefix("Value error, ")
        seen = error.get("input")
        secret = isinstance(seen, (dict, list, SecretStr)) or key in _SECRET_KEYS
        echoed = seen is None or secret or _shown(str(seen)) in message
        written = _shown(seen) if isinstance(seen, str) else escaped(cut(str(seen)))
        shown = "" if echoed else f" (got {written})"
        place = _place(file, section, str(error["loc"][0]) if error["loc"] else key, origins)
        lines.append(f"{place}: {message}{shown}.")
    return lines


def _plain(kind: str, ctx: Mapping[str, Any]) -> str | None:
    """pydantic's commonest complaints in an admin's words; None keeps pydantic's own."""
    bounds = {
        "less_than_equal": ("must be at most", "le"),
        "less_than": ("must be less than", "lt"),
        "greater_than": ("must be more than", "gt"),
        "greater_than_equal": ("must be at least", "ge"),
    }
    if kind in bounds and bounds[kind][1] in ctx:
        words, name = bounds[kind]
        return f"{words} {ctx[name]}"
    return {
        "string_type": "expected text in quotes",
        "int_parsing": "expected a whole number",
        "int_from_float": "expected a whole number",
        "float_parsing": "expected a number",
        "bool_parsing": "expected true or false",
        "literal_error": f"expected one of {ctx.get('expected', '')}",
    }.get(kind)


def _missing_credentials(
    settings: Settings, env: Mapping[str, str], file: str, reported: set[tuple[str, str]]
) -> list[str]:
    secrets_dir = escaped(env.get("SYNCD_SECRETS_DIR", "/run/secrets"))
    wanted = [("hubspot", "access_token")]
    wanted += [("salesforce", key) for key in _CREDENTIALS[settings.salesforce.auth]]
    problems = []
    for section, key in wanted:
        value = getattr(getattr(settings, section), key)
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if not value and (section, key) not in reported:
            problems.append(
                f"Missing {section}.{key}. Looked in: env SYNCD_{section.upper()}__{key.upper()}, "
                f"{secrets_dir}/syncd_{section}_{key}, {file} [{section}]."
            )
    return problems


def _suggest(word: str, choices: Mapping[str, Any] | dict[str, Any]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f' Did you mean "{close[0]}"?' if close else ""

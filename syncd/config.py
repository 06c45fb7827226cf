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
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from syncd.errors import ConfigError

DEFAULT_CONFIG = "config.toml"
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d)\s*$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> int:
    """Seconds in a duration such as `"90s"`, `"10m"`, `"2h"` or `"1d"`."""
    found = _DURATION.match(text)
    if not found:
        raise ValueError(f'expected a duration such as "10m", "90s" or "2h", got "{text}"')
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
            raise ValueError(f'expected a REST API version such as "59.0", got "{value}"')
        return value


class SyncSettings(_Section):
    mappings: Path | None = None
    schedule: str | None = None
    interval: str | None = None
    lookback: str = "10m"

    @field_validator("lookback")
    @classmethod
    def _duration(cls, value: str) -> str:
        parse_duration(value)
        return value

    @field_validator("interval")
    @classmethod
    def _period(cls, value: str | None) -> str | None:
        # A zero interval would start the next pass the instant one ends: a busy loop on the
        # CRMs' allowance, never what an admin means.
        if value is not None and parse_duration(value) <= 0:
            raise ValueError(f'expected a period longer than 0s such as "5m", got "{value}"')
        return value

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None:
            from apscheduler.triggers.cron import CronTrigger

            try:
                CronTrigger.from_crontab(value, timezone="UTC")
            except ValueError as exc:
                raise ValueError(f'"{value}" is not a cron expression ({exc})') from None
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
_CREDENTIALS = {
    "token": ("access_token",),
    "jwt": ("consumer_key", "username", "private_key_file"),
    "client_credentials": ("client_id", "client_secret"),
    "password": ("client_id", "client_secret", "username", "password"),
}


def _checked_url(value: str) -> str:
    if not re.match(r"^https://[^\s/]+", value) or re.search(r"\s", value):
        raise ValueError(f'expected an https:// URL, got "{value}"')
    try:
        urlsplit(value).port  # noqa: B018 - raises on a port that is not 0-65535
    except ValueError:
        raise ValueError(
            f'expected an https:// URL with a port from 1 to 65535, got "{value}"'
        ) from None
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
    raw = _read_toml(path)
    problems: list[str] = []
    unset: dict[tuple[str, str], str] = {}
    sections = _structure(raw, path, env, problems, unset)
    origins = _apply_overrides(sections, env, problems)
    for section, key in origins:
        unset.pop((section, key), None)
    problems.extend(unset.values())
    reported = set(unset)
    _resolve_paths(sections, path.parent, path, problems, origins)
    settings = _validate(sections, path, problems, origins)
    if settings is not None and require_credentials:
        problems.extend(_missing_credentials(settings, env, path, reported))
    if problems or settings is None:
        raise ConfigError(problems)
    return settings


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            [f"{path}: file not found. Copy config.example.toml there, or pass --config PATH."]
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: cannot be read ({exc})."]) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML: {exc}. Fix the syntax there."]) from None


def _structure(
    raw: dict[str, Any],
    path: Path,
    env: Mapping[str, str],
    problems: list[str],
    unset: dict[tuple[str, str], str],
) -> dict[str, dict[str, Any]]:
    """Sections as dicts, `${VAR}` resolved; unset variables go to `unset` by key, since an
    override may still supply that key."""
    sections: dict[str, dict[str, Any]] = {name: {} for name in _SECTIONS}
    for name, body in raw.items():
        if name not in _SECTIONS:
            problems.append(f"{path}: unknown section [{name}].{_suggest(name, _SECTIONS)}")
        elif not isinstance(body, dict):
            problems.append(f"{path}: [{name}] must be a table (a [{name}] header), got a value.")
        else:
            for key, value in body.items():
                mistyped = _literal_type_problem(_SECTIONS[name], key, value)
                if mistyped:
                    problems.append(f"{path} [{name}] {key}: {mistyped}")
                    continue
                sections[name][key] = _interpolate(value, (name, key), path, env, unset)
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
        return f'expected {word}, got the text "{value}".{hint}'
    if isinstance(value, (dict, list)):
        return f"expected {word}, got a {'table' if isinstance(value, dict) else 'list'}."
    shown = str(value).lower() if isinstance(value, bool) else str(value)
    return f"expected {word}, got {shown}."


def _parses_as(text: str, kind: Any) -> bool:
    try:
        parsed = tomllib.loads(f"v = {text.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        return False
    kinds = _KINDS[kind][0]
    return isinstance(parsed, kinds) and (kind is bool or not isinstance(parsed, bool))


def _interpolate(
    value: Any,
    where: tuple[str, str],
    path: Path,
    env: Mapping[str, str],
    unset: dict[tuple[str, str], str],
) -> Any:
    if not isinstance(value, str):
        return value

    def replace(found: re.Match[str]) -> str:
        name = found.group(1)
        if name not in env:
            unset[where] = (
                f"{path} [{where[0]}] {where[1]}: environment variable {name} is not set. "
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
    secrets_dir = Path(env.get("SYNCD_SECRETS_DIR", "/run/secrets"))
    for section, model in _SECTIONS.items():
        for key in model.model_fields:
            secret = secrets_dir / f"syncd_{section}_{key}"
            if secret.is_file():
                try:
                    sections[section][key] = secret.read_text(encoding="utf-8").strip()
                except (OSError, UnicodeDecodeError) as exc:
                    # The error names the file and the reason, never the bytes it holds.
                    reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
                    problems.append(f"secrets file {secret}: cannot be read ({reason}).")
                applied[section, key] = f"secrets file {secret}"
    for name, value in env.items():
        if not name.startswith("SYNCD_") or "__" not in name:
            continue
        section, _, key = name[len("SYNCD_") :].lower().partition("__")
        if section in _SECTIONS and key in _SECTIONS[section].model_fields:
            sections[section][key] = value
            applied[section, key] = f"environment {name}"
        else:
            problems.append(
                f"environment {name}: no key [{section}] {key} in the config."
                f"{_suggest(key, _SECTIONS.get(section, Settings).model_fields)}"
            )
    return applied


def _place(path: Path, section: str, key: str, origins: Mapping[tuple[str, str], str]) -> str:
    """Where a key's value was written: the override that set it, else the file's section."""
    return origins.get((section, key)) or f"{path} [{section}] {key}"


def _resolve_paths(
    sections: dict[str, dict[str, Any]],
    folder: Path,
    path: Path,
    problems: list[str],
    origins: Mapping[tuple[str, str], str],
) -> None:
    for section, key in _PATH_KEYS:
        value = sections[section].get(key)
        if not isinstance(value, str):
            continue
        if not value:
            sections[section][key] = None
            continue
        resolved = Path(value) if Path(value).is_absolute() else folder / value
        sections[section][key] = resolved
        problem = _path_problem(section, key, resolved)
        if problem:
            problems.append(f"{_place(path, section, key, origins)}: {problem}")


def _path_problem(section: str, key: str, resolved: Path) -> str | None:
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
    if (section, key) == ("sync", "mappings") and not resolved.is_dir():
        return f"{resolved} is a file. Name the folder that holds the mapping files."
    if (section, key) != ("sync", "mappings") and resolved.is_dir():
        return f"{resolved} is a folder. Name the PEM file itself."
    return None


def _validate(
    sections: dict[str, dict[str, Any]],
    path: Path,
    problems: list[str],
    origins: Mapping[tuple[str, str], str],
) -> Settings | None:
    built: dict[str, Any] = {}
    for name, model in _SECTIONS.items():
        try:
            built[name] = model.model_validate(sections[name])
        except ValidationError as exc:
            problems.extend(_describe(exc, name, model, path, origins))
    if len(built) < len(_SECTIONS):
        return None
    sync = built["sync"]
    if sync.schedule and sync.interval:
        problems.append(f"{path} [sync]: give schedule (cron) or interval, not both.")
        return None
    return Settings(source=path, **built)


def _describe(
    exc: ValidationError,
    section: str,
    model: type[_Section],
    path: Path,
    origins: Mapping[tuple[str, str], str],
) -> list[str]:
    lines = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"]) or "?"
        if error["type"] == "extra_forbidden":
            hint = _suggest(key, model.model_fields)
            lines.append(f"{path} [{section}] {key}: unknown key.{hint}")
            continue
        message = _plain(error["type"], error.get("ctx") or {}) or str(error["msg"])
        message = message.removeprefix("Value error, ")
        seen = error.get("input")
        secret = isinstance(seen, (dict, list, SecretStr)) or key in _SECRET_KEYS
        echoed = seen is None or secret or f'"{seen}"' in message
        quoted = f'"{seen}"' if isinstance(seen, str) else str(seen)
        shown = "" if echoed else f" (got {quoted})"
        place = _place(path, section, str(error["loc"][0]) if error["loc"] else key, origins)
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
    settings: Settings, env: Mapping[str, str], path: Path, reported: set[tuple[str, str]]
) -> list[str]:
    secrets_dir = env.get("SYNCD_SECRETS_DIR", "/run/secrets")
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
                f"{secrets_dir}/syncd_{section}_{key}, {path} [{section}]."
            )
    return problems


def _suggest(word: str, choices: Mapping[str, Any] | dict[str, Any]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f' Did you mean "{close[0]}"?' if close else ""

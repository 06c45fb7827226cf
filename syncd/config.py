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
    api_version: str = Field(default="59.0", pattern=r"^\d{2}\.0$")
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


class SyncSettings(_Section):
    mappings: Path | None = None
    schedule: str | None = None
    interval: str | None = None
    lookback: str = "10m"

    @field_validator("lookback", "interval")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
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
_MUST_EXIST = _PATH_KEYS - {("store", "path")}
_CREDENTIALS = {
    "token": ("access_token",),
    "jwt": ("consumer_key", "username", "private_key_file"),
    "client_credentials": ("client_id", "client_secret"),
    "password": ("client_id", "client_secret", "username", "password"),
}


def _checked_url(value: str) -> str:
    if not re.match(r"^https://[^\s/]+", value):
        raise ValueError(f'expected an https:// URL, got "{value}"')
    return value.rstrip("/")


def config_path(option: str | None) -> Path:
    """The config file to read: `--config`, else `SYNCD_CONFIG`, else `./config.toml`."""
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
    for section, key in _apply_overrides(sections, env, path, problems):
        unset.pop((section, key), None)
    problems.extend(unset.values())
    reported = set(unset)
    _resolve_paths(sections, path.parent, path, problems)
    settings = _validate(sections, path, problems)
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
                sections[name][key] = _interpolate(value, (name, key), path, env, unset)
    return sections


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
    sections: dict[str, dict[str, Any]], env: Mapping[str, str], path: Path, problems: list[str]
) -> list[tuple[str, str]]:
    """Secrets files, then `SYNCD_<SECTION>__<KEY>` variables, over the file; the keys set."""
    applied = []
    secrets_dir = Path(env.get("SYNCD_SECRETS_DIR", "/run/secrets"))
    for section, model in _SECTIONS.items():
        for key in model.model_fields:
            secret = secrets_dir / f"syncd_{section}_{key}"
            if secret.is_file():
                sections[section][key] = secret.read_text(encoding="utf-8").strip()
                applied.append((section, key))
    for name, value in env.items():
        if not name.startswith("SYNCD_") or "__" not in name:
            continue
        section, _, key = name[len("SYNCD_") :].lower().partition("__")
        if section in _SECTIONS and key in _SECTIONS[section].model_fields:
            sections[section][key] = value
            applied.append((section, key))
        else:
            problems.append(
                f"environment {name}: no key [{section}] {key} in the config."
                f"{_suggest(key, _SECTIONS.get(section, Settings).model_fields)}"
            )
    return applied


def _resolve_paths(
    sections: dict[str, dict[str, Any]], folder: Path, path: Path, problems: list[str]
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
        if (section, key) in _MUST_EXIST and not resolved.exists():
            problems.append(f"{path} [{section}] {key}: {resolved} does not exist.")


def _validate(
    sections: dict[str, dict[str, Any]], path: Path, problems: list[str]
) -> Settings | None:
    built: dict[str, Any] = {}
    for name, model in _SECTIONS.items():
        try:
            built[name] = model.model_validate(sections[name])
        except ValidationError as exc:
            problems.extend(_describe(exc, name, model, path))
    if len(built) < len(_SECTIONS):
        return None
    sync = built["sync"]
    if sync.schedule and sync.interval:
        problems.append(f"{path} [sync]: give schedule (cron) or interval, not both.")
        return None
    return Settings(source=path, **built)


def _describe(exc: ValidationError, section: str, model: type[_Section], path: Path) -> list[str]:
    lines = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"]) or "?"
        if error["type"] == "extra_forbidden":
            hint = _suggest(key, model.model_fields)
            lines.append(f"{path} [{section}] {key}: unknown key.{hint}")
            continue
        message = str(error["msg"]).removeprefix("Value error, ")
        seen = error.get("input")
        secret = isinstance(seen, (dict, list, SecretStr)) or key in _SECRET_KEYS
        echoed = seen is None or secret or f'"{seen}"' in message
        shown = "" if echoed else f' (got "{seen}")'

        lines.append(f"{path} [{section}] {key}: {message}{shown}.")
    return lines


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

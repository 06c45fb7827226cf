"""What the commands share: the options every command takes, the settings and the store they
open, the ISO instant `--since` parses, and the whole-or-nothing write of a file they output."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from syncd.config import Settings, config_path, load_settings
from syncd.errors import UsageError
from syncd.log import configure
from syncd.model import utc
from syncd.store import Store

F = TypeVar("F", bound=Callable[..., Any])


def common_options(command: F) -> F:
    """`--config`, `--log-level` and `--log-format`, which every command takes."""
    command = click.option(
        "--config",
        "config_file",
        metavar="PATH",
        help="Config file (default ./config.toml, or env SYNCD_CONFIG).",
    )(command)
    command = click.option(
        "--log-level",
        type=click.Choice(["debug", "info", "warning", "error"]),
        default="info",
        show_default=True,
        help="Least severe log lines to print (to stderr).",
    )(command)
    command = click.option(
        "--log-format",
        type=click.Choice(["keyvalue", "json"]),
        default="keyvalue",
        show_default=True,
        help="key=value lines for people, json for containers.",
    )(command)
    return command


def settings_for(options: Mapping[str, Any], *, require_credentials: bool = True) -> Settings:
    """Load the config named by the command's options, then log with its secrets redacted."""
    configure(options["log_level"], options["log_format"])
    settings = load_settings(
        config_path(options["config_file"]), require_credentials=require_credentials
    )
    configure(options["log_level"], options["log_format"], settings.secrets())
    return settings


@contextmanager
def existing_store(settings: Settings) -> Iterator[Store]:
    if not settings.store.path.exists():
        raise UsageError(f"No store at {settings.store.path} yet: run `syncd run --once` first.")
    store = Store(settings.store.path)
    try:
        yield store
    finally:
        store.close()


class IsoInstant(click.ParamType):  # type: ignore[type-arg]
    """An ISO 8601 date or date-time; naive values are UTC."""

    name = "ISO"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, datetime):
            return value
        try:
            return utc(datetime.fromisoformat(str(value).replace("Z", "+00:00")))
        except (ValueError, OverflowError):  # OverflowError: an offset past year 1 or 9999
            self.fail(
                f'"{value}" is not an ISO date or date-time such as 2026-01-31 or '
                f"2026-01-31T08:00:00Z",
                param,
                ctx,
            )


STANDARD_OUTPUT = ("-", "/dev/stdout")


def to_file(out: Path | None) -> Path | None:
    """`--out` as the file to write, or None for standard output (`-` or `/dev/stdout`: the
    descriptor the shell gave, so that `>> log.csv` appends rather than being replaced)."""
    return None if out is None or str(out) in STANDARD_OUTPUT else out


def names_a_file(path: Path) -> bool:
    """Whether a path given for a file ends in a file name (`""` reads as `.`)."""
    return path.name not in ("", ".", "..")


def write_atomically(path: Path, text: str) -> None:
    """Written whole or not at all: a reader never opens half a file.

    A symlink is written where it points, not replaced by a file; a device or a pipe (a FIFO)
    is written to as it is, since it cannot be replaced. A file replaced keeps its permissions
    (a CSV of refused records locked to its owner stays so); one in a folder syncd may not
    write, but which it may, is written in place. A path that cannot be written is a
    `UsageError` naming it (exit 2), with nothing left behind."""
    if not names_a_file(path):
        raise UsageError(f'"{path}": give a file name to write, such as report.html.')
    try:
        target = path.resolve() if path.is_symlink() else path
    except (OSError, RuntimeError) as exc:  # a symlink loop
        raise UsageError(f"{path}: cannot be written ({exc}).") from None
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        if target.exists() and not target.is_file() and not target.is_dir():
            with target.open("w", encoding="utf-8") as stream:
                stream.write(text)
            return
        folder = next((f for f in target.parents if f.exists()), None)
        if folder is not None and not folder.is_dir():
            raise UsageError(f"{path}: cannot be written: {folder} is a file, not a folder.")
        target.parent.mkdir(parents=True, exist_ok=True)
        mode = stat.S_IMODE(target.stat().st_mode) if target.is_file() else None
        try:
            partial.write_text(text, encoding="utf-8")
        except PermissionError:
            if mode is None or not os.access(target, os.W_OK):
                raise
            target.write_text(text, encoding="utf-8")  # the folder is closed to us, the file not
            return
        if mode is not None:
            partial.chmod(mode)
        partial.replace(target)
    except OSError as exc:
        with suppress(OSError):
            partial.unlink(missing_ok=True)
        raise UsageError(
            f"{path}: cannot be written ({exc.strerror or exc}). Choose a file in a folder you "
            f"can write to."
        ) from None

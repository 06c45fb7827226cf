"""`syncd sandbox`: both CRM emulators seeded with a synthetic org, found through the sandbox
entry point, and a config that points syncd at them; `syncd demo` starts them the same way."""

from __future__ import annotations

import errno
import shutil
import signal
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from syncd import registry
from syncd.cli_options import common_options, names_a_file, write_atomically
from syncd.console import wide_console
from syncd.errors import EXIT_OK, UsageError
from syncd.log import configure


@click.command()
@click.option(
    "--scale",
    type=click.IntRange(100, 1_000_000),
    default=1000,
    show_default=True,
    help="People in the synthetic org.",
)
@click.option(
    "--seed", type=int, default=7, show_default=True, help="Same seed, same org, record for record."
)
@click.option(
    "--config-out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("sandbox.toml"),
    show_default=True,
    help="Where to write a syncd config that points at the emulators.",
)
@click.option(
    "--hubspot-limits",
    type=click.Choice(["enterprise", "unlimited"]),
    default="enterprise",
    show_default=True,
    help="HubSpot rate limits: an Enterprise portal's (190/10 s, 5 searches/s) or none.",
)
@click.option(
    "--hubspot-port",
    type=click.IntRange(0, 65535),
    default=0,
    help="Port for the HubSpot emulator (default: any free port).",
)
@click.option(
    "--salesforce-port",
    type=click.IntRange(0, 65535),
    default=0,
    help="Port for the Salesforce emulator (default: any free port).",
)
@common_options
def sandbox(
    scale: int,
    seed: int,
    config_out: Path,
    hubspot_limits: str,
    hubspot_port: int,
    salesforce_port: int,
    **options: Any,
) -> int:
    """Start both emulators seeded with a synthetic org, write a config pointing at them, and
    serve until interrupted (Ctrl-C or SIGTERM)."""
    configure(options["log_level"], options["log_format"])
    if not names_a_file(config_out):
        raise UsageError('syncd sandbox: --config-out needs a file name, such as "sandbox.toml".')
    box, info = start_sandbox(
        scale=scale,
        seed=seed,
        directory=config_out.parent / f"{config_out.stem}-ca",
        hubspot_limits=hubspot_limits,
        port_hubspot=hubspot_port,
        port_salesforce=salesforce_port,
    )
    try:
        write_atomically(config_out, box.config_text(info))
        click.echo(f"HubSpot emulator:    {info.hubspot_url}")
        click.echo(f"Salesforce emulator: {info.salesforce_url}")
        click.echo(f"CA certificate:      {info.ca_path}")
        click.echo(f"Config written to:   {config_out}  (syncd --config {config_out} ...)")
        print_counts(info.counts)
        click.echo("Serving until interrupted (Ctrl-C).")
        _wait_for_signal()
    finally:
        box.stop()
    return EXIT_OK


def start_sandbox(**arguments: Any) -> tuple[Any, Any]:
    """The sandbox found through its entry point, started: `(sandbox, info)`. A port or a folder
    it cannot use is a `UsageError` (one line, exit 2), and its CA folder, if it made it, goes."""
    factory = registry.load(registry.SANDBOXES, "default")
    directory = arguments.get("directory")
    made_here = directory is not None and not Path(directory).exists()
    try:
        box = factory(**arguments)
    except OSError as exc:
        raise UsageError(_cannot_start(exc, arguments)) from None
    try:
        return box, box.start()
    except BaseException as exc:
        box.stop()
        if made_here and directory is not None:
            shutil.rmtree(directory, ignore_errors=True)
        if isinstance(exc, OSError):
            raise UsageError(_cannot_start(exc, arguments)) from None
        raise


def _cannot_start(exc: OSError, arguments: Mapping[str, Any]) -> str:
    why = exc.strerror or str(exc)
    ports = list(dict.fromkeys(
        str(arguments[k]) for k in ("port_hubspot", "port_salesforce") if arguments.get(k)))
    if exc.errno in (errno.EADDRINUSE, errno.EACCES) and ports and exc.filename is None:
        return (f"The emulators cannot listen on port {' or '.join(ports)} ({why}). Choose "
                f"free ports of 1024 or more with --hubspot-port and --salesforce-port, or "
                f"leave them out for any free port.")
    where = f" {exc.filename}" if exc.filename else ""
    return (f"The emulators cannot start:{where} {why}. Choose a folder you can write to for "
            f"their files.")


def print_counts(counts: Mapping[str, int]) -> None:
    table = Table(title="Seeded org", show_header=True)
    table.add_column("what")
    table.add_column("records", justify="right")
    for name, count in counts.items():
        table.add_row(name, f"{count:,}")
    wide_console().print(table)


def _wait_for_signal() -> None:
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass

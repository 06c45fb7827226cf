"""The command line (ARCHITECTURE section 3): parses, wires the objects of a command, and turns
every error into one readable line and its exit code. Tracebacks go to the debug log only.

The options and helpers every command shares live in `syncd.cli_options`; the `sandbox` command
and the emulators it starts (which `demo` starts too) live in `syncd.cli_sandbox`."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from syncd import registry
from syncd.cli_options import (
    IsoInstant,
    common_options,
    existing_store,
    settings_for,
    to_file,
    write_atomically,
)
from syncd.cli_sandbox import print_counts, sandbox, start_sandbox
from syncd.config import Settings, load_settings
from syncd.connector import Connector
from syncd.console import (
    LogProgress,
    OutputConsole,
    TerminalProgress,
    errors_csv,
    print_errors,
    print_plan,
    print_run,
    print_status,
    wide_console,
)
from syncd.daemon import serve
from syncd.definitions import load_definitions
from syncd.errors import (
    EXIT_OK,
    EXIT_STOPPED,
    EXIT_USAGE,
    OutputClosed,
    SyncdError,
    UsageError,
)
from syncd.lock import StoreLock
from syncd.log import configure, redact
from syncd.mapping import Mappings
from syncd.mapping_online import check_lifecycle_online, check_online, missing_custom_fields
from syncd.model import FieldInfo
from syncd.pipeline import RunOptions, run_once
from syncd.report import report_command
from syncd.stages import LifecycleSettings
from syncd.store import Store

log = logging.getLogger("syncd")


@contextlib.contextmanager
def _closed_pipe_stops() -> Iterator[None]:
    """A write to a closed pipe (`syncd status | head -2`) as `OutputClosed`. click would exit
    with code 1 there, with nothing said, and 1 means records were rejected."""
    try:
        yield
    except OSError as exc:
        if exc.errno == errno.EPIPE:
            raise OutputClosed from None
        raise


class _Commands(click.Group):
    """syncd's group: its help and version (`make_context`) and every command (`invoke`)
    stop with `OutputClosed` when their reader goes away."""

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        with _closed_pipe_stops():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx: click.Context) -> Any:
        with _closed_pipe_stops():
            return super().invoke(ctx)


@click.group(
    cls=_Commands,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(package_name="syncd")
def cli() -> None:
    """syncd keeps HubSpot and Salesforce on one dataset: it pulls both, reconciles them in a
    shared SQLite store, and writes back unified lifecycle stages and closed-loop attribution."""


cli.add_command(sandbox)


@cli.command()
@click.option(
    "--online", is_flag=True, help="Also compare the mappings with the live schemas of both CRMs."
)
@click.option(
    "--fix", is_flag=True, help="With --online: create the missing HubSpot syncd_* properties."
)
@common_options
def check(online: bool, fix: bool, **options: Any) -> int:
    """Validate the config and the mapping files (every problem at once; exit 2 if any);
    --online also against HubSpot's properties and Salesforce's describe."""
    if fix and not online:
        raise UsageError("syncd check: --fix needs --online.")
    # The credentials a pass needs, as `run` asks for them: a config `check` passes must run.
    settings = settings_for(options)
    definitions = load_definitions(settings.sync.mappings)
    mappings = definitions.mappings
    folder = settings.sync.mappings or "the installed defaults"
    click.echo(f"{settings.source}: OK. Mappings ({folder}): OK.")
    if not online:
        return EXIT_OK
    return _check_online(settings, mappings, definitions.lifecycle, fix)


def _check_online(
    settings: Settings, mappings: Mappings, lifecycle: LifecycleSettings, fix: bool
) -> int:
    connectors = _connectors(settings, mappings)
    try:
        schemas = {
            "hubspot": {
                m.hubspot_object: connectors["hubspot"].describe(m.hubspot_object)
                for m in mappings.all()
            },
            "salesforce": {
                obj: connectors["salesforce"].describe(obj)
                for obj in {o for m in mappings.all() for o in m.salesforce_objects} | {"Campaign"}
            },
        }
        missing = missing_custom_fields(mappings, schemas["hubspot"], schemas["salesforce"])
        if fix:
            for custom in [c for c in missing if c.system == "hubspot"]:
                connectors["hubspot"].create_field(
                    custom.object,
                    FieldInfo(custom.name, custom.type, label=custom.label, unique=custom.unique),
                    custom.purpose,
                )
                click.echo(f"Created HubSpot property {custom.object}.{custom.name}.")
                schemas["hubspot"][custom.object] = connectors["hubspot"].describe(custom.object)
        problems = check_online(mappings, schemas["hubspot"], schemas["salesforce"])
        problems += check_lifecycle_online(lifecycle, schemas["hubspot"], schemas["salesforce"])
    finally:
        for connector in connectors.values():
            connector.close()
    for line in problems:
        click.echo(line, err=True)
    if problems:
        if any(c.system == "hubspot" for c in missing) and not fix:
            click.echo(
                "Run `syncd check --online --fix` to create the missing HubSpot properties.",
                err=True,
            )
        return EXIT_USAGE
    click.echo("Online: the mappings match both CRMs' schemas.")
    return EXIT_OK


@cli.command()
@common_options
def plan(**options: Any) -> int:
    """What a pass would write to each system, field by field (old -> new, rule): a pass
    with --dry-run, then the plan it left."""
    code = _pass(options, since=None, full=False, dry_run=True)
    settings = settings_for(options)
    store = Store(settings.store.path)
    try:
        print_plan(wide_console(), store, load_definitions(settings.sync.mappings).mappings)
    finally:
        store.close()
    return code


@cli.command()
@click.argument("action", type=click.Choice(["list", "retry", "export"]), default="list")
@click.option(
    "--id", "ids", type=int, multiple=True, help="retry: only this error (repeatable); default all."
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="export: CSV file to write (default: standard output).",
)
@common_options
def errors(action: str, ids: tuple[int, ...], out: Path | None, **options: Any) -> int:
    """Records a CRM refused, with its reason. `list` (the default) shows them; `retry`
    queues them again once the cause is fixed and runs a pass; `export` writes them as CSV."""
    if ids and action != "retry":
        raise UsageError(f"syncd errors {action}: --id goes with retry.")
    if out is not None and action != "export":
        raise UsageError(f"syncd errors {action}: --out goes with export.")
    out = to_file(out)
    settings = settings_for(options, require_credentials=action == "retry")
    with existing_store(settings) as store:
        if action == "list":
            print_errors(wide_console(), store.outbox.rows("error"))
            return EXIT_OK
        if action == "export":
            text = errors_csv(store.outbox.rows("error"))
            if out is None:
                click.echo(text, nl=False)
            else:
                write_atomically(out, text)
                click.echo(f"Wrote {out}.")
            return EXIT_OK
        refused = {row.id for row in store.outbox.rows("error")}
        unknown = [str(i) for i in dict.fromkeys(ids) if i not in refused]
        if unknown:
            raise UsageError(
                f"syncd errors retry: no refused record with id {', '.join(unknown)}; "
                "`syncd errors list` shows their ids."
            )
        with store.transaction():
            count = store.outbox.retry(list(ids) if ids else None)
    click.echo(f"{count} refused record(s) queued again; running a pass.")
    return _pass(options, since=None, full=False, dry_run=False)


@cli.command("run")
@click.option("--once", is_flag=True, help="Run one pass, then exit (a backfill, a cron job).")
@click.option(
    "--since",
    type=IsoInstant(),
    help="Re-read everything modified since this instant (ISO 8601, UTC if no offset).",
)
@click.option("--full", is_flag=True, help="Re-read all history, as the first pass does.")
@click.option("--dry-run", is_flag=True, help="Read into the store; write nothing to either CRM.")
@common_options
def run_command(
    once: bool, since: datetime | None, full: bool, dry_run: bool, **options: Any
) -> int:
    """Run a pass: pull both CRMs from their cursors, reconcile, and write back what changed."""
    if not once:
        if since is not None or full or dry_run:
            raise UsageError("syncd run: --since, --full and --dry-run go with --once.")
        settings = settings_for(options)
        definitions = load_definitions(settings.sync.mappings)
        return serve(
            settings,
            connectors_factory=lambda: _connectors(settings, definitions.mappings),
            definitions=definitions,
        )
    if since is not None and full:
        raise UsageError("syncd run: give --since or --full, not both.")
    return _pass(options, since=since, full=full, dry_run=dry_run)


def _pass(options: Mapping[str, Any], *, since: datetime | None, full: bool, dry_run: bool) -> int:
    """One pass as `run --once` makes it; prints its table; its exit code."""
    settings = settings_for(options)
    definitions = load_definitions(settings.sync.mappings)
    mappings = definitions.mappings
    console = OutputConsole(stderr=True)
    progress = TerminalProgress(console) if console.is_terminal else LogProgress()
    # Released in reverse, whatever fails: a store or connector that cannot open must not
    # leave the lock held (an in-process caller, such as the daemon, would refuse itself).
    with contextlib.ExitStack() as held:
        lock = StoreLock(settings.store.path, command="syncd run --once").acquire()
        held.callback(lock.release)
        store = Store(settings.store.path)
        held.callback(store.close)
        connectors = _connectors(settings, mappings)
        for connector in connectors.values():
            held.callback(connector.close)
        with progress:
            report = run_once(
                store,
                connectors,
                clock=lambda: datetime.now(UTC),
                lookback=timedelta(seconds=settings.sync.lookback_seconds),
                budgets={
                    "hubspot": settings.hubspot.daily_budget,
                    "salesforce": settings.salesforce.daily_budget,
                },
                definitions=definitions,
                options=RunOptions(
                    kind="dry-run" if dry_run else "once", since=since, full=full, dry_run=dry_run
                ),
                progress=progress,
            )
    print_run(wide_console(), report)
    if report.error:
        click.echo(redact(report.error), err=True)
    return report.exit_code


@cli.command()
@click.argument("name", type=click.Choice(["funnel", "handoff", "attribution"]))
@click.option("--model", help="attribution: show this model only (default: all side by side).")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "html"]), default="table",
              show_default=True, help="A terminal table, CSV, or a self-contained HTML page.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the report to this file instead of printing it.")
@common_options
def report(name: str, model: str | None, fmt: str, out: Path | None, **options: Any) -> int:
    """Reports from the unified dataset: `funnel` (people per stage, conversion, days between
    stages, by month and source), `handoff` (MQLs handed to sales, time to first touch, SLA
    breaches) and `attribution` (pipeline and revenue per campaign, per model)."""
    out = to_file(out)
    settings = settings_for(options, require_credentials=False)
    definitions = load_definitions(settings.sync.mappings)
    with existing_store(settings) as store:
        text = report_command(store, name, model=model, fmt=fmt, out=out,
                              lifecycle=definitions.lifecycle, now=datetime.now(UTC))
    click.echo(f"Wrote {text}." if out is not None else text, nl=out is not None
               or not text.endswith("\n"))
    return EXIT_OK


@cli.command()
@common_options
def status(**options: Any) -> int:
    """Show the last passes, the cursors, row counts and API usage against the budget."""
    with existing_store(settings_for(options, require_credentials=False)) as store:
        print_status(wide_console(), store)
    return EXIT_OK


def _connectors(settings: Settings, mappings: Mappings) -> dict[str, Connector]:
    """Both connectors, found by name through their entry points, asked to read the fields the
    mapping files name on top of their own."""
    fields: dict[str, dict[str, list[str]]] = {"hubspot": {}, "salesforce": {}}
    for mapping in mappings.all():
        fields["hubspot"].setdefault(mapping.hubspot_object, []).extend(
            mapping.hubspot_properties()
        )
        for sobject in mapping.salesforce_objects:
            fields["salesforce"].setdefault(sobject, []).extend(mapping.salesforce_fields(sobject))
    return {
        name: registry.load(registry.CONNECTORS, name)(settings, fields=fields[name])
        for name in ("hubspot", "salesforce")
    }


@cli.command()
@click.option(
    "--scale",
    type=click.IntRange(100, 100_000),
    default=2000,
    show_default=True,
    help="People in the synthetic org.",
)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("demo-out"), show_default=True,
              help="Where the demo's config, store and HTML reports go (replaced each time).")
@common_options
def demo(scale: int, seed: int, out_dir: Path, **options: Any) -> int:
    """What a newcomer runs first: starts both emulators with a synthetic org, runs one pass
    of syncd against them, and shows the status, the funnel and the attribution summary,
    writing the HTML reports to files it names."""
    configure(options["log_level"], options["log_format"])
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for old in out_dir.glob("syncd.db*"):
            old.unlink()
    except OSError as exc:
        raise UsageError(
            f"syncd demo: --out-dir {out_dir} cannot be used ({exc.strerror or exc}). Choose a "
            f"folder you can write to."
        ) from None
    click.echo(f"Starting the HubSpot and Salesforce emulators with {scale:,} synthetic "
               f"people (seed {seed})...")
    box, info = start_sandbox(scale=scale, seed=seed, directory=out_dir / "ca",
                               hubspot_limits="enterprise")
    try:
        click.echo(f"HubSpot emulator at {info.hubspot_url}, Salesforce at {info.salesforce_url}")
        print_counts(info.counts)
        config = out_dir / "demo.toml"
        write_atomically(config, box.config_text(info, store_path="syncd.db"))
        click.echo(f"\nRunning one pass of syncd (config {config})...")
        code = _pass({**options, "config_file": str(config)}, since=None, full=False,
                     dry_run=False)
        _demo_reports(config, out_dir)
    finally:
        box.stop()
    return code


def _demo_reports(config: Path, out_dir: Path) -> None:
    settings = load_settings(config)
    lifecycle = load_definitions(settings.sync.mappings).lifecycle
    now = datetime.now(UTC)
    console = wide_console()
    with existing_store(settings) as store:
        print_status(console, store)
        for name, model in (("funnel", None), ("attribution", "w_shaped")):
            console.print(report_command(store, name, model=model, fmt="table", out=None,
                                         lifecycle=lifecycle, now=now), markup=False)
        pages = [report_command(store, name, model=None, fmt="html",
                                out=out_dir / f"{name}.html", lifecycle=lifecycle, now=now)
                 for name in ("funnel", "handoff", "attribution")]
    click.echo("HTML reports (open them in a browser, no network needed):")
    for page in pages:
        click.echo(f"  {page}")
    click.echo(f"Explore further: syncd status|plan|errors|report ... --config {config}")


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point: run the command, print errors as lines, exit with the code."""
    sys.exit(run(argv))


def run(argv: Sequence[str] | None = None) -> int:
    try:
        result = cli.main(
            args=list(argv) if argv is not None else None, standalone_mode=False, prog_name="syncd"
        )
    except click.exceptions.Abort:
        click.echo("syncd: interrupted.", err=True)
        return EXIT_STOPPED
    except click.ClickException as exc:
        where = (
            exc.ctx.command_path
            if isinstance(exc, click.UsageError) and exc.ctx
            else _command_path(argv if argv is not None else sys.argv[1:])
        )
        click.echo(f"{where}: {_usage_line(exc)} See `{where} --help`.", err=True)
        return EXIT_USAGE
    except OutputClosed as exc:
        _settle_stdout()
        with contextlib.suppress(OSError):  # the same pipe may hold stderr too
            click.echo(str(exc), err=True)
        return exc.exit_code
    except SyncdError as exc:
        log.debug("command failed", exc_info=True)
        for line in exc.lines():
            click.echo(redact(line), err=True)
        return exc.exit_code
    except Exception as exc:
        log.debug("unexpected error", exc_info=True)
        click.echo(
            redact(
                f"syncd: unexpected error ({type(exc).__name__}: {exc}); "
                f"run again with --log-level debug for the traceback."
            ),
            err=True,
        )
        return EXIT_STOPPED
    return result if isinstance(result, int) else EXIT_OK


def _settle_stdout() -> None:
    """After a closed pipe: what is still buffered for stdout goes nowhere, or Python's last
    flush at exit would fail on the pipe again and print a warning after the line."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _usage_line(exc: click.ClickException) -> str:
    """Click's message as one sentence: a bare `syncd` names the commands instead of pasting the
    whole help text into the error line."""
    if isinstance(exc, click.exceptions.NoArgsIsHelpError) and exc.ctx is not None:
        names = ", ".join(sorted(cli.list_commands(exc.ctx)))
        return f"give a command: {names}."
    message = " ".join(exc.format_message().split())
    return message if message.rstrip(")").endswith((".", "?", "!")) else message + "."


def _command_path(argv: Sequence[str]) -> str:
    """`syncd run` for an error click raises without a context (an option missing its value):
    the line still names the command typed."""
    named = next((arg for arg in argv if not arg.startswith("-")), None)
    return f"syncd {named}" if named in cli.commands else "syncd"

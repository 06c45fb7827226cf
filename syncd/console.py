"""What the CLI shows people: progress of a pass and the status tables.

On a terminal a pass shows a progress bar per stream (rich); elsewhere (containers, CI, pipes)
it logs a progress line at most every `every` seconds per stream, so logs stay readable.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from syncd.errors import OutputClosed
from syncd.log import event
from syncd.mapping import Mappings
from syncd.model import Page
from syncd.pipeline import RunReport, StreamReport
from syncd.store import Store
from syncd.store.outbox import OutboxRow

log = logging.getLogger("syncd.progress")


class TerminalProgress:
    """A rich progress bar per stream, removed when the stream is done."""

    def __init__(self, console: Console) -> None:
        self._bars = Progress(
            TextColumn("{task.description:<32}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self._tasks: dict[tuple[str, str], Any] = {}

    def __enter__(self) -> TerminalProgress:
        self._bars.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._bars.stop()

    def page(self, system: str, stream: str, page: Page, rows_so_far: int) -> None:
        key = (system, stream)
        if key not in self._tasks:
            self._tasks[key] = self._bars.add_task(f"{system} {stream}", total=page.total)
        task = self._tasks[key]
        total = max(page.total or 0, rows_so_far) or None
        self._bars.update(task, completed=rows_so_far, total=total)

    def stream_done(self, report: StreamReport) -> None:
        task = self._tasks.pop((report.system, report.stream), None)
        if task is not None:
            self._bars.remove_task(task)


class LogProgress:
    """A `progress` log line per stream at most every `every` seconds."""

    def __init__(self, every: float = 10.0, timer: Callable[[], float] = time.monotonic) -> None:
        self.every = every
        self._timer = timer
        self._last: dict[tuple[str, str], float] = {}

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *_: object) -> None:
        pass

    def page(self, system: str, stream: str, page: Page, rows_so_far: int) -> None:
        key = (system, stream)
        now = self._timer()
        if now - self._last.setdefault(key, now) >= self.every:
            self._last[key] = now
            event(log, "progress", system=system, stream=stream, rows=rows_so_far,
                  total=page.total if page.total is not None else "?", watermark=page.watermark)

    def stream_done(self, report: StreamReport) -> None:
        self._last.pop((report.system, report.stream), None)


def print_run(console: Console, report: RunReport) -> None:
    table = Table(title=f"Pass {report.run}: {report.status}")
    for column in ("system", "stream", "pages", "rows read", "rows changed", "calls", "took"):
        table.add_column(column, justify="left" if column in ("system", "stream") else "right")
    for s in report.streams:
        table.add_row(s.system, s.stream, f"{s.pages:,}", f"{s.rows:,}", f"{s.changed:,}",
                      f"{s.calls:,}", f"{s.took:.1f}s")
    console.print(table)


def print_status(console: Console, store: Store) -> None:
    """Last passes, cursors, source and unified counts, the outbox, and API usage."""
    passes = []
    for run in store.runs(10):
        summary = json.loads(run["summary"] or "{}")
        passes.append({
            "id": run["id"], "started": (run["started_at"] or "")[:19], "kind": run["kind"],
            "status": run["status"], "exit": run["exit_code"], "rows": summary.get("rows"),
            "written": summary.get("pushed"), "rejected": summary.get("rejected"),
            "calls": sum(v for k, v in summary.items() if k.startswith("calls_")),
            "error": run["error"] or ""})
    console.print(_table("Last passes", passes, {
        "id": "pass", "started": "started (UTC)", "kind": "kind", "status": "status",
        "exit": "exit", "rows": "rows read", "written": "written", "rejected": "rejected",
        "calls": "API calls", "error": "error"}))
    console.print(_table("Cursors", store.cursors(), {
        "system": "system", "stream": "stream", "watermark": "watermark", "saved_at": "saved"}))
    console.print(_table("Source records", store.source_counts(), {
        "system": "system", "object": "object", "rows": "rows", "deleted": "deleted",
        "merged": "merged", "newest": "newest change"}))
    unified = [{"kind": kind, "count": count} for kind, count in store.unified.counts().items()]
    unified += [{"kind": f"outbox {status}", "count": count}
                for status, count in sorted(store.outbox.counts().items())]
    console.print(_table("Unified dataset and outbox", unified, {"kind": "what",
                                                                 "count": "count"}))
    console.print(_table("API usage (latest pass)", store.latest_usage(), {
        "system": "system", "calls": "calls", "retries": "retries", "throttled": "429s",
        "limit_total": "daily limit", "remaining": "remaining", "recorded_at": "at"}))


def _table(title: str, rows: Iterable[Mapping[str, Any]], columns: Mapping[str, str]) -> Table:
    table = Table(title=title)
    for header in columns.values():
        table.add_column(header)
    empty = True
    for row in rows:
        empty = False
        table.add_row(*(_cell(row.get(key)) for key in columns))
    if empty:
        table.add_row(*(["(none)"] + [""] * (len(columns) - 1)))
    return table


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, str) and value.startswith("{"):
        try:
            parsed = json.loads(value)
        except ValueError:
            return value
        if isinstance(parsed, dict):
            return " ".join(f"{k}={v}" for k, v in parsed.items())
    return str(value)


def print_plan(console: Console, store: Store, mappings: Mappings) -> None:
    """Every pending write, field by field: the record, the field, old -> new and the rule."""
    rules = {(m.hubspot_object, f.hubspot): f"{m.entity}.{f.name}: {f.rule}"
             for m in mappings.all() for f in m.fields.values() if f.hubspot}
    rules |= {(obj, name): f"{m.entity}.{f.name}: {f.rule}"
              for m in mappings.all() for f in m.fields.values()
              for obj, name in f.salesforce.items()}
    rows = store.outbox.rows("pending")
    current = store.records((r.system, r.object, r.record_id) for r in rows if r.record_id)
    table = Table(title=f"Plan: {len(rows):,} record(s) to write")
    for column in ("system", "record", "field", "old", "new", "rule"):
        table.add_column(column)
    for row in rows:
        target = (f"{row.object} {row.record_id}" if row.record_id
                  else f"{row.object} (create, {row.key_field}={row.key})")
        record = current.get((row.system, row.object, row.record_id or ""))
        for name, value in row.fields.items():
            old = record["data"].get(name) if record else None
            table.add_row(row.system, target, name, _cell(old), _cell(value),
                          rules.get((row.object, name), "syncd"))
        for to_object, to_id, _ in row.associations:
            table.add_row(row.system, target, f"association -> {to_object}", "", str(to_id),
                          "opportunity roles and account")
    console.print(table)


def print_errors(console: Console, rows: Sequence[OutboxRow]) -> None:
    table = Table(title=f"{len(rows):,} record(s) refused")
    for column in ("id", "system", "record", "code", "reason", "tries"):
        table.add_column(column)
    for row in rows:
        target = row.record_id or f"{row.key_field}={row.key}"
        table.add_row(str(row.id), row.system, f"{row.object} {target}", row.error_code or "",
                      row.message or "", str(row.attempts))
    console.print(table)
    if rows:
        console.print("Fix the cause in the CRM (or the mapping), then `syncd errors retry`.")


def errors_csv(rows: Sequence[OutboxRow]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", "system", "object", "record_id", "key_field", "key", "entity",
                     "error_code", "message", "attempts", "fields"])
    for row in rows:
        writer.writerow([row.id, row.system, row.object, row.record_id or "", row.key_field or "",
                         row.key or "", row.entity_id, row.error_code or "", row.message or "",
                         row.attempts, json.dumps(row.fields, ensure_ascii=False, default=str)])
    return out.getvalue()


class OutputConsole(Console):
    """rich's console, with a closed pipe an `OutputClosed` (exit code 3, one line), where rich
    exits with code 1, which syncd's exit codes keep for records rejected."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise OutputClosed


def wide_console() -> Console:
    """The console for tables: the terminal's width, or 120 columns when piped (rich's 80
    would squeeze the tables)."""
    probe = OutputConsole()
    return probe if probe.is_terminal else OutputConsole(width=120)

"""The daemon's HTTP face on `[server] port`: `/healthz`, `/metrics` and `/`, the status page.

A stdlib `ThreadingHTTPServer` (no framework): each request runs in its own thread and reads
the store through its own SQLite connection, so a slow page never holds up a pass (WAL lets
readers run beside the one writer). The page is read-only, self-contained (inline CSS and
SVG, no external assets: it must render in a locked-down network) and refreshes every 30 s.
Every value that came from a CRM or an error message is HTML-escaped: record values and error
texts can hold markup.

Binds 0.0.0.0 by default, as a container needs; `SYNCD_SERVER_HOST` narrows it (127.0.0.1 on
a laptop, in tests). `[server] port` stays the only config key; port 0 picks a free port,
which the `server` log line names.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST

from syncd.log import event, redact
from syncd.metrics import Health, Metrics, Verdict
from syncd.store import Store, parse_iso

log = logging.getLogger("syncd.server")

DEFAULT_HOST = "0.0.0.0"  # a container's port must be reachable from outside it
HOST_VARIABLE = "SYNCD_SERVER_HOST"
RECENT_PASSES = 20
ERROR_HISTORY = 500


@dataclass(frozen=True)
class StatusSources:
    """What the three endpoints read: the store file, the daemon's in-memory state, the
    configured budgets (shares of each CRM's daily limit) and the clock."""

    store_path: Path
    health: Health
    metrics: Metrics
    budgets: Mapping[str, float]
    clock: Callable[[], datetime]


class StatusServer:
    """`start()` binds and serves in a background thread; `stop()` closes the socket."""

    def __init__(self, sources: StatusSources, *, port: int, host: str | None = None) -> None:
        self.sources = sources
        self.host = host if host is not None else os.environ.get(HOST_VARIABLE, DEFAULT_HOST)
        self._httpd = ThreadingHTTPServer((self.host, port), _handler_for(sources))
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        shown = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{shown}:{self.port}"

    def start(self) -> StatusServer:
        # A short poll keeps stop() quick; the idle loop costs nothing measurable.
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.1,),
                                        name="syncd-http", daemon=True)
        self._thread.start()
        event(log, "server", host=self.host, port=self.port,
              endpoints="/healthz,/metrics,/")
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()


def _handler_for(sources: StatusSources) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "syncd"

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            try:
                code, content_type, body = answer(sources, path)
            except Exception:
                log.debug("status request failed", exc_info=True)
                code, content_type, body = 500, "text/plain; charset=utf-8", b"internal error\n"
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            # Probes hit /healthz every few seconds: keep them out of the info log.
            log.debug("http " + format, *args)

    return Handler


def answer(sources: StatusSources, path: str) -> tuple[int, str, bytes]:
    """(HTTP status, content type, body) for a GET of `path`."""
    if path == "/healthz":
        verdict = sources.health.verdict(sources.clock())
        return verdict.code, "application/json", (json.dumps(verdict.as_json()) + "\n").encode()
    if path == "/metrics":
        return 200, CONTENT_TYPE_LATEST, sources.metrics.text()
    if path in ("/", "/index.html"):
        return 200, "text/html; charset=utf-8", render_page(sources).encode("utf-8")
    return 404, "text/plain; charset=utf-8", b"not found: try /, /healthz or /metrics\n"


# ------------------------------------------------------------------------------------------
# The status page


def render_page(sources: StatusSources) -> str:
    now = sources.clock()
    verdict = sources.health.verdict(now)
    store = Store(sources.store_path)
    try:
        runs = store.runs(ERROR_HISTORY)
        body = "".join([
            _headline(verdict, now),
            _passes_html(runs[:RECENT_PASSES]),
            _errors_html(runs),
            charts_html(store),
            _rows_html(store.source_counts()),
            _usage_html(store, sources.budgets, now),
            _cursors_html(store.cursors()),
        ])
    finally:
        store.close()
    return _PAGE.format(style=_STYLE, body=body)


def _headline(verdict: Verdict, now: datetime) -> str:
    last = verdict.last
    last_text = (f"last pass {last.run} {last.status} at {last.finished_at.isoformat()}"
                 if last else "no pass has finished since the daemon started")
    return (f'<header class="{escape(verdict.state)}"><h1>syncd</h1>'
            f"<p><b>{escape(verdict.state)}</b> ({verdict.code}): {_text(verdict.reason)}</p>"
            f"<p>{escape(last_text)} &middot; page rendered {escape(now.isoformat())}</p>"
            "</header>")


def _passes_html(runs: Sequence[dict[str, Any]]) -> str:
    rows = []
    for run in runs:
        summary = _json(run.get("summary"))
        calls = sum(v for k, v in summary.items()
                    if k.startswith("calls_") and isinstance(v, (int, float)))
        rows.append([run["id"], run["kind"], run["started_at"], _took(run), run["status"],
                     summary.get("rows", ""), summary.get("changed", ""), calls,
                     summary.get("pushed", ""), summary.get("rejected", ""),
                     run.get("error") or ""])
    return _table("Recent passes", ["run", "kind", "started", "took", "status", "rows read",
                                    "rows changed", "API calls", "records written", "rejected",
                                    "error"], rows,
                  empty="No pass has run yet.")


def _errors_html(runs: Sequence[dict[str, Any]]) -> str:
    """Errors grouped by category: the text with its numbers masked, so that "budget spent
    (1,204 calls)" and "(1,310 calls)" count as one, shown by its latest wording."""
    counts: Counter[str] = Counter()
    latest: dict[str, dict[str, Any]] = {}
    for run in runs:  # newest first
        error = run.get("error")
        if not error:
            continue
        category = re.sub(r"\d[\d,.:TZ-]*", "#", error)
        counts[category] += 1
        latest.setdefault(category, run)
    rows = [[count, latest[category]["id"], latest[category]["started_at"],
             latest[category]["error"]] for category, count in counts.most_common()]
    return _table(f"Errors by category (last {len(runs)} passes)",
                  ["passes", "latest run", "latest at", "error"], rows,
                  empty="No pass has ended with an error.")


def _rows_html(counts: Sequence[dict[str, Any]]) -> str:
    rows = [[c["system"], c["object"], c["rows"], c["deleted"] or 0, c["merged"] or 0,
             c["newest"]] for c in counts]
    return _table("Rows per object", ["system", "object", "rows", "deleted", "merged",
                                      "newest change"], rows, empty="The store is empty.")


def _usage_html(store: Store, budgets: Mapping[str, float], now: datetime) -> str:
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    rows = []
    for usage in store.latest_usage():
        system = str(usage["system"])
        limit = usage.get("limit_total")
        share = budgets.get(system)
        allowed = int(share * limit) if share is not None and limit else None
        rows.append([system, usage["run"], usage["calls"], usage["retries"], usage["throttled"],
                     store.calls_since(system, midnight),
                     "" if allowed is None else f"{allowed:,} ({share:g} of {limit:,})",
                     "" if usage.get("remaining") is None else f"{usage['remaining']:,}"])
    return _table("API usage and budgets", ["system", "last run", "calls", "retries", "429s",
                                            "calls today (UTC)", "syncd's daily budget",
                                            "CRM daily calls remaining"], rows,
                  empty="No API usage recorded yet.")


def _cursors_html(cursors: Sequence[dict[str, Any]]) -> str:
    rows = [[c["system"], c["stream"], c.get("watermark") or "", c["saved_at"], c["run"]]
            for c in cursors]
    return _table("Cursors and watermarks", ["system", "stream", "watermark (newest change read)",
                                             "saved", "by run"], rows,
                  empty="No cursor yet: the first pass reads everything.")


def charts_html(store: Store) -> str:
    """The page's charts, from the store: rows per object, API calls per recent pass. The
    funnel and attribution charts join here when the reports exist."""
    counts = store.source_counts()
    rows = [(f"{c['system']} {c['object']}", [(str(c["system"]), float(c["rows"]))])
            for c in counts]
    passes = []
    for run in reversed(store.runs(RECENT_PASSES)):
        summary = _json(run.get("summary"))
        calls = {key.removeprefix("calls_"): value for key, value in summary.items()
                 if key.startswith("calls_") and isinstance(value, (int, float))}
        if calls:
            passes.append((f"run {run['id']}", [(s, float(n)) for s, n in sorted(calls.items())]))
    return ('<section class="charts"><h2>Charts</h2>'
            + bar_chart_svg("Rows per object", rows)
            + bar_chart_svg("API calls per pass", passes) + "</section>")


_PALETTE = {"hubspot": "#ff7a59", "salesforce": "#00a1e0"}
_OTHER_COLOURS = ("#6b8e23", "#8a2be2", "#b8860b", "#2f4f4f")


def bar_chart_svg(title: str, bars: Sequence[tuple[str, Sequence[tuple[str, float]]]]) -> str:
    """A horizontal bar chart as inline SVG; each bar is stacked by series (the system)."""
    if not bars:
        return f"<figure><figcaption>{escape(title)}</figcaption><p>No data yet.</p></figure>"
    height, label_width, width = 18, 220, 420
    top = max(sum(v for _, v in parts) for _, parts in bars) or 1.0
    series = sorted({name for _, parts in bars for name, _ in parts})
    shapes = []
    for index, (label, parts) in enumerate(bars):
        y = index * (height + 4)
        shapes.append(f'<text x="{label_width - 6}" y="{y + 13}" text-anchor="end">'
                      f"{escape(label)}</text>")
        x = float(label_width)
        for name, value in parts:
            span = width * value / top
            shapes.append(f'<rect x="{x:.1f}" y="{y}" width="{span:.1f}" height="{height}" '
                          f'fill="{_colour(name, series)}"><title>{escape(label)}: '
                          f"{escape(name)} {value:,.0f}</title></rect>")
            x += span
        total = sum(v for _, v in parts)
        shapes.append(f'<text x="{x + 4:.1f}" y="{y + 13}">{total:,.0f}</text>')
    legend = " ".join(f'<span class="key" style="background:{_colour(n, series)}"></span>'
                      f"{escape(n)}" for n in series)
    total_height = len(bars) * (height + 4)
    return (f"<figure><figcaption>{escape(title)} &middot; {legend}</figcaption>"
            f'<svg role="img" aria-label="{escape(title)}" width="{label_width + width + 80}" '
            f'height="{total_height}" xmlns="http://www.w3.org/2000/svg">{"".join(shapes)}'
            "</svg></figure>")


def _colour(name: str, series: Sequence[str]) -> str:
    return _PALETTE.get(name) or _OTHER_COLOURS[series.index(name) % len(_OTHER_COLOURS)]


def _table(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]], *,
           empty: str) -> str:
    if not rows:
        return f"<section><h2>{escape(title)}</h2><p>{escape(empty)}</p></section>"
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_text(cell)}</td>" for cell in row) + "</tr>"
                   for row in rows)
    return (f"<section><h2>{escape(title)}</h2><table><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table></section>")


def _text(value: Any) -> str:
    """A cell's text: secrets redacted (errors may quote a request), then HTML-escaped."""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return escape(redact(str(value)))


def _took(run: Mapping[str, Any]) -> str:
    if not run.get("finished_at"):
        return "running"
    seconds = (parse_iso(run["finished_at"]) - parse_iso(run["started_at"])).total_seconds()
    return f"{seconds:.1f}s"


def _json(text: Any) -> dict[str, Any]:
    try:
        found = json.loads(text) if isinstance(text, str) else text
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:0 2em 2em;color:#222}
header{padding:.5em 1em;margin:0 -2em 1em;border-bottom:3px solid #999}
header.ok{border-color:#2e8b57}header.starting{border-color:#daa520}
header.failing,header.stale{border-color:#c0392b;background:#fdecea}
h1{margin:.2em 0}h2{font-size:1.1em;margin:1.4em 0 .4em}
table{border-collapse:collapse}th,td{border:1px solid #ddd;padding:2px 8px;text-align:left;
vertical-align:top}td{max-width:48em;overflow-wrap:anywhere}th{background:#f4f4f4}
figure{margin:1em 0}figcaption{font-weight:600;margin-bottom:.3em}
svg text{font:12px system-ui,sans-serif;fill:#222}
.key{display:inline-block;width:.8em;height:.8em;margin:0 .2em 0 .6em}
"""

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="30">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>syncd status</title><style>{style}</style></head>
<body>{body}</body></html>
"""

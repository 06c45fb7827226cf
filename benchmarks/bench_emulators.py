"""How fast the two emulators serve a full read through the real client libraries.

Seeds a sandbox org (`connectors.sandbox.Sandbox`, HubSpot limits off so that the rate limiter
measures nothing), then reads every live person back the way a first sync does: HubSpot
`crm.contacts.get_all()` (100 per page), HubSpot again as syncd's own connector reads
(`connectors/hubspot/transport.py`: `get_page_with_http_info(_preload_content=False)` and one
`json.loads` per page, so without the SDK's model building), and Salesforce `query_all` over
Lead and Contact (2,000 per page). Prints one Markdown table: records/s per emulator,
seeding time and rate,
peak RSS, and the machine. Everything runs in this one process (the emulators serve from
threads), as in the test suite, so client and server share one interpreter.

    python -m benchmarks.bench_emulators --scale 100000
    python -m benchmarks.bench_emulators --scale 1000000 --touches-per-person 2
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import hubspot
import requests
from simple_salesforce.api import Salesforce

from benchmarks.bench_pull import machine
from connectors.loopback import LoopbackServer
from connectors.sandbox import Sandbox, SandboxInfo

# The goal set for the emulators at an org of 100,000 people.
GOAL_RECORDS_PER_SECOND = 5_000
PERSON_FIELDS = "Id, FirstName, LastName, Email, Title, Phone, SystemModstamp"


@dataclass(frozen=True)
class Measure:
    """`seconds` as the client saw them; `server_seconds` spent inside the emulator's handler
    (from its request log), which shows how much of the time is the client library's own."""

    what: str
    records: int
    seconds: float
    server_seconds: float = 0.0
    requests: int = 0

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0

    @property
    def server_rate(self) -> float:
        return self.records / self.server_seconds if self.server_seconds else 0.0


def timed(what: str, read: Callable[[], int], server: LoopbackServer) -> Measure:
    logged = len(server.log)
    started = time.perf_counter()
    records = read()
    seconds = time.perf_counter() - started
    served = server.log[logged:]
    return Measure(what, records, seconds, sum(entry.took for entry in served), len(served))


def read_hubspot(info: SandboxInfo) -> int:
    client = hubspot.Client.create(access_token=info.hubspot_token, host=info.hubspot_url,
                                   ssl_ca_cert=str(info.ca_path))
    return len(client.crm.contacts.get_all())


def read_hubspot_raw(info: SandboxInfo) -> int:
    """Every live contact the way syncd's connector pages them: the SDK's `*_with_http_info`
    with `_preload_content=False`, then one `json.loads` of the raw body per page."""
    client = hubspot.Client.create(access_token=info.hubspot_token, host=info.hubspot_url,
                                   ssl_ca_cert=str(info.ca_path))
    api = client.crm.objects.basic_api
    read, after = 0, None
    while True:
        kwargs: dict[str, Any] = {"limit": 100, "archived": False}
        if after is not None:
            kwargs["after"] = after
        raw = api.get_page_with_http_info("contacts", _preload_content=False, **kwargs)
        body = json.loads(raw.data)
        read += len(body["results"])
        after = body.get("paging", {}).get("next", {}).get("after")
        if after is None:
            return read


def read_salesforce(info: SandboxInfo) -> int:
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE would otherwise override `verify`
    session.verify = str(info.ca_path)
    org = Salesforce(instance_url=info.salesforce_url, session_id=info.salesforce_token,
                     version=info.salesforce_api_version, session=session)
    return sum(len(org.query_all(f"SELECT {PERSON_FIELDS} FROM {sobject}")["records"])
               for sobject in ("Lead", "Contact"))


def peak_rss_mb() -> float:
    # ru_maxrss is in kilobytes on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def records_seeded(counts: Mapping[str, int]) -> int:
    """Records written to both emulators: objects of each system, submissions and clicks
    (the `salesforce.Lead.deleted`-style sub-counts describe records already counted)."""
    kinds = ("hubspot.contacts", "hubspot.companies", "form_submissions", "email_clicks")
    return sum(n for kind, n in counts.items()
               if kind in kinds or (kind.startswith("salesforce.") and kind.count(".") == 1
                                    and kind[11:12].isupper()))


def table(scale: int, seeding: Measure, reads: Sequence[Measure], info: SandboxInfo,
          seeded_rss_mb: float) -> str:
    written = records_seeded(info.counts)
    rows = [
        "| measure | records | requests | seconds | records/s (client) "
        "| records/s (emulator) | goal |",
        "|---|---:|---:|---:|---:|---:|---|",
        f"| seeding ({scale:,} people, {info.counts.get('touches', 0):,} touches) "
        f"| {seeding.records:,} people, {written:,} records | | {seeding.seconds:.1f} "
        f"| {seeding.rate:,.0f} people/s ({written / seeding.seconds:,.0f} records/s) "
        f"| | >= 20,000 people/s: {verdict(seeding.rate, 20_000)} |",
    ]
    for read in reads:
        rows.append(
            f"| {read.what} | {read.records:,} | {read.requests:,} | {read.seconds:.1f} "
            f"| {read.rate:,.0f} | {read.server_rate:,.0f} "
            f"| >= {GOAL_RECORDS_PER_SECOND:,}/s: {verdict(read.rate, GOAL_RECORDS_PER_SECOND)} |")
    rows.append(f"| peak RSS after seeding | | | | {seeded_rss_mb:,.0f} MB | | |")
    rows.append(f"| peak RSS (whole process, after the reads) | | | | {peak_rss_mb():,.0f} MB "
                "| | |")
    return "\n".join(rows) + f"\n\nMachine: {machine()}"


def verdict(rate: float, goal: float) -> str:
    return "met" if rate >= goal else "NOT met"


def arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--scale", type=int, default=100_000, help="people in the org")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--touches-per-person", type=float, default=10.0)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = arguments(argv)
    sandbox = Sandbox(scale=args.scale, seed=args.seed, hubspot_limits="unlimited",
                      salesforce_daily_limit=10_000_000,
                      touches_per_person=args.touches_per_person)
    started = time.perf_counter()
    info = sandbox.start()
    seeding = Measure("seeding", args.scale, time.perf_counter() - started)
    seeded_rss_mb = peak_rss_mb()  # get_all() holds every contact as a model: measure before
    assert sandbox.hubspot is not None and sandbox.salesforce is not None
    try:
        reads: list[Measure] = [
            timed("HubSpot crm.contacts.get_all() (100/page)", lambda: read_hubspot(info),
                  sandbox.hubspot.server),
            timed("HubSpot as syncd reads: get_page_with_http_info, raw JSON (100/page)",
                  lambda: read_hubspot_raw(info), sandbox.hubspot.server),
            timed("Salesforce query_all Lead + Contact (2,000/page)",
                  lambda: read_salesforce(info), sandbox.salesforce.server),
        ]
    finally:
        sandbox.stop()
    print(table(args.scale, seeding, reads, info, seeded_rss_mb))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

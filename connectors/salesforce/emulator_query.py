"""The emulated REST `query` and `queryAll` resources and their `nextRecordsUrl` locators
(wire reference 2.2): a query is evaluated once, on its first page, and its rows are paged
from the kept result.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from connectors.loopback import Request, Response, Router

from .emulator_wire import attributes, errors
from .org import Org
from .tables import Selection

_LOCATORS_KEPT = 50


@dataclass
class Locator:
    """A query evaluated once: its rows are paged from here, never re-run (performance)."""

    selection: Selection
    version: str


class QueryApi:
    """SOQL over an `Org`, with the last few open query locators."""

    def __init__(self, org: Org) -> None:
        self.org = org
        self._locators: OrderedDict[str, Locator] = OrderedDict()

    def routes(self, router: Router, prefix: str) -> None:
        for kind in ("query", "queryAll"):
            router.add("GET", f"{prefix}/{kind}", self._query)
            router.add("GET", f"{prefix}/{kind}/{{locator}}", self._query_more)

    def _query(self, request: Request, version: str) -> Response:
        soql = request.arg("q")
        if not soql:
            return errors("MALFORMED_QUERY", "The q parameter is required")
        include_deleted = "/queryAll" in request.path
        selection = self.org.select(soql, include_deleted=include_deleted, version=version)
        if selection.count_only:
            return Response(200, {"totalSize": len(selection.rows), "done": True, "records": []})
        locator_id = self.org.new_id("01g")
        self._locators[locator_id] = Locator(selection, version)
        while len(self._locators) > _LOCATORS_KEPT:
            # Salesforce also caps open cursors per user and drops the oldest [reported].
            self._locators.popitem(last=False)
        return self._page(locator_id, 0, _batch_size(request))

    def _query_more(self, request: Request, version: str, locator: str) -> Response:
        locator_id, _, offset = locator.rpartition("-")
        if locator_id not in self._locators or not offset.isdigit():
            return errors("INVALID_QUERY_LOCATOR", "invalid query locator")
        self._locators.move_to_end(locator_id)
        return self._page(locator_id, int(offset), _batch_size(request))

    def _page(self, locator_id: str, offset: int, size: int) -> Response:
        locator = self._locators[locator_id]
        selection, version = locator.selection, locator.version
        rows = selection.rows[offset : offset + size]
        total = len(selection.rows)
        done = offset + len(rows) >= total
        body: dict[str, Any] = {"totalSize": total, "done": done}
        if not done:
            body["nextRecordsUrl"] = (
                f"/services/data/v{version}/query/{locator_id}-{offset + len(rows)}"
            )
        project, sobject = selection.project, selection.sobject
        body["records"] = [
            {"attributes": attributes(sobject, row["Id"], version), **project(row)}
            for row in rows
        ]
        return Response(200, body)


def _batch_size(request: Request) -> int:
    """`Sforce-Query-Options: batchSize=n`, held to Salesforce's 200..2000."""
    for option in request.header("sforce-query-options").split(","):
        key, _, value = option.strip().partition("=")
        if key.strip().lower() == "batchsize" and value.strip().isdigit():
            return min(2000, max(200, int(value)))
    return 2000

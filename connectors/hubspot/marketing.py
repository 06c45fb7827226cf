"""Reading HubSpot's marketing touchpoints: forms, form submissions, email click events.

Forms come from `GET /marketing/v3/forms/` (every run: a handful of rows). Submissions come
per form from `GET /form-integrations/v1/submissions/forms/{guid}`, newest first, so each
form is paged only until its submissions are older than the window's start; a run with
nothing new costs one call per form plus the forms list. Click events come from the legacy
`GET /email/public/v1/events?eventType=CLICK` for the window (offset paging); each carries
its campaign's name, read once per campaign id per connector instance from
`GET /email/public/v1/campaigns/{id}` and emitted as an `email_campaigns` record too.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import replace
from datetime import datetime
from typing import Any

from connectors.hubspot.crm import parse_time
from connectors.hubspot.cursors import Cursor, ceil_ms, from_ms
from connectors.hubspot.transport import SYSTEM, Answer, AnswerError, Call, HubSpotTransport
from syncd.model import Page, Record

FORMS_LIMIT = 100
SUBMISSIONS_LIMIT = 50
EVENTS_LIMIT = 1000


class MarketingReader:
    """Pages of the marketing streams; generators return the final cursor."""

    def __init__(self, transport: HubSpotTransport) -> None:
        self.transport = transport
        self._spent = 0
        self._forms: tuple[datetime, list[dict[str, Any]]] | None = None
        self._campaigns: dict[str, str | None] = {}

    # -- forms ------------------------------------------------------------------------------

    def forms(self, cursor: Cursor, run_start: datetime) -> Generator[Page, None, Cursor]:
        records = [self._form(item) for item in self._form_list(run_start)]
        yield self._page("forms", records, cursor)
        return cursor.finished(run_start)

    def _form_list(self, run_start: datetime) -> list[dict[str, Any]]:
        """Every form, read once per run (the submissions stream needs the list too)."""
        if self._forms is not None and self._forms[0] == run_start:
            return self._forms[1]
        forms: list[dict[str, Any]] = []
        after: str | None = None
        while True:
            kwargs: dict[str, Any] = {"limit": FORMS_LIMIT}
            if after is not None:
                kwargs["after"] = after
            answer = self._send(Call("GET", "/marketing/v3/forms/", "forms"),
                                self.transport.forms.get_page_with_http_info, **kwargs)
            body = answer.body or {}
            forms += body.get("results") or []
            after = ((body.get("paging") or {}).get("next") or {}).get("after")
            if not after:
                break
        self._forms = (run_start, forms)
        return forms

    @staticmethod
    def _form(item: dict[str, Any]) -> Record:
        stamp = parse_time(item.get("updatedAt")) or parse_time(item.get("createdAt"))
        assert stamp is not None, f"HubSpot form {item.get('id')} has no time"
        fields = {k: item.get(k) for k in ("id", "name", "formType", "createdAt", "updatedAt",
                                           "archived")}
        return Record(system=SYSTEM, object="forms", id=str(item["id"]), updated_at=stamp,
                      fields=fields, deleted=bool(item.get("archived")))

    # -- form submissions -------------------------------------------------------------------

    def submissions(self, cursor: Cursor) -> Generator[Page, None, Cursor]:
        assert cursor.high is not None and cursor.low is not None
        end = cursor.high
        low, high = cursor.low, ceil_ms(end)
        for form in self._form_list(end):
            guid = str(form["id"])
            if guid in cursor.done:
                continue
            after = cursor.after if cursor.phase == guid else None
            while True:
                found, after = self._submissions_page(guid, after)
                kept = [s for s in found if low <= int(s.get("submittedAt") or 0) < high]
                older = any(int(s.get("submittedAt") or 0) < low for s in found)
                if older or after is None:
                    cursor = replace(cursor, done=(*cursor.done, guid), phase="", after=None)
                else:
                    cursor = replace(cursor, phase=guid, after=after)
                records = [_submission(form, item) for item in kept]
                yield self._page("form_submissions", records, cursor)
                if older or after is None:
                    break
        return replace(cursor, done=()).finished(end)

    def _submissions_page(self, guid: str,
                          after: str | None) -> tuple[list[dict[str, Any]], str | None]:
        query: list[tuple[str, Any]] = [("limit", SUBMISSIONS_LIMIT)]
        if after is not None:
            query.append(("after", after))
        path = f"/form-integrations/v1/submissions/forms/{guid}"
        answer = self._legacy(Call("GET", path, "form_submissions"), query)
        body = answer.body or {}
        following = ((body.get("paging") or {}).get("next") or {}).get("after")
        return list(body.get("results") or []), str(following) if following else None

    # -- email click events -----------------------------------------------------------------

    def email_events(self, cursor: Cursor) -> Generator[Page, None, Cursor]:
        assert cursor.high is not None and cursor.low is not None
        offset = cursor.after
        while True:
            query: list[tuple[str, Any]] = [
                ("eventType", "CLICK"), ("startTimestamp", cursor.low),
                ("endTimestamp", ceil_ms(cursor.high) - 1), ("limit", EVENTS_LIMIT)]
            if offset:
                query.append(("offset", offset))
            answer = self._legacy(Call("GET", "/email/public/v1/events", "email_events"), query)
            body = answer.body or {}
            more = bool(body.get("hasMore"))
            offset = str(body.get("offset") or "") if more else None
            records: list[Record] = []
            for item in body.get("events") or []:
                records += self._click(item)
            yield self._page("email_events", records, replace(cursor, after=offset))
            if not more:
                return cursor.finished(cursor.high)

    def _click(self, item: dict[str, Any]) -> list[Record]:
        """The click event, preceded by its campaign the first time that campaign is seen."""
        campaign_id = str(item.get("emailCampaignId") or "")
        out: list[Record] = []
        if campaign_id and campaign_id not in self._campaigns:
            campaign = self._campaign(campaign_id, item)
            self._campaigns[campaign_id] = None if campaign is None \
                else campaign.fields.get("name")
            out += [campaign] if campaign is not None else []
        created = from_ms(int(item.get("created") or 0))
        fields = {**item, "campaign_name": self._campaigns.get(campaign_id)}
        out.append(Record(system=SYSTEM, object="email_events", id=str(item["id"]),
                          updated_at=created, fields=fields))
        return out

    def _campaign(self, campaign_id: str, event: dict[str, Any]) -> Record | None:
        call = Call("GET", f"/email/public/v1/campaigns/{campaign_id}", "email_campaigns")
        try:
            answer = self._legacy(call, [])
        except AnswerError as error:
            if error.status != 404:
                raise
            return None  # a campaign HubSpot no longer knows: the click keeps no name
        body = answer.body or {}
        finished = int(body.get("lastProcessingFinishedAt") or 0)
        stamp = from_ms(finished or int(event.get("created") or 0))
        fields = {k: body.get(k) for k in ("id", "name", "subject", "appId", "appName",
                                           "type", "processingState")}
        return Record(system=SYSTEM, object="email_campaigns", id=campaign_id,
                      updated_at=stamp, fields=fields)

    # -- plumbing ---------------------------------------------------------------------------

    def _page(self, stream: str, records: list[Record], state: Cursor) -> Page:
        calls, self._spent = self._spent, 0
        return Page(stream=stream, records=records, cursor=state.dump(),
                    watermark=state.watermark, calls=calls)

    def _send(self, call: Call, operation: Any, *args: Any, **kwargs: Any) -> Answer:
        self._spent += 1
        return self.transport.send(call, operation, *args, **kwargs)

    def _legacy(self, call: Call, query: list[tuple[str, Any]]) -> Answer:
        self._spent += 1
        return self.transport.get_legacy(call, query)


def _submission(form: dict[str, Any], item: dict[str, Any]) -> Record:
    values = {str(v.get("name")): v.get("value") for v in item.get("values") or []}
    submitted = int(item.get("submittedAt") or 0)
    fields = {"form_id": str(form["id"]), "form_name": form.get("name"), "values": values,
              "email": values.get("email"), "pageUrl": item.get("pageUrl"),
              "submittedAt": submitted}
    return Record(system=SYSTEM, object="form_submissions", id=str(item["conversionId"]),
                  updated_at=from_ms(submitted), fields=fields)

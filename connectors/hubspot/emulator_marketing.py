"""The emulated marketing endpoints syncd reads for attribution: forms and their submissions
(marketing v3, form-integrations v1), and the legacy email click events and campaigns
(email v1).
"""

from __future__ import annotations

import base64
import bisect
from collections.abc import Callable
from typing import Any

from connectors.hubspot.emulator_wire import LIST_MAX_LIMIT, HubSpotError, int_arg, limit_arg
from connectors.hubspot.portal import Click, Portal, iso_ms
from connectors.loopback import Request, Response, Router

SUBMISSIONS_MAX_LIMIT = 50
EMAIL_EVENTS_MAX_LIMIT = 1000


def _cursor(key: tuple[int, int]) -> str:
    return base64.urlsafe_b64encode(f"{key[0]}:{key[1]}".encode()).decode().rstrip("=")


def _uncursor(token: str) -> tuple[int, int]:
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        first, second = text.split(":")
        return int(first), int(second)
    except (ValueError, UnicodeDecodeError):
        raise HubSpotError(400, "VALIDATION_ERROR", f"Invalid paging cursor {token!r}.")\
            from None


class MarketingApi:
    """Forms, submissions, email events and email campaigns of a `Portal`."""

    def __init__(self, portal: Portal) -> None:
        self.portal = portal

    def routes(self, router: Router) -> None:
        router.add("GET", "/marketing/v3/forms", self._forms)
        router.add("GET", "/form-integrations/v1/submissions/forms/{guid}", self._submissions)
        router.add("GET", "/email/public/v1/events", self._email_events)
        router.add("GET", "/email/public/v1/campaigns", self._email_campaigns)
        router.add("GET", "/email/public/v1/campaigns/{campaign_id}", self._email_campaign)

    # -- forms and email ------------------------------------------------------------------

    def _forms(self, request: Request) -> Response:
        limit = limit_arg(request, 20, LIST_MAX_LIMIT)
        start = int_arg(request.arg("after") or "0", "after")
        forms = list(self.portal.forms.values())
        results = []
        for form in forms[start:start + limit]:
            stamp = iso_ms(form.created_at)
            results.append({
                "id": form.id, "name": form.name, "createdAt": stamp, "updatedAt": stamp,
                "archived": False, "formType": "hubspot", "fieldGroups": [],
                "configuration": {"language": "en", "cloneable": True, "editable": True,
                                  "archivable": True, "createNewContactForNewEmail": False,
                                  "allowLinkToResetKnownValues": False,
                                  "lifecycleStages": [], "postSubmitAction": {
                                      "type": "thank_you", "value": ""},
                                  "prePopulateKnownValues": True, "notifyRecipients": [],
                                  "recaptchaEnabled": False, "notifyContactOwner": False},
                "displayOptions": {"renderRawHtml": False, "theme": "default_style",
                                   "submitButtonText": "Submit", "style": {}, "cssClass": ""},
                "legalConsentOptions": {"type": "none"},
            })
        answer: dict[str, Any] = {"results": results}
        if start + limit < len(forms):
            answer["paging"] = {"next": {"after": str(start + limit),
                                         "link": f"?after={start + limit}"}}
        return Response(200, answer)

    def _submissions(self, request: Request, guid: str) -> Response:
        form = self.portal.forms.get(guid)
        if form is None:
            raise HubSpotError(404, "OBJECT_NOT_FOUND", f"Form {guid} does not exist.")
        limit = limit_arg(request, 20, SUBMISSIONS_MAX_LIMIT)
        token = request.arg("after")
        keys, submissions = form.submissions.ordered()
        end = bisect.bisect_left(keys, _uncursor(token)) if token else len(keys)
        begin = max(0, end - limit)
        # Newest first: walk the ascending list backwards from the cursor.
        results = [submission.wire() for submission in reversed(submissions[begin:end])]
        answer: dict[str, Any] = {"results": results}
        if begin > 0:
            after = _cursor(keys[begin])
            answer["paging"] = {"next": {"after": after, "link": f"?after={after}"}}
        return Response(200, answer)

    def _email_events(self, request: Request) -> Response:
        limit = limit_arg(request, 100, EMAIL_EVENTS_MAX_LIMIT)
        keys, clicks = self.portal.clicks.ordered()
        low = bisect.bisect_left(keys, (int_arg(request.arg("startTimestamp") or 0, "start"), 0))
        high = bisect.bisect_left(keys, (int_arg(
            request.arg("endTimestamp") or 2**62, "end") + 1, 0))
        token = request.arg("offset")
        if token:
            high = min(high, bisect.bisect_left(keys, _uncursor(token)))
        wanted = self._event_filter(request)
        events: list[dict[str, object]] = []
        position = high
        while position > low and len(events) < limit:
            position -= 1
            click = clicks[position]
            if wanted(click):
                events.append(click.wire(self.portal.portal_id))
        has_more = any(wanted(clicks[i]) for i in range(position - 1, low - 1, -1))
        offset = _cursor(keys[position]) if position < len(keys) else ""
        return Response(200, {"events": events, "offset": offset, "hasMore": has_more})

    @staticmethod
    def _event_filter(request: Request) -> Callable[[Click], bool]:
        kind, campaign = request.arg("eventType"), request.arg("campaignId")
        recipient = request.arg("recipient")

        def wanted(event: Click) -> bool:
            return ((not kind or event.type == kind.upper())
                    and (not campaign or str(event.campaign_id) == campaign)
                    and (not recipient or event.recipient == recipient))

        return wanted

    def _email_campaigns(self, request: Request) -> Response:
        campaigns = [{"id": c.id, "appId": c.app_id, "appName": "Batch",
                      "lastUpdatedTime": 0} for c in self.portal.campaigns.values()]
        return Response(200, {"campaigns": campaigns, "hasMore": False, "offset": ""})

    def _email_campaign(self, request: Request, campaign_id: str) -> Response:
        campaign = self.portal.campaigns.get(int_arg(campaign_id, "campaign id"))
        if campaign is None:
            raise HubSpotError(404, "OBJECT_NOT_FOUND", f"Campaign {campaign_id} not found.")
        recipients = len(campaign.recipients)
        return Response(200, {
            "id": campaign.id, "appId": campaign.app_id, "appName": "Batch",
            "contentId": campaign.id, "name": campaign.name, "subject": campaign.subject,
            "type": "BATCH_EMAIL", "numIncluded": recipients, "numQueued": 0,
            "counters": {"click": campaign.clicks, "sent": recipients, "delivered": recipients},
            "lastProcessingFinishedAt": campaign.last_click,
            "processingState": "DONE",
        })

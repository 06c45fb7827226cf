"""Applying an `OrgPlan` to the two emulators through their Python seeding APIs (`Portal`,
`Org`), never over HTTP, in one pass over the plan, keeping only the ids later steps refer to.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from connectors.sandbox.plan import (
    TOUCH_COUNTS,
    HubSpotSide,
    PlannedAccount,
    PlannedCampaign,
    PlannedCompany,
    PlannedOpportunity,
    PlannedPerson,
    PlannedTouch,
    SalesforceSide,
    Step,
)

if TYPE_CHECKING:
    from connectors.hubspot.portal import Portal
    from connectors.salesforce.org import Org

# The HubSpot side of a portal where syncd is installed (ARCHITECTURE section 5):
# (object type, name, type, field type, has_unique_value).
SYNCD_PROPERTIES: tuple[tuple[str, str, str, str, bool], ...] = (
    ("contacts", "syncd_id", "string", "text", True),
    ("companies", "syncd_id", "string", "text", True),
    ("deals", "syncd_id", "string", "text", True),
    ("deals", "syncd_first_touch_campaign", "string", "text", False),
    ("deals", "syncd_last_touch_campaign", "string", "text", False),
    ("contacts", "syncd_attributed_revenue", "number", "number", False),
)


class Seeder:
    """Writes plan steps into a `Portal` and an `Org`, remembering the ids later steps need."""

    def __init__(self, portal: Portal, org: Org) -> None:
        self.portal = portal
        self.org = org
        self.counts: Counter[str] = Counter()
        self.salesforce_campaigns: list[str] = []  # Campaign Ids, by campaign number
        self.email_campaigns: list[int] = []  # HubSpot email campaign ids, by number
        self.forms: list[str] = []  # form guids, by form number
        self.accounts: list[str] = []  # Account Ids, by account key
        self.companies: dict[int, str] = {}  # HubSpot company ids, by company key
        self.contacts: dict[int, str] = {}  # live Contact Ids, by person key

    def install_properties(self) -> None:
        for object_type, name, kind, field_type, unique in SYNCD_PROPERTIES:
            self.portal.add_property(object_type, name, type=kind, field_type=field_type,
                                     has_unique_value=unique)

    def apply(self, step: Step) -> None:
        """One step of the plan: its records, and for a person their fates and touches."""
        if isinstance(step, PlannedPerson):
            self.person(step)
        elif isinstance(step, PlannedOpportunity):
            self.opportunity(step)
        elif isinstance(step, PlannedAccount):
            self.account(step)
        elif isinstance(step, PlannedCompany):
            self.company(step.key, step.name, step.domain, step.created)
        elif isinstance(step, PlannedCampaign):
            self.campaign(step)
        else:
            self.forms.append(self.portal.add_form(step.name, guid=step.guid))
            self.counts["hubspot.forms"] += 1

    # -- campaigns, accounts, companies

    def campaign(self, step: PlannedCampaign) -> None:
        if step.in_salesforce:
            started = datetime.combine(step.start, datetime.min.time(), UTC)
            self.salesforce_campaigns.append(self.insert("Campaign", {
                "Name": step.name, "Type": step.type, "Status": "Completed", "IsActive": True,
                "StartDate": step.start}, at=started))
        if step.in_hubspot:
            self.email_campaigns.append(self.portal.add_email_campaign(step.name))
            self.counts["hubspot.email_campaigns"] += 1
        if step.in_salesforce and step.in_hubspot:
            self.counts["campaigns.shared_names"] += 1

    def account(self, step: PlannedAccount) -> None:
        fields: dict[str, Any] = {"Name": step.name}
        if step.website:
            fields["Website"] = step.website
        else:
            self.counts["salesforce.Account.without_website"] += 1
        if step.industry:
            fields["Industry"] = step.industry
        self.accounts.append(self.insert("Account", fields, at=step.created))
        if step.company_domain is not None:
            self.company(step.key, step.name, step.company_domain, step.created)

    def company(self, key: int, name: str, domain: str | None, created: datetime) -> None:
        properties = {"name": name, "domain": domain} if domain else {"name": name}
        self.companies[key] = self.portal.create("companies", properties, at=created)
        self.counts["hubspot.companies"] += 1

    def insert(self, sobject: str, fields: Mapping[str, Any], *, at: datetime) -> str:
        self.counts[f"salesforce.{sobject}"] += 1
        return self.org.insert(sobject, fields, at=at)

    # -- people

    def person(self, person: PlannedPerson) -> None:
        counts = self.counts
        counts["people"] += 1
        hubspot, salesforce = person.hubspot, person.salesforce
        if hubspot is not None:
            self.hubspot_contact(person, hubspot)
        who: tuple[str, ...] = ()
        if salesforce is not None:
            who = self.salesforce_records(person, salesforce)
        counts["people.both" if hubspot and salesforce else "people.hubspot_only" if hubspot
               else "people.salesforce_only"] += 1
        if hubspot is not None:
            self.hubspot_touches(person, hubspot)
        if salesforce is None:
            return
        if salesforce.kind == "ConvertedLead":
            self.convert(person, who[0], salesforce)
        if salesforce.fate != "live":
            self.salesforce_fate(person, salesforce, who[0])
        if salesforce.fate != "deleted":
            # After the conversion and the merge, as touches come in a real org: the
            # emulator indexes children, so neither has to run on empty tables any more.
            self.salesforce_touches(person, who)

    def hubspot_contact(self, person: PlannedPerson, side: HubSpotSide) -> None:
        properties = {
            "email": side.email, "firstname": person.first_name, "lastname": person.last_name,
            "jobtitle": person.title, "phone": person.phone, "company": person.company_name,
            "lifecyclestage": side.lifecycle_stage, "hs_analytics_source": side.source,
        }
        contact_id = self.portal.create("contacts", properties, at=person.created)
        self.counts["hubspot.contacts"] += 1
        if side.company is not None:
            # Type 1 is the primary company; HubSpot lists the unlabeled 279 along with it.
            self.portal.associate("contacts", contact_id, "companies",
                                  self.companies[side.company], 1 if side.primary else None)
            self.counts["hubspot.associations.primary" if side.primary
                        else "hubspot.associations.unlabeled"] += 1
        if side.fate != "live":
            self.hubspot_fate(person, side, contact_id)

    def hubspot_fate(self, person: PlannedPerson, side: HubSpotSide, contact_id: str) -> None:
        later = person.created + timedelta(days=3)
        if side.fate == "archived":
            self.portal.archive("contacts", contact_id, at=later)
            self.counts["hubspot.contacts.archived"] += 1
            return
        # A duplicate made earlier from an older address, merged into the person's contact.
        local, _, domain = side.email.partition("@")
        duplicate = self.portal.create("contacts", {
            "email": f"{local}+old@{domain}", "firstname": person.first_name,
            "lastname": person.last_name}, at=person.created - timedelta(days=30))
        self.portal.merge("contacts", contact_id, duplicate, at=later)
        self.counts["hubspot.contacts"] += 1
        self.counts["hubspot.contacts.merged"] += 1

    def salesforce_fields(self, person: PlannedPerson, side: SalesforceSide) -> dict[str, Any]:
        fields: dict[str, Any] = {"LastName": person.last_name, "Email": side.email}
        optional = (("FirstName", person.first_name), ("Title", person.title),
                    ("Phone", person.phone), ("LeadSource", side.lead_source),
                    ("Lifecycle_Stage__c", side.lifecycle_stage))
        fields.update((name, value) for name, value in optional if value is not None)
        return fields

    def salesforce_records(self, person: PlannedPerson, side: SalesforceSide) -> tuple[str, ...]:
        """The person's Lead and/or Contact ids, the Lead first where there is one."""
        fields = self.salesforce_fields(person, side)
        ids: list[str] = []
        if side.kind != "Contact":
            lead = dict(fields, Company=person.company_name,
                        Status=side.status or "Open - Not Contacted")
            ids.append(self.insert("Lead", lead, at=person.created))
        if side.kind in ("Contact", "LeadAndContact") and person.account is not None:
            contact = dict(fields, AccountId=self.accounts[person.account])
            ids.append(self.insert("Contact", contact, at=person.created + timedelta(days=1)))
            self.contacts[person.key] = ids[-1]
        if side.kind == "LeadAndContact":
            self.counts["salesforce.lead_and_contact_sharing_email"] += 1
        return tuple(ids)

    def convert(self, person: PlannedPerson, lead_id: str, side: SalesforceSide) -> None:
        assert person.account is not None and side.converted_at is not None
        result = self.org.convert_lead(lead_id, account_id=self.accounts[person.account],
                                       at=side.converted_at)
        contact_id = result.get("contactId")
        if contact_id:
            self.contacts[person.key] = contact_id
        self.counts["salesforce.Lead.converted"] += 1
        self.counts["salesforce.Contact"] += 1

    def salesforce_fate(self, person: PlannedPerson, side: SalesforceSide, record_id: str) -> None:
        sobject = "Lead" if side.kind == "Lead" else "Contact"
        later = person.created + timedelta(days=5)
        if side.fate == "deleted":
            self.org.delete(sobject, record_id, at=later)
            self.contacts.pop(person.key, None)
            self.counts[f"salesforce.{sobject}.deleted"] += 1
            return
        fields = self.salesforce_fields(person, side)
        if sobject == "Lead":
            fields["Company"] = person.company_name
        elif person.account is not None:
            fields["AccountId"] = self.accounts[person.account]
        duplicate = self.insert(sobject, fields, at=person.created - timedelta(days=20))
        self.org.merge(sobject, record_id, duplicate, at=later)
        self.counts[f"salesforce.{sobject}.merged"] += 1

    # -- touches

    def hubspot_touches(self, person: PlannedPerson, hubspot: HubSpotSide) -> None:
        for touch in person.touches:
            kind = touch.kind
            if kind == "form_submission":
                self.submission(person, hubspot.form_email, touch)
            elif kind == "email_click":
                self.portal.add_click(self.email_campaigns[touch.source], hubspot.email,
                                      created=touch.at, event_id=touch.event_id)
            else:
                continue
            self.counted(touch)

    def salesforce_touches(self, person: PlannedPerson, who: tuple[str, ...]) -> None:
        """Members, tasks and events on the person's live records. A converted lead's members
        carry its contact as conversion would have left them (reference 2.10)."""
        converted = None
        if person.salesforce is not None and person.salesforce.kind == "ConvertedLead":
            # Conversion moves the lead's activities to the new contact, as Salesforce does.
            converted = self.contacts.get(person.key)
        for number, touch in enumerate(person.touches):
            kind = touch.kind
            if kind == "campaign_response":
                self.member(who[0], touch, converted)
            elif kind in ("task", "event"):
                self.activity(converted or who[number % len(who)], touch)
            else:
                continue
            self.counted(touch)

    def counted(self, touch: PlannedTouch) -> None:
        if touch.responded:
            self.counts[TOUCH_COUNTS[touch.kind]] += 1
            self.counts["touches"] += 1
        else:
            self.counts["campaign_non_responses"] += 1

    def submission(self, person: PlannedPerson, email: str, touch: PlannedTouch) -> None:
        values = {"email": email, "lastname": person.last_name}
        if person.first_name is not None:
            values["firstname"] = person.first_name
        self.portal.add_submission(self.forms[touch.source], values, submitted_at=touch.at,
                                   conversion_id=touch.event_id,
                                   page_url=f"https://www.example.com/forms/{touch.source}")

    def member(self, who: str, touch: PlannedTouch, converted_contact: str | None) -> None:
        # Lead ids start with 00Q, Contact ids with 003.
        fields = {"CampaignId": self.salesforce_campaigns[touch.source],
                  "LeadId" if who.startswith("00Q") else "ContactId": who,
                  "Status": "Responded" if touch.responded else "Sent"}
        if converted_contact is not None:
            fields["ContactId"] = converted_contact
        self.insert("CampaignMember", fields, at=touch.at)

    def activity(self, who: str, touch: PlannedTouch) -> None:
        if touch.kind == "task":
            fields: dict[str, Any] = {"Subject": touch.type or "Follow-up", "WhoId": who,
                                      "Status": "Completed", "ActivityDate": touch.at.date()}
        else:
            fields = {"Subject": touch.type or "Appointment", "WhoId": who,
                      "StartDateTime": touch.at, "EndDateTime": touch.at + timedelta(minutes=30)}
        if touch.type is not None:
            fields["Type"] = touch.type
        self.insert("Task" if touch.kind == "task" else "Event", fields, at=touch.at)

    # -- opportunities

    def opportunity(self, step: PlannedOpportunity) -> None:
        closed = step.stage in ("Closed Won", "Closed Lost")
        fields: dict[str, Any] = {
            "Name": step.name, "AccountId": self.accounts[step.account],
            "StageName": "Prospecting" if closed else step.stage, "CloseDate": step.close_date}
        if step.amount is not None:
            fields["Amount"] = step.amount
        if step.campaign is not None:
            fields["CampaignId"] = self.salesforce_campaigns[step.campaign]
        opportunity_id = self.insert("Opportunity", fields, at=step.created)
        if closed:
            closed_at = datetime.combine(step.close_date, datetime.min.time(), UTC)
            self.org.update("Opportunity", opportunity_id, {"StageName": step.stage},
                            at=max(closed_at, step.created))
        self.counts[f"opportunities.{outcome(step.stage)}"] += 1
        roles = [(self.contacts[key], role) for key, role in step.contact_roles
                 if key in self.contacts]
        for number, (contact_id, role) in enumerate(roles):
            self.insert("OpportunityContactRole", {
                "OpportunityId": opportunity_id, "ContactId": contact_id, "Role": role,
                "IsPrimary": number == 0}, at=step.created)
        self.counts["opportunities.with_contact_roles" if roles
                    else "opportunities.without_contact_roles"] += 1


def outcome(stage: str) -> str:
    return {"Closed Won": "won", "Closed Lost": "lost"}.get(stage, "open")

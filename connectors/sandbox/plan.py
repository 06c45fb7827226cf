"""The sandbox org as data: `OrgPlan` draws it from `random.Random(seed)` as a stream of small
frozen records in dependency order (campaigns, forms, accounts, HubSpot-only companies, people
with their touches, opportunities). It touches no emulator, so it can be checked on its own.

Every timestamp derives from `anchor` (default 2026-11-01T00:00:00Z) and falls in the two
years before it, so two draws with the same seed are identical record for record. Creation
times grow with the record number, as they do in a real org where ids follow time.
"""

from __future__ import annotations

import itertools
import random
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import NamedTuple, TypeVar

T = TypeVar("T")

DEFAULT_ANCHOR = datetime(2026, 11, 1, tzinfo=UTC)
SPAN = timedelta(days=730)

# (display, ASCII slug) pairs: the display forms carry accents, CJK, RTL scripts and emoji so
# that every name path in syncd meets them; the slugs build deliverable-looking emails.
FIRST_NAMES = (
    ("Emma", "emma"), ("Liam", "liam"), ("José", "jose"), ("Zoë", "zoe"), ("Łukasz", "lukasz"),
    ("Søren", "soren"), ("Chloé", "chloe"), ("François", "francois"), ("Priya", "priya"),
    ("Wei", "wei"), ("美咲", "misaki"), ("陽翔", "haruto"), ("محمد", "mohammed"),
    ("נועה", "noa"), ("Siobhán", "siobhan"), ("Olúwásegun", "oluwasegun"), ("Sam 🚀", "sam"),
    ("Ana", "ana"), ("Björn", "bjorn"), ("Mia", "mia"), ("Noah", "noah"), ("Aiko", "aiko"),
)
LAST_NAMES = (
    ("Smith", "smith"), ("García", "garcia"), ("Nguyễn", "nguyen"), ("O'Brien", "obrien"),
    ("Kowalski", "kowalski"), ("Ødegaard", "odegaard"), ("佐藤", "sato"), ("王", "wang"),
    ("김", "kim"), ("حداد", "haddad"), ("כהן", "cohen"), ("Dubois", "dubois"),
    ("Schröder", "schroder"), ("da Silva", "dasilva"), ("Johnson", "johnson"),
    ("Åkesson", "akesson"), ("Star ⭐", "star"), ("Müller", "muller"), ("Patel", "patel"),
)
TITLES = (
    "VP Marketing", "Head of Growth 🚀", "Directeur Général", "営業部長", "مدير المبيعات",
    "Ingeniera de Datos", "CFO", "Marketing Operations Manager", "Chief Revenue Officer",
    "Sales Development Rep", "Geschäftsführer", "מנהל מוצר",
)
COMPANY_WORDS = (
    ("Acme", "acme"), ("Globex", "globex"), ("Initech", "initech"), ("Umbrella", "umbrella"),
    ("Hooli", "hooli"), ("Tyrell", "tyrell"), ("Cyberdyne", "cyberdyne"), ("Wonka", "wonka"),
    ("Aperture", "aperture"), ("Vandelay", "vandelay"), ("Pied Piper", "piedpiper"),
    ("Café Lumière", "cafelumiere"), ("東京システム", "tokyosystems"), ("شركة النور", "alnoor"),
    ("Żabka Tech", "zabkatech"), ("Nakatomi", "nakatomi"), ("Oceanic", "oceanic"),
)
COMPANY_SUFFIXES = ("Inc.", "GmbH", "S.A.", "Ltd", "SAS", "株式会社", "LLC", "")
TLDS = ("com", "io", "co.uk", "de", "fr", "jp")
INDUSTRIES = ("Technology", "Finance", "Healthcare", "Retail", "Manufacturing", None)
FREE_MAIL = ("example.com", "example.net", "example.org")
CAMPAIGN_THEMES = (
    "Spring Launch", "Data Quality Webinar", "Customer Summit", "Product Newsletter",
    "Salon Paris — Été", "Partner Roadshow", "東京 Meetup", "Year-End Promo", "Trial Nurture",
    "Analyst Report", "Retail Forum", "Security Briefing",
)
CAMPAIGN_TYPES = ("Webinar", "Email", "Seminar / Conference", "Advertisement", "Other")
FORM_NAMES = (
    "Contact us", "Demo request", "Newsletter sign-up", "Ebook download",
    "Webinar registration", "Pricing enquiry", "Événement inscription",
)

# HubSpot internal lifecycle values, in order, plus `other` (ARCHITECTURE section 5).
HUBSPOT_STAGES = (
    "subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead", "opportunity",
    "customer", "evangelist", "other",
)
SALESFORCE_STAGE_LABELS = ("Subscriber", "Lead", "MQL", "SQL", "Opportunity", "Customer",
                           "Evangelist")
LEAD_STATUSES = ("Open - Not Contacted", "Working - Contacted", "Closed - Not Converted")
LEAD_SOURCES = ("Web", "Phone Inquiry", "Partner Referral", "Purchased List", "Other", None)
HUBSPOT_SOURCES = ("ORGANIC_SEARCH", "PAID_SEARCH", "EMAIL_MARKETING", "SOCIAL_MEDIA",
                   "REFERRALS", "DIRECT_TRAFFIC", "OFFLINE")
OPEN_STAGES = (
    "Prospecting", "Qualification", "Needs Analysis", "Value Proposition", "Id. Decision Makers",
    "Perception Analysis", "Proposal/Price Quote", "Negotiation/Review",
)
CONTACT_ROLES = ("Decision Maker", "Economic Buyer", "Evaluator", "Influencer",
                 "Technical Buyer", "Business User", "Executive Sponsor", "Other")
# Task/Event `Type`: None is the blank type that syncd labels "Sales: Task"/"Sales: Event".
TASK_TYPES = ("Call", "Email", "Meeting", None)
EVENT_TYPES = ("Meeting", "Call", "Email", None)

TOUCH_COUNTS = {"form_submission": "form_submissions", "email_click": "email_clicks",
                "campaign_response": "campaign_responses", "task": "tasks", "event": "events"}
SF_TOUCH_KINDS = ("campaign_response", "task", "event")
HS_TOUCH_KINDS = ("form_submission", "email_click")



@dataclass(frozen=True, slots=True)
class PlannedCampaign:
    """A marketing campaign: a Salesforce Campaign, a HubSpot marketing email, or both
    (the shared name is what attribution matches)."""

    key: int
    name: str
    type: str
    start: date
    in_salesforce: bool
    in_hubspot: bool


@dataclass(frozen=True, slots=True)
class PlannedForm:
    key: int
    name: str
    guid: str


@dataclass(frozen=True, slots=True)
class PlannedAccount:
    """A Salesforce Account; `company_domain` is its HubSpot company's domain (None: no company)."""

    key: int
    name: str
    website: str | None
    industry: str | None
    company_domain: str | None
    created: datetime


@dataclass(frozen=True, slots=True)
class PlannedCompany:
    """A HubSpot company with no Salesforce Account. Keys continue after the accounts'."""

    key: int
    name: str
    domain: str | None
    created: datetime


# The per-person records are NamedTuples rather than frozen dataclasses: a 1,000,000-person org
# makes some 12,000,000 of them, and a tuple is built several times faster.
class PlannedTouch(NamedTuple):
    """One touch. `source` numbers the form, or the campaign among the Salesforce Campaigns
    (responses) or the HubSpot emails (clicks); `type` is the Task/Event Type; `responded`
    False makes a campaign member that is not a touch."""

    kind: str
    at: datetime
    source: int = 0
    type: str | None = None
    responded: bool = True
    event_id: str = ""


class HubSpotSide(NamedTuple):
    """The person's HubSpot contact. fate: live | archived | merged (a duplicate was merged in).
    `form_email` is the address as typed into forms, surrounding spaces and capitals included."""

    email: str
    form_email: str
    lifecycle_stage: str | None
    company: int | None
    primary: bool
    source: str
    fate: str


class SalesforceSide(NamedTuple):
    """The person's Salesforce records. kind: Lead | Contact | ConvertedLead | LeadAndContact;
    fate: live | deleted | merged (a duplicate was merged into the surviving record)."""

    kind: str
    email: str
    status: str | None
    lifecycle_stage: str | None
    lead_source: str | None
    fate: str
    converted_at: datetime | None


class PlannedPerson(NamedTuple):
    """One person: the names they go by, the account they work for (key), and their records in
    each system (None: not in that system) with their touches, in no particular order."""

    key: int
    first_name: str | None
    last_name: str
    email: str
    title: str | None
    phone: str | None
    company_name: str
    account: int | None
    created: datetime
    hubspot: HubSpotSide | None
    salesforce: SalesforceSide | None
    touches: tuple[PlannedTouch, ...]


@dataclass(frozen=True, slots=True)
class PlannedOpportunity:
    """Inserted at an open stage at `created`; moved to `stage` at close when closed."""

    key: int
    name: str
    account: int
    stage: str
    amount: float | None
    close_date: date
    created: datetime
    campaign: int | None  # Primary Campaign Source, numbered among the Salesforce Campaigns
    contact_roles: tuple[tuple[int, str], ...]  # (person key, Role); the first is primary


Step = (PlannedCampaign | PlannedForm | PlannedAccount | PlannedCompany | PlannedPerson
        | PlannedOpportunity)


class Profile(NamedTuple):
    """Which systems hold a person and what happened to their records."""

    segment: str  # both | hubspot | salesforce
    salesforce_kind: str | None = None
    hubspot_fate: str = "live"
    salesforce_fate: str = "live"
    email_variant: str = "same"  # same | case | space


# The first people of every org: one of each kind the sandbox promises, so that even a
# 100-person org holds them all whatever the seed.
SHOWCASE = (
    Profile("both", "Lead", email_variant="case"),
    Profile("both", "Contact", email_variant="space"),
    Profile("both", "ConvertedLead"),
    Profile("salesforce", "LeadAndContact"),
    Profile("hubspot", hubspot_fate="archived"),
    Profile("hubspot", hubspot_fate="merged"),
    Profile("salesforce", "Lead", salesforce_fate="deleted"),
    Profile("salesforce", "Lead", salesforce_fate="merged"),
    Profile("salesforce", "Contact", salesforce_fate="deleted"),
    Profile("salesforce", "Contact", salesforce_fate="merged"),
    Profile("both", "Contact", hubspot_fate="merged", salesforce_fate="merged"),
    Profile("salesforce", "Contact"),
)


class OrgPlan:
    """The org for one (scale, seed, anchor): `steps()` streams it, the same every time."""

    def __init__(self, *, scale: int = 1000, seed: int = 7, anchor: datetime = DEFAULT_ANCHOR,
                 touches_per_person: float = 10.0) -> None:
        if scale < 1:
            raise ValueError(f"scale must be at least 1, got {scale}")
        if touches_per_person < 0:
            raise ValueError(f"touches_per_person must not be negative, got {touches_per_person}")
        self.scale = scale
        self.seed = seed
        self.anchor = anchor
        self.touches_per_person = touches_per_person
        self.accounts = max(10, scale // 10)
        self.hubspot_only_companies = max(2, self.accounts // 5)
        self.opportunities = max(10, scale // 10)
        self.campaigns = max(6, min(200, scale // 500))
        self.forms = len(FORM_NAMES)

    def steps(self) -> Iterator[Step]:
        """Every record in dependency order; a fresh generator replays the same stream."""
        return _PlanWriter(self).steps()


class _PlanWriter:
    """One pass of drawing an org: owns the random stream and what later steps refer to."""

    def __init__(self, plan: OrgPlan) -> None:
        self.plan = plan
        self.rng = random.Random(plan.seed)
        self.random = self.rng.random
        self.id_prefix = self.guid()[:24]
        self.event_numbers = itertools.count(1)
        self.start = plan.anchor - SPAN
        self.account_names: list[str] = []
        self.account_domains: list[str | None] = []
        self.company_keys: list[int] = []  # every HubSpot company, by plan key
        self.has_company: list[bool] = []
        self.contacts_by_account: dict[int, list[int]] = {}
        self.accounts_with_contacts: list[int] = []
        self.salesforce_campaigns: list[int] = []
        self.email_campaigns: list[int] = []

    def steps(self) -> Iterator[Step]:
        yield from self.campaigns()
        yield from self.forms()
        yield from self.accounts()
        yield from self.companies()
        for key in range(self.plan.scale):
            yield self.person(key)
        for key in range(self.plan.opportunities):
            yield self.opportunity(key)

    # -- helpers shared by the steps

    def time_of(self, number: int, count: int) -> datetime:
        """Record `number` of `count`: spread over the span, growing with the number."""
        share = (number + self.rng.random()) / count
        return self.start + timedelta(seconds=share * SPAN.total_seconds())

    def between(self, low: datetime, high: datetime) -> datetime:
        seconds = int(self.rng.random() * max(0.0, (high - low).total_seconds()))
        return low + timedelta(seconds=seconds)

    def guid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def maybe(self, share: float) -> bool:
        return self.random() < share

    # -- campaigns, forms, accounts, companies

    def campaigns(self) -> Iterator[PlannedCampaign]:
        rng = self.rng
        for key in range(self.plan.campaigns):
            theme = CAMPAIGN_THEMES[key % len(CAMPAIGN_THEMES)]
            name = f"{theme} {2025 + key // len(CAMPAIGN_THEMES) % 2}"
            if key >= 2 * len(CAMPAIGN_THEMES):
                name = f"{name} #{key}"
            # A third in both systems under one name, the rest split between them.
            where = key % 3
            campaign = PlannedCampaign(
                key, name, rng.choice(CAMPAIGN_TYPES), self.time_of(key, self.plan.campaigns)
                .date(), in_salesforce=where != 2, in_hubspot=where != 1)
            if campaign.in_salesforce:
                self.salesforce_campaigns.append(key)
            if campaign.in_hubspot:
                self.email_campaigns.append(key)
            yield campaign

    def forms(self) -> Iterator[PlannedForm]:
        for key, name in enumerate(FORM_NAMES):
            yield PlannedForm(key, name, self.guid())

    def domain(self, key: int) -> str:
        word = COMPANY_WORDS[self.rng.randrange(len(COMPANY_WORDS))][1]
        return f"{word}{key}.{self.rng.choice(TLDS)}"

    def company_name(self, key: int) -> str:
        word = COMPANY_WORDS[self.rng.randrange(len(COMPANY_WORDS))][0]
        return f"{word} {key} {self.rng.choice(COMPANY_SUFFIXES)}".strip()

    def accounts(self) -> Iterator[PlannedAccount]:
        count = self.plan.accounts
        for key in range(count):
            name = self.company_name(key)
            domain = self.account_domain(key)
            company = domain is not None and self.maybe(0.8)
            yield PlannedAccount(
                key, name, website_of(domain, self.rng) if domain else None,
                self.rng.choice(INDUSTRIES),
                company_domain_of(domain, self.rng) if domain and company else None,
                self.time_of(key, count))
            self.account_names.append(name)
            self.account_domains.append(domain)
            self.has_company.append(company)
            if company:
                self.company_keys.append(key)

    def account_domain(self, key: int) -> str | None:
        """About 70% have a Website; a few reuse an earlier account's domain (duplicates)."""
        if not self.maybe(0.7):
            return None
        known = [d for d in self.account_domains[-20:] if d]
        if known and self.maybe(0.04):
            return self.rng.choice(known)
        return self.domain(key)

    def companies(self) -> Iterator[PlannedCompany]:
        first = self.plan.accounts
        count = self.plan.hubspot_only_companies
        for number in range(count):
            key = first + number
            domain = self.domain(key) if self.maybe(0.85) else None
            self.company_keys.append(key)
            yield PlannedCompany(key, self.company_name(key), domain, self.time_of(number, count))

    # -- people (the hot path: about 30 random draws and 10 touches per person, so it uses
    # `pick`/`below` over `random()` rather than `choice`/`randrange`, a few times faster)

    def pick(self, items: Sequence[T]) -> T:
        return items[int(self.random() * len(items))]

    def below(self, count: float) -> int:
        return int(self.random() * count)

    def profile(self, key: int) -> Profile:
        if key < len(SHOWCASE):
            return SHOWCASE[key]
        random = self.random
        r = random()
        segment = "both" if r < 0.45 else "hubspot" if r < 0.75 else "salesforce"
        kind = None
        if segment != "hubspot":
            k = random()
            kind = ("Lead" if k < 0.5 else "Contact" if k < 0.8 else
                    "ConvertedLead" if k < 0.92 else "LeadAndContact")
        v = random()
        variant = "same" if segment != "both" or v < 0.6 else "case" if v < 0.9 else "space"
        return Profile(segment, kind, self.fate(("archived", "merged")),
                       self.fate(("deleted", "merged")) if kind in ("Lead", "Contact") else "live",
                       variant)

    def fate(self, fates: tuple[str, str]) -> str:
        r = self.random()
        return fates[0] if r < 0.02 else fates[1] if r < 0.04 else "live"

    def person(self, key: int) -> PlannedPerson:
        profile = self.profile(key)
        first = self.pick(FIRST_NAMES)
        last = self.pick(LAST_NAMES)
        account = self.person_account(profile)
        domain = self.account_domains[account] if account is not None else None
        email = f"{first[1]}.{last[1]}{key}@{domain or self.pick(FREE_MAIL)}"
        created = self.time_of(key, self.plan.scale)
        company = (self.account_names[account] if account is not None
                   else self.pick(self.account_names))
        salesforce = self.salesforce_side(profile, email, created)
        if account is not None and salesforce is not None:
            self.remember_contact(key, account, salesforce)
        return PlannedPerson(
            key, None if self.maybe(0.1) else first[0], last[0], email,
            None if self.maybe(0.2) else self.pick(TITLES), self.phone(), company, account,
            created, self.hubspot_side(profile, email, account), salesforce,
            self.touches(profile, created, salesforce))

    def phone(self) -> str | None:
        if self.maybe(0.3):
            return None
        return f"+1 555 01{self.below(100):02d} {self.below(10_000):04d}"

    def remember_contact(self, key: int, account: int, salesforce: SalesforceSide) -> None:
        """Live Contacts of an account are who opportunities' contact roles can name."""
        if salesforce.kind == "Lead" or salesforce.fate == "deleted":
            return
        people = self.contacts_by_account.get(account)
        if people is None:
            people = self.contacts_by_account[account] = []
            self.accounts_with_contacts.append(account)
        people.append(key)

    def person_account(self, profile: Profile) -> int | None:
        """Contacts always belong to an account; Leads and HubSpot-only people sometimes."""
        if profile.salesforce_kind in ("Contact", "ConvertedLead", "LeadAndContact"):
            return self.below(self.plan.accounts)
        return self.below(self.plan.accounts) if self.maybe(0.4) else None

    def hubspot_side(self, profile: Profile, email: str, account: int | None) -> HubSpotSide | None:
        if profile.segment == "salesforce":
            return None
        company = account if account is not None and self.has_company[account] else None
        if company is None and self.maybe(0.6):
            company = self.pick(self.company_keys)
        stage = self.pick(HUBSPOT_STAGES) if self.maybe(0.9) else None
        # HubSpot stores a contact's email trimmed and lower-cased, and the Salesforce
        # emulator refuses an Email with surrounding spaces (INVALID_EMAIL_ADDRESS), so the
        # whitespace variant lives where people type it: the form submissions' `email` value.
        typed = f"  {email_in_case(email)} " if profile.email_variant == "space" else email
        return HubSpotSide(email, typed, stage, company, self.maybe(0.85),
                           self.pick(HUBSPOT_SOURCES), profile.hubspot_fate)

    def salesforce_side(self, profile: Profile, email: str, created: datetime
                        ) -> SalesforceSide | None:
        kind = profile.salesforce_kind
        if kind is None:
            return None
        # The case variant goes to Salesforce: HubSpot stores emails lower-cased.
        stored = email_in_case(email) if profile.email_variant == "case" else email
        status = self.pick(LEAD_STATUSES) if kind in ("Lead", "LeadAndContact") else None
        label = self.pick(SALESFORCE_STAGE_LABELS) if self.maybe(0.3) else None
        converted_at = self.between(created, self.plan.anchor) if kind == "ConvertedLead" else None
        return SalesforceSide(kind, stored, status, label, self.pick(LEAD_SOURCES),
                              profile.salesforce_fate, converted_at)

    def touches(self, profile: Profile, created: datetime,
                salesforce: SalesforceSide | None) -> tuple[PlannedTouch, ...]:
        """About `touches_per_person` on average (uniform on 0..2x) over the kinds the
        person's systems can hold, plus up to two non-responded campaign members."""
        kinds = (HS_TOUCH_KINDS if profile.segment == "hubspot" else SF_TOUCH_KINDS
                 if profile.segment == "salesforce" else HS_TOUCH_KINDS + SF_TOUCH_KINDS)
        # Touches of a converted lead happen before its conversion (a converted lead takes
        # no new campaign members).
        end = self.plan.anchor
        if salesforce is not None and salesforce.converted_at is not None:
            end = salesforce.converted_at
        low, width = created.timestamp(), (end - created).total_seconds()
        count = self.below(2 * self.plan.touches_per_person + 1)
        extra = self.below(3) if salesforce is not None else 0
        return self.draw_touches(kinds, count, extra, low, width)

    def draw_touches(self, kinds: tuple[str, ...], count: int, extra: int, low: float,
                     width: float) -> tuple[PlannedTouch, ...]:
        """`count` touches of the given kinds then `extra` non-responded campaign members,
        at most one member per campaign (Salesforce refuses a duplicate membership).
        One flat loop with locals: this builds about ten million tuples per million people."""
        random, stamp, kinds_n = self.random, datetime.fromtimestamp, len(kinds)
        forms, emails = self.plan.forms, len(self.email_campaigns)
        campaigns = len(self.salesforce_campaigns)
        taken: set[int] = set()
        touches: list[PlannedTouch] = []
        for number in range(count + extra):
            kind = kinds[int(random() * kinds_n)] if number < count else "campaign_response"
            at = stamp(low + int(random() * width), UTC)
            if kind == "form_submission":
                touch = PlannedTouch(kind, at, int(random() * forms), None, True, self.event_id())
            elif kind == "email_click":
                touch = PlannedTouch(kind, at, int(random() * emails), None, True, self.event_id())
            elif kind == "campaign_response":
                source = free_campaign(int(random() * campaigns), campaigns, taken)
                if source is None:
                    continue
                touch = PlannedTouch(kind, at, source, None, number < count, "")
            else:
                types = TASK_TYPES if kind == "task" else EVENT_TYPES
                touch = PlannedTouch(kind, at, 0, types[int(random() * 4)], True, "")
            touches.append(touch)
        return tuple(touches)

    def event_id(self) -> str:
        """A UUID-shaped id for a submission or click: the seed's prefix and a counter, far
        cheaper than a random UUID per touch and just as unique within the org."""
        return f"{self.id_prefix}{next(self.event_numbers):012x}"

    # -- opportunities

    def opportunity(self, key: int) -> PlannedOpportunity:
        rng = self.rng
        account = self.opportunity_account()
        created = self.time_of(key, self.plan.opportunities)
        r = rng.random()
        stage = rng.choice(OPEN_STAGES) if r < 0.5 else "Closed Won" if r < 0.75 else "Closed Lost"
        close = created.date() + timedelta(days=rng.randrange(7, 150))
        amount = None if self.maybe(0.05) else float(rng.randrange(10, 2000) * 100)
        campaign = rng.randrange(len(self.salesforce_campaigns)) if self.maybe(0.3) else None
        return PlannedOpportunity(
            key, f"{self.account_names[account]} — deal {key}", account, stage, amount, close,
            created, campaign, self.contact_roles(account))

    def opportunity_account(self) -> int:
        """Three in four on accounts that have contacts, so contact roles are possible."""
        if self.accounts_with_contacts and self.maybe(0.75):
            return self.rng.choice(self.accounts_with_contacts)
        return self.rng.randrange(self.plan.accounts)

    def contact_roles(self, account: int) -> tuple[tuple[int, str], ...]:
        people = self.contacts_by_account.get(account, [])
        if not people or not self.maybe(0.65):
            return ()
        chosen = self.rng.sample(people, min(len(people), self.rng.randint(1, 3)))
        return tuple((person, self.rng.choice(CONTACT_ROLES)) for person in chosen)


def website_of(domain: str, rng: random.Random) -> str:
    """A Website as people type them: scheme or not, `www.` or not, a path or not."""
    forms = (f"https://www.{domain}/about", domain, f"http://{domain}", f"www.{domain}",
             f"https://{domain}/", f"HTTPS://WWW.{domain.upper()}")
    return forms[rng.randrange(len(forms))]


def company_domain_of(domain: str, rng: random.Random) -> str:
    """The HubSpot company's domain: the same domain, in another case or with `www.`."""
    forms = (domain, domain.upper(), f"www.{domain}", domain.capitalize())
    return forms[rng.randrange(len(forms))]


def email_in_case(email: str) -> str:
    """The same address in mixed case (`Emma.Smith12@Acme12.Com`)."""
    return ".".join(part.capitalize() for part in email.split("."))


def free_campaign(wanted: int, campaigns: int, taken: set[int]) -> int | None:
    """`wanted`, or the next campaign the person is not yet a member of (None: all taken)."""
    for step in range(campaigns):
        candidate = (wanted + step) % campaigns
        if candidate not in taken:
            taken.add(candidate)
            return candidate
    return None

"""The in-memory Salesforce org behind the emulator: schema, records, validation, seeding.

Records are stored in wire form (the JSON the REST API answers, `values`) as `Row`s
(`tables`). Rows are replaced, never mutated, on every write: a query locator that holds rows
therefore pages through a snapshot, as Salesforce's server-side cursors do.

Every write goes through the same checks the API applies (wire reference 2.5 and 2.10), so
seeding a test org with bad data fails the way a real org would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any

from connectors.loopback import utc_now

from .ids import IdMaker, to_id18
from .schema import (
    NAME_FROM_PARTS,
    STAGES,
    FieldSpec,
    SObjectSpec,
    build_schema,
    make_field,
)
from .tables import LookupIndex, Row, Rule, Selection, Table
from .values import OrgError, coerce, parse_datetime, wire_datetime

Screen = Callable[[str, Mapping[str, Any]], bool]

NOT_SUPPORTED = (
    "sObject type '{}' is not supported. If you are attempting to use a custom object, be sure "
    "to append the '__c' after the entity name. Please reference your WSDL or the describe "
    "call for the appropriate names."
)


# -- the org -------------------------------------------------------------------------------


class Org:
    """An in-memory Salesforce org: schema, records, and the checks every write goes through."""

    def __init__(self, *, clock: Callable[[], datetime] | None = None) -> None:
        self.clock = clock or utc_now
        self._ids = IdMaker()
        self._stamp_cache: tuple[datetime | None, str] = (None, "")
        self.org_id = self._new_id("00D")
        self.user_id = self._new_id("005")
        specs = build_schema()
        self._tables: dict[str, Table] = {name: Table(spec) for name, spec in specs.items()}
        self._by_lower = {name.lower(): name for name in self._tables}
        self._by_prefix = {t.spec.key_prefix: name for name, t in self._tables.items()}
        self._members: dict[tuple[str, str], str] = {}
        # Child row ids by the parent id a lookup names (`Table.child_fields`): merge,
        # conversion and primary contact roles read a record's children here instead of
        # scanning every table. A value held by one child is its id, not a list (most are).
        self._children: dict[str, str | list[str]] = {}
        self._journal: list[Callable[[], None]] | None = None
        self._describe_cache: dict[str, dict[str, Any]] = {}
        self._seed_system()

    # -- seeding the things every org has --

    def _seed_system(self) -> None:
        stamp = self._stamp(None)
        user = Row(
            Id=self.user_id, Username="integration@syncd.example", LastName="Integration",
            FirstName="syncd", Name="syncd Integration", Email="integration@syncd.example",
            Alias="syncd", IsActive=True, IsDeleted=False, CreatedDate=stamp,
            CreatedById=self.user_id, LastModifiedDate=stamp, LastModifiedById=self.user_id,
            SystemModstamp=stamp,
        )
        self._put(self._tables["User"], user, None)
        for order, (name, probability, closed, won, forecast) in enumerate(STAGES, start=1):
            stage = Row(
                Id=self._new_id("01J"), ApiName=name, MasterLabel=name, IsActive=True,
                IsClosed=closed, IsWon=won, DefaultProbability=float(probability),
                ForecastCategoryName=forecast, SortOrder=order, IsDeleted=False,
                CreatedDate=stamp, CreatedById=self.user_id, LastModifiedDate=stamp,
                LastModifiedById=self.user_id, SystemModstamp=stamp,
            )
            self._put(self._tables["OpportunityStage"], stage, None)

    def set_username(self, username: str) -> None:
        """Rename the integration user (the emulator's configured login)."""
        table = self._tables["User"]
        row = Row(table.rows[self.user_id])
        row["Username"] = row["Email"] = username
        self._put(table, row, table.rows[self.user_id])

    # -- schema --

    def sobject_names(self) -> list[str]:
        return list(self._tables)

    def spec(self, sobject: str) -> SObjectSpec:
        return self._table(sobject).spec

    def resolve(self, sobject: str) -> str | None:
        """The canonical name of an sObject (names are case-insensitive), or None."""
        return self._by_lower.get(sobject.lower())

    def _table(self, sobject: str) -> Table:
        name = self._by_lower.get(sobject.lower())
        if name is None:
            raise OrgError("INVALID_TYPE", NOT_SUPPORTED.format(sobject))
        return self._tables[name]

    def describe(self, sobject: str, version: str = "59.0") -> dict[str, Any]:
        """The describe of an sObject (cached until its schema changes)."""
        table = self._table(sobject)
        key = f"{table.spec.name}/{version}"
        if key not in self._describe_cache:
            self._describe_cache[key] = table.spec.describe(version)
        return self._describe_cache[key]

    def add_field(self, sobject: str, name: str, type: str, **attributes: Any) -> None:
        """Add a custom field; attributes use describe's names (`externalId`, `length`...)."""
        table = self._table(sobject)
        spec = make_field(name, type, **attributes)
        table.spec.add(spec)
        if spec.indexed:
            index = LookupIndex()
            for row in table.rows.values():
                if not row["IsDeleted"] and row.get(name) is not None:
                    index.add(row[name], row["Id"])
            table.indexes[name] = index
        table.refresh_child_fields()
        self._describe_cache.clear()

    def remove_field(self, sobject: str, name: str) -> None:
        table = self._table(sobject)
        canonical = table.spec.canonical(name)
        if canonical is None:
            raise OrgError("INVALID_FIELD", f"No such column '{name}' on sobject of type {sobject}")
        table.spec.remove(canonical)
        table.indexes.pop(canonical, None)
        table.refresh_child_fields()
        self._describe_cache.clear()

    def add_validation_rule(self, sobject: str, rule: Rule) -> None:
        """`rule(record)` returns a message to refuse the write, or None to accept it."""
        self._table(sobject).rules.append(rule)

    # -- reading --

    def get(self, sobject: str, record_id: str) -> dict[str, Any]:
        """A copy of a record (deleted ones too) with every field of the schema."""
        table = self._table(sobject)
        row = table.rows.get(record_id) or table.rows.get(to_id18(record_id) or "")
        if row is None:
            raise OrgError("NOT_FOUND", "The requested resource does not exist")
        return table.spec.full(row)

    def records(self, sobject: str, *, include_deleted: bool = False) -> list[dict[str, Any]]:
        table = self._table(sobject)
        return [
            table.spec.full(row)
            for row in table.rows.values()
            if include_deleted or not row["IsDeleted"]
        ]

    def rows(self, sobject: str) -> Iterator[Row]:
        """The stored rows of an object, deleted included (read-only; for the HTTP layer)."""
        return iter(self._table(sobject).rows.values())

    def row(self, sobject: str, record_id: str, *, writing: bool = False) -> Row:
        """A live stored row, or the error the REST API answers for that id."""
        table = self._table(sobject)
        stored = table.rows.get(record_id)  # an id exactly as stored: no checksum work
        canonical = record_id if stored is not None else to_id18(record_id)
        if canonical is None or not canonical.startswith(table.spec.key_prefix):
            raise OrgError(
                "MALFORMED_ID", f"{table.spec.label} ID: id value of incorrect type: {record_id}"
            )
        found = stored if stored is not None else table.rows.get(canonical)
        if found is None:
            raise OrgError("NOT_FOUND", "The requested resource does not exist")
        if found["IsDeleted"]:
            if writing:
                raise OrgError("ENTITY_IS_DELETED", "entity is deleted")
            raise OrgError("NOT_FOUND", "The requested resource does not exist")
        return found

    def find(self, sobject: str, field_name: str, value: object) -> list[str]:
        """Live record ids whose external-id (or idLookup) field equals value."""
        table = self._table(sobject)
        if field_name == "Id":
            canonical = to_id18(value)
            row = table.rows.get(canonical or "")
            return [row["Id"]] if row is not None and not row["IsDeleted"] else []
        return table.indexes[field_name].find(value)

    def find_one(self, sobject: str, field_name: str, value: object) -> str | None:
        """The live record an upsert by this external id updates (None: it inserts); more
        than one is Salesforce's DUPLICATE_EXTERNAL_ID."""
        matches = self.find(sobject, field_name, value)
        if len(matches) > 1:
            raise OrgError(
                "DUPLICATE_EXTERNAL_ID",
                f"{field_name}: more than one record found for external id field: {matches}",
                [field_name],
            )
        return matches[0] if matches else None

    def deleted_log(self, sobject: str) -> list[tuple[str, str]]:
        return list(self._table(sobject).deleted_log)

    def select(self, soql: str, *, include_deleted: bool, version: str = "59.0") -> Selection:
        """Evaluate a SOQL query once: rows matched, ordered, offset and limited."""
        from .soql import Relationship, SoqlError
        from .soql_parser import parse

        try:
            query = parse(soql)
            name = self.resolve(query.sobject)
            if name is None:
                raise query.invalid_type_error()
            table = self._tables[name]
            parents = {
                spec.relationship: Relationship(target, self._tables[target].spec.field_types())
                for spec in table.spec.fields.values()
                if spec.relationship and (target := spec.reference_to[0]) in self._tables
            }
            binding = query.bind(
                table.spec.field_types(), now=self.clock(), relationships=parents,
                resolve_parent=self._parent_resolver(table.spec, version),
            )
        except SoqlError as error:
            raise OrgError(error.error_code, error.message) from None
        matches = binding.matches
        rows = [
            row
            for row in table.rows.values()
            if (include_deleted or not row["IsDeleted"]) and matches(row)
        ]
        return Selection(
            sobject=table.spec.name,
            rows=binding.order(rows),
            count_only=bool(query.count_only),
            columns=list(binding.canonical_fields),
            project=binding.project,
        )

    def _parent_resolver(
        self, spec: SObjectSpec, version: str
    ) -> Callable[[str, Mapping[str, Any]], Mapping[str, Any] | None]:
        """Finds the parent a relationship field (`Account.Name`) reads from."""
        keys = {f.relationship: f.name for f in spec.fields.values() if f.relationship}

        def parent(relationship: str, record: Mapping[str, Any]) -> Mapping[str, Any] | None:
            parent_id = record.get(keys.get(relationship, ""))
            target = self._by_prefix.get(str(parent_id)[:3]) if parent_id else None
            row = self._tables[target].rows.get(str(parent_id)) if target else None
            if row is None or target is None:
                return None
            url = f"/services/data/v{version}/sobjects/{target}/{parent_id}"
            return {"attributes": {"type": target, "url": url}, **row}

        return parent

    # -- transactions --

    @contextmanager
    def atomic(self) -> Iterator[Callable[[], None]]:
        """Journal writes; the yielded function undoes all of them (allOrNone collections)."""
        outer = self._journal
        journal: list[Callable[[], None]] = []
        self._journal = journal

        def rollback() -> None:
            while journal:
                journal.pop()()

        try:
            yield rollback
        finally:
            self._journal = outer

    def _remember(self, undo: Callable[[], None]) -> None:
        if self._journal is not None:
            self._journal.append(undo)

    # -- writing --

    def insert(
        self,
        sobject: str,
        fields: Mapping[str, Any],
        *,
        at: datetime | None = None,
        screen: Screen | None = None,
    ) -> str:
        """Create a record; returns its 18-character id. `screen` may refuse it (faults)."""
        table = self._table(sobject)
        spec = table.spec
        if not spec.createable:
            raise OrgError("INVALID_TYPE", f"entity type cannot be inserted: {spec.name}")
        changes = self._changes(spec, fields, creating=True)
        stamp = self._stamp(at)
        row = Row(spec.defaults)
        if spec.has_owner:
            row["OwnerId"] = self.user_id
        row.update(changes)
        row["Id"] = self._new_id(spec.key_prefix)
        row["CreatedDate"] = row["LastModifiedDate"] = row["SystemModstamp"] = stamp
        row["CreatedById"] = row["LastModifiedById"] = self.user_id
        self._derive(spec.name, row, changes, stamp)
        self._check(table, row, screen)
        self._commit(table, row, None)
        return str(row["Id"])

    def update(
        self,
        sobject: str,
        record_id: str,
        fields: Mapping[str, Any],
        *,
        at: datetime | None = None,
        screen: Screen | None = None,
    ) -> None:
        table = self._table(sobject)
        old = self.row(sobject, record_id, writing=True)
        if not table.spec.updateable:
            raise OrgError("INVALID_TYPE", f"entity type cannot be updated: {table.spec.name}")
        if old["IsConverted"] and table.spec.name == "Lead":
            raise OrgError("CANNOT_UPDATE_CONVERTED_LEAD", "cannot reference converted lead")
        changes = self._changes(table.spec, fields, creating=False)
        row = Row(old)
        row.update(changes)
        self._touch(row, self._stamp(at))
        self._derive(table.spec.name, row, changes, row["SystemModstamp"])
        self._check(table, row, screen)
        self._commit(table, row, old)

    def delete(self, sobject: str, record_id: str, *, at: datetime | None = None) -> None:
        """Soft delete: the row stays, IsDeleted, visible to queryAll and getDeleted only."""
        table = self._table(sobject)
        old = self.row(sobject, record_id, writing=True)
        if not table.spec.deletable:
            raise OrgError("INVALID_TYPE", f"entity type cannot be deleted: {table.spec.name}")
        row = Row(old)
        row["IsDeleted"] = True
        self._touch(row, self._stamp(at))
        self._commit(table, row, old)
        entry = (str(row["Id"]), str(row["SystemModstamp"]))
        table.deleted_log.append(entry)
        self._remember(lambda: table.deleted_log.remove(entry))

    def merge(
        self, sobject: str, master_id: str, loser_id: str, *, at: datetime | None = None
    ) -> None:
        """Merge loser into master: the loser is deleted with MasterRecordId, children move."""
        table = self._table(sobject)
        if not table.spec.mergeable:
            raise OrgError("INVALID_TYPE", f"entity type cannot be merged: {table.spec.name}")
        master = self.row(sobject, master_id, writing=True)
        loser = self.row(sobject, loser_id, writing=True)
        stamp = self._stamp(at)
        self._reparent(table.spec.name, str(loser["Id"]), str(master["Id"]), stamp)
        self.delete(sobject, str(loser["Id"]), at=at)
        dead = Row(table.rows[loser["Id"]])
        dead["MasterRecordId"] = master["Id"]
        self._commit(table, dead, table.rows[loser["Id"]])
        touched = Row(master)
        self._touch(touched, stamp)
        self._commit(table, touched, master)

    def convert_lead(
        self,
        lead_id: str,
        *,
        account_id: str | None = None,
        contact_id: str | None = None,
        opportunity_name: str | None = None,
        at: datetime | None = None,
    ) -> dict[str, str | None]:
        """Convert a lead (SOAP `convertLead` has no REST form; this is the test hook)."""
        lead = self.row("Lead", lead_id, writing=True)
        if lead["IsConverted"]:
            raise OrgError("CANNOT_UPDATE_CONVERTED_LEAD", "cannot reference converted lead")
        moment = at or self.clock()
        account = account_id or self._account_from_lead(lead, moment)
        contact = self._contact_from_lead(lead, account, contact_id, moment)
        opportunity = None
        if opportunity_name is not None:
            opportunity = self._opportunity_from_lead(
                lead, account, contact, opportunity_name, moment
            )
        self._move_members_to_contact(str(lead["Id"]), contact, moment)
        self._mark_converted(lead, account, contact, opportunity, moment)
        return {
            "leadId": str(lead["Id"]),
            "accountId": account,
            "contactId": contact,
            "opportunityId": opportunity,
        }

    # -- conversion steps --

    def _account_from_lead(self, lead: Row, moment: datetime) -> str:
        fields = {"Name": lead["Company"], "Website": lead["Website"], "Phone": lead["Phone"]}
        if lead["Industry"] is not None:
            fields["Industry"] = lead["Industry"]
        return self.insert("Account", _present(fields), at=moment)

    def _contact_from_lead(
        self, lead: Row, account: str, contact_id: str | None, moment: datetime
    ) -> str:
        copied = _present({
            "FirstName": lead["FirstName"], "LastName": lead["LastName"],
            "Email": lead["Email"], "Title": lead["Title"], "Phone": lead["Phone"],
            "LeadSource": lead["LeadSource"], "HasOptedOutOfEmail": lead["HasOptedOutOfEmail"],
        })
        if contact_id is None:
            return self.insert("Contact", {**copied, "AccountId": account}, at=moment)
        # Converting into an existing contact only fills its blank fields.
        existing = self.row("Contact", contact_id, writing=True)
        blanks = {k: v for k, v in copied.items() if existing[k] in (None, "")}
        self.update("Contact", contact_id, blanks, at=moment)
        return str(existing["Id"])

    def _opportunity_from_lead(
        self, lead: Row, account: str, contact: str, name: str, moment: datetime
    ) -> str:
        fields: dict[str, Any] = {
            "Name": name, "AccountId": account, "StageName": STAGES[0][0],
            "CloseDate": _quarter_end(moment.astimezone(UTC).date()),
        }
        if lead["LeadSource"] is not None:
            fields["LeadSource"] = lead["LeadSource"]
        campaign = self._latest_campaign(str(lead["Id"]))
        if campaign is not None:
            # Primary Campaign Source from the lead's most recent campaign [reported][verify].
            fields["CampaignId"] = campaign
        opportunity = self.insert("Opportunity", fields, at=moment)
        self.insert(
            "OpportunityContactRole",
            {"OpportunityId": opportunity, "ContactId": contact, "IsPrimary": True},
            at=moment,
        )
        return opportunity

    def _latest_campaign(self, lead_id: str) -> str | None:
        members = self._live_members(lead_id)
        if not members:
            return None
        return str(max(members, key=lambda row: (row["CreatedDate"], row["Id"]))["CampaignId"])

    def _move_members_to_contact(self, lead_id: str, contact: str, moment: datetime) -> None:
        table = self._tables["CampaignMember"]
        stamp = self._stamp(moment)
        for old in self._live_members(lead_id):
            row = Row(old)
            row["ContactId"] = contact
            self._touch(row, stamp)
            self._derive("CampaignMember", row, {"ContactId": contact}, stamp)
            self._commit(table, row, old)

    def _live_members(self, lead_id: str) -> list[Row]:
        return [row for table, row in self._children_of(lead_id)
                if table.spec.name == "CampaignMember" and row["LeadId"] == lead_id
                and not row["IsDeleted"]]

    def _children_of(self, parent_id: str) -> list[tuple[Table, Row]]:
        """Rows whose indexed lookups name `parent_id` (deleted ones too), in the order they
        came to name it; a snapshot, so the caller may rewrite them."""
        held = self._children.get(parent_id)
        if held is None:
            return []
        found = []
        for child_id in [held] if isinstance(held, str) else list(held):
            table = self._tables[self._by_prefix[child_id[:3]]]
            row = table.rows.get(child_id)
            if row is not None:
                found.append((table, row))
        return found

    def _mark_converted(
        self, lead: Row, account: str, contact: str, opportunity: str | None, moment: datetime
    ) -> None:
        table = self._tables["Lead"]
        row = Row(lead)
        row.update(
            IsConverted=True, ConvertedDate=moment.astimezone(UTC).date().isoformat(),
            ConvertedAccountId=account, ConvertedContactId=contact,
            ConvertedOpportunityId=opportunity, Status="Closed - Converted",
        )
        self._touch(row, self._stamp(moment))
        self._commit(table, row, lead)

    def _reparent(self, sobject: str, loser: str, master: str, stamp: str) -> None:
        """Point every lookup to the merge loser at the master (merge semantics)."""
        for table, old in self._children_of(loser):
            moved = {name: master for name in table.reparented(sobject) if old.get(name) == loser}
            if moved:
                row = Row(old)
                row.update(moved)
                self._touch(row, stamp)
                self._commit(table, row, old)

    # -- the write pipeline --

    def _changes(
        self, spec: SObjectSpec, fields: Mapping[str, Any], *, creating: bool
    ) -> dict[str, Any]:
        """Fields of a write, checked for existence and access, in wire form."""
        changes: dict[str, Any] = {}
        for key, value in fields.items():
            if key == "attributes":
                continue
            field_spec = spec.fields.get(key)  # the exact API name, else case-insensitively
            if field_spec is None:
                name = spec.canonical(key)
                if name is None:
                    raise OrgError(
                        "INVALID_FIELD", f"No such column '{key}' on sobject of type {spec.name}"
                    )
                field_spec = spec.fields[name]
            name = field_spec.name
            if not (field_spec.createable if creating else field_spec.updateable):
                raise OrgError(
                    "INVALID_FIELD_FOR_INSERT_UPDATE",
                    f"Unable to create/update fields: {name}. Please check the security "
                    "settings of this field and verify that it is read/write for your "
                    "profile or permission set.",
                    [name],
                )
            if type(value) is str and len(value) <= field_spec.length:
                # The common cases, checked without the general coercion: plain text, an
                # id as stored, a known picklist value.
                if field_spec.plain:
                    changes[name] = value
                    continue
                if field_spec.type == "picklist" and value in field_spec.values:
                    changes[name] = value
                    continue
            wire: Any = coerce(field_spec, value)
            if field_spec.type == "reference" and wire is not None:
                wire = self._reference(field_spec, wire)
            elif field_spec.restricted and wire is not None and wire not in field_spec.values:
                raise OrgError(
                    "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                    f"{field_spec.label}: bad value for restricted picklist field: {wire}",
                    [name],
                )
            changes[name] = wire
        return changes

    def _reference(self, spec: FieldSpec, value: str) -> str:
        # Fast path: an id exactly as stored (what seeding and most clients send).
        held = self._by_prefix.get(value[:3])
        if held in spec.reference_to and len(value) == 18:
            row = self._tables[str(held)].rows.get(value)
            if row is not None and not row["IsDeleted"]:
                return value
        canonical = to_id18(value)
        if canonical is None:
            raise OrgError(
                "MALFORMED_ID", f"{spec.label}: id value of incorrect type: {value}", [spec.name]
            )
        target = self._by_prefix.get(canonical[:3])
        if target not in spec.reference_to:
            raise OrgError(
                "FIELD_INTEGRITY_EXCEPTION",
                f"{spec.label}: id value of incorrect type: {value}",
                [spec.name],
            )
        row = self._tables[target].rows.get(canonical)
        if row is None or row["IsDeleted"]:
            raise OrgError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [spec.name])
        return canonical

    def _derive(self, sobject: str, row: Row, changes: Mapping[str, Any], stamp: str) -> None:
        """Read-only fields Salesforce computes from the others."""
        if sobject in NAME_FROM_PARTS:
            row["Name"] = " ".join(p for p in (row["FirstName"], row["LastName"]) if p) or None
        elif sobject == "Opportunity":
            self._derive_stage(row, changes)
        elif sobject == "CampaignMember":
            row["HasResponded"] = row["Status"] == "Responded"
            if row["HasResponded"] and row["FirstRespondedDate"] is None:
                row["FirstRespondedDate"] = stamp[:10]
            row["LeadOrContactId"] = row["ContactId"] or row["LeadId"]
            row["Type"] = "Contact" if row["ContactId"] else "Lead"
        elif sobject == "Task":
            row["IsClosed"] = row["Status"] == "Completed"
        elif sobject == "Event" and row["StartDateTime"] is not None:
            if row["EndDateTime"] is None:
                start = parse_datetime(str(row["StartDateTime"]))
                row["EndDateTime"] = wire_datetime(start + timedelta(hours=1)) if start else None
            row["ActivityDate"] = str(row["StartDateTime"])[:10]

    def _derive_stage(self, row: Row, changes: Mapping[str, Any]) -> None:
        if "StageName" not in changes and "IsClosed" in row:
            return
        stage = self._tables["OpportunityStage"].indexes["ApiName"].find(row["StageName"])
        if not stage:
            return
        info = self._tables["OpportunityStage"].rows[stage[0]]
        row["IsClosed"], row["IsWon"] = info["IsClosed"], info["IsWon"]
        if "Probability" not in changes:
            row["Probability"] = info["DefaultProbability"]
        if "ForecastCategoryName" not in changes:
            row["ForecastCategoryName"] = info["ForecastCategoryName"]

    def _check(self, table: Table, row: Row, screen: Screen | None) -> None:
        """Required fields, uniqueness, validation rules and the fault screen, in that order."""
        spec = table.spec
        missing = [name for name in spec.required if row[name] is None or row[name] == ""]
        if spec.name == "CampaignMember" and not (row["LeadId"] or row["ContactId"]):
            missing.extend(["LeadId", "ContactId"])
        if missing:
            raise OrgError(
                "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]",
                missing,
            )
        for name in spec.unique:
            if row[name] is not None:
                others = [i for i in table.indexes[name].find(row[name]) if i != row["Id"]]
                if others:
                    raise OrgError(
                        "DUPLICATE_VALUE",
                        f"duplicate value found: {name} duplicates value on record with id: "
                        f"{others[0]}",
                        [name],
                    )
        if spec.name == "CampaignMember":
            held = self._members.get(_membership(row))
            if held is not None and held != row["Id"]:
                raise OrgError("DUPLICATE_VALUE", "Already a campaign member.")
        for rule in table.rules:
            message = rule(row)
            if message:
                raise OrgError("FIELD_CUSTOM_VALIDATION_EXCEPTION", message)
        if screen is not None and screen(spec.name, row):
            raise OrgError(
                "FIELD_CUSTOM_VALIDATION_EXCEPTION",
                "Record rejected by a validation rule (emulator fault injection)",
            )

    def _commit(self, table: Table, row: Row, old: Row | None) -> None:
        self._put(table, row, old)
        if self._journal is not None:
            self._journal.append(lambda: self._put(table, old, row))
        if table.spec.name == "OpportunityContactRole" and row["IsPrimary"]:
            self._one_primary_role(table, row)

    def _one_primary_role(self, table: Table, primary: Row) -> None:
        """An opportunity has at most one primary contact role: setting one clears the rest."""
        for held, old in self._children_of(str(primary["OpportunityId"])):
            same = held is table and old["OpportunityId"] == primary["OpportunityId"]
            if same and old["IsPrimary"] and old["Id"] != primary["Id"] and not old["IsDeleted"]:
                row = Row(old)
                row["IsPrimary"] = False
                self._touch(row, str(primary["SystemModstamp"]))
                self._commit(table, row, old)

    def _put(self, table: Table, row: Row | None, old: Row | None) -> None:
        """Store `row` in place of `old` (either may be None), keeping every index in step."""
        for name, index in table.indexes.items():
            if old is not None and not old["IsDeleted"] and old.get(name) is not None:
                index.remove(old[name], old["Id"])
            if row is not None and not row["IsDeleted"] and row.get(name) is not None:
                index.add(row[name], row["Id"])
        if table.spec.name == "CampaignMember":
            if old is not None and not old["IsDeleted"]:
                self._members.pop(_membership(old), None)
            if row is not None and not row["IsDeleted"]:
                self._members[_membership(row)] = row["Id"]
        if table.child_fields:
            self._index_children(table.child_fields, row, old)
        if row is not None:
            table.rows[row["Id"]] = row
        elif old is not None:
            table.rows.pop(old["Id"], None)

    def _add_children(self, names: tuple[str, ...], row: Row) -> None:
        """`_index_children` for a new row: the common case, without the set arithmetic."""
        child_id: str = row["Id"]
        children = self._children
        last = None
        for name in names:
            parent = row[name]
            if parent is None or parent == last:  # LeadOrContactId repeats LeadId
                continue
            last = parent
            held = children.get(parent)
            if held is None:
                children[parent] = child_id
            elif isinstance(held, str):
                if held != child_id:
                    children[parent] = [held, child_id]
            elif held[-1] != child_id:
                held.append(child_id)

    def _index_children(self, names: tuple[str, ...], row: Row | None, old: Row | None) -> None:
        """Keep `_children` in step with a row's lookups (deleted rows stay indexed: a merge
        moves their lookups too)."""
        if old is None and row is not None:
            self._add_children(names, row)
            return
        before: set[str] = set() if old is None else {
            str(old[name]) for name in names if old.get(name) is not None}
        after: set[str] = set() if row is None else {
            str(row[name]) for name in names if row.get(name) is not None}
        if before == after:
            return
        child_id = str(row["Id"] if row is not None else old["Id"] if old is not None else "")
        children = self._children
        for parent in after - before:
            held = children.get(parent)
            if held is None:
                children[parent] = child_id
            elif isinstance(held, str):
                children[parent] = [held, child_id]
            else:
                held.append(child_id)
        for parent in before - after:
            held = children.get(parent)
            if held == child_id:
                del children[parent]
            elif isinstance(held, list) and child_id in held:
                held.remove(child_id)
                if len(held) == 1:
                    children[parent] = held[0]

    def _touch(self, row: Row, stamp: str) -> None:
        row["LastModifiedDate"] = row["SystemModstamp"] = stamp
        row["LastModifiedById"] = self.user_id

    def stamp(self, at: datetime | None = None) -> str:
        """A moment (default: now by the org's clock) in wire form."""
        return self._stamp(at)

    def _stamp(self, at: datetime | None) -> str:
        moment = at if at is not None else self.clock()
        cached_at, cached = self._stamp_cache
        if cached_at == moment:
            return cached
        text = wire_datetime(moment)
        self._stamp_cache = (moment, text)
        return text

    def _new_id(self, prefix: str) -> str:
        return self._ids(prefix)

    def new_id(self, prefix: str) -> str:
        """A fresh id with a key prefix (jobs `750`, query locators `01g`)."""
        return self._new_id(prefix)


def _membership(row: Row) -> tuple[str, str]:
    # A person is a campaign member once, whether they joined as a lead or as a contact.
    return (str(row["CampaignId"]), str(row["LeadId"] or row["ContactId"]))


def _present(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


def _quarter_end(day: date) -> date:
    # Conversion's default CloseDate is the end of the current quarter [reported].
    last_month = (day.month - 1) // 3 * 3 + 3
    if last_month == 12:
        return date(day.year, 12, 31)
    return date(day.year, last_month + 1, 1) - timedelta(days=1)

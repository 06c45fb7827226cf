"""The store's schema, as numbered migrations applied in order, each in one transaction.

A migration is never edited once released; a change to the schema is a new migration.
"""

from __future__ import annotations

MIGRATIONS: tuple[tuple[int, str, str], ...] = (
    (
        1,
        "pull: source records, cursors, runs, API usage",
        """
        CREATE TABLE source_record (
            system      TEXT NOT NULL,
            object      TEXT NOT NULL,
            id          TEXT NOT NULL,
            updated_at  TEXT NOT NULL,          -- the CRM's modification time, ISO 8601 UTC
            deleted     INTEGER NOT NULL DEFAULT 0,
            merged_into TEXT,
            data        TEXT NOT NULL,          -- the CRM's fields, JSON
            pulled_run  INTEGER NOT NULL,       -- the run that last changed this row
            PRIMARY KEY (system, object, id)
        ) WITHOUT ROWID;
        CREATE INDEX source_record_changed ON source_record (pulled_run);

        CREATE TABLE cursor (
            system      TEXT NOT NULL,
            stream      TEXT NOT NULL,
            cursor      TEXT NOT NULL,          -- the connector's own JSON
            watermark   TEXT,                   -- shown by `syncd status`
            saved_at    TEXT NOT NULL,
            run         INTEGER NOT NULL,
            PRIMARY KEY (system, stream)
        );

        CREATE TABLE run (
            id          INTEGER PRIMARY KEY,
            started_at  TEXT NOT NULL,
            finished_at TEXT,
            kind        TEXT NOT NULL,          -- once | daemon | dry-run
            status      TEXT NOT NULL,          -- running | ok | rejected | stopped | failed
            exit_code   INTEGER,
            options     TEXT NOT NULL DEFAULT '{}',
            summary     TEXT NOT NULL DEFAULT '{}',
            error       TEXT
        );

        CREATE TABLE api_usage (
            run         INTEGER NOT NULL,
            system      TEXT NOT NULL,
            calls       INTEGER NOT NULL,
            retries     INTEGER NOT NULL DEFAULT 0,
            throttled   INTEGER NOT NULL DEFAULT 0,
            limit_total INTEGER,
            remaining   INTEGER,
            details     TEXT NOT NULL DEFAULT '{}',
            recorded_at TEXT NOT NULL,
            PRIMARY KEY (run, system)
        );
        """,
    ),
    (
        2,
        "reconcile: unified entities, links, audit, duplicates, outbox, written values",
        """
        -- One row per unified entity. `fields` holds the unified values (JSON, by mapping field
        -- name), `sides` what each system last showed for each field and since when (JSON), so
        -- that two-way rules compare per-field change times and syncd's own echo is recognised.
        CREATE TABLE entity (
            kind        TEXT NOT NULL,          -- person | account | opportunity
            id          TEXT NOT NULL,          -- the syncd id, written as syncd_id / Syncd_Id__c
            match_key   TEXT,                   -- normalized email (person) or domain (account)
            fields      TEXT NOT NULL DEFAULT '{}',
            sides       TEXT NOT NULL DEFAULT '{}',
            merged_into TEXT,                   -- set when two entities turned out to be one
            created_run INTEGER NOT NULL,
            updated_run INTEGER NOT NULL,
            PRIMARY KEY (kind, id)
        ) WITHOUT ROWID;
        CREATE INDEX entity_match ON entity (kind, match_key) WHERE merged_into IS NULL;

        -- Which source record is which entity. A deleted or merged-away record keeps its row
        -- as a tombstone (state), so syncd never recreates what a person deleted.
        CREATE TABLE link (
            system      TEXT NOT NULL,
            object      TEXT NOT NULL,
            record_id   TEXT NOT NULL,
            kind        TEXT NOT NULL,
            entity_id   TEXT NOT NULL,
            state       TEXT NOT NULL DEFAULT 'live',  -- live | deleted | merged | converted
            created_at  TEXT,                   -- the record's creation time: the oldest wins
            linked_run  INTEGER NOT NULL,
            PRIMARY KEY (system, object, record_id)
        ) WITHOUT ROWID;
        CREATE INDEX link_entity ON link (kind, entity_id);

        CREATE TABLE opportunity_person (
            opportunity_id TEXT NOT NULL,
            person_id      TEXT NOT NULL,
            role           TEXT,
            is_primary     INTEGER NOT NULL DEFAULT 0,
            source_id      TEXT NOT NULL,               -- the OpportunityContactRole Id
            PRIMARY KEY (source_id)
        ) WITHOUT ROWID;
        CREATE INDEX opportunity_person_opp ON opportunity_person (opportunity_id);
        CREATE INDEX opportunity_person_person ON opportunity_person (person_id);

        CREATE TABLE audit (
            id          INTEGER PRIMARY KEY,
            run         INTEGER NOT NULL,
            kind        TEXT NOT NULL,
            entity_id   TEXT NOT NULL,
            field       TEXT NOT NULL,
            old_value   TEXT,
            new_value   TEXT,
            winner      TEXT NOT NULL,                  -- hubspot | salesforce | syncd | none
            rule        TEXT NOT NULL,
            at          TEXT NOT NULL
        );
        CREATE INDEX audit_entity ON audit (kind, entity_id);

        CREATE TABLE duplicate (
            system      TEXT NOT NULL,
            object      TEXT NOT NULL,
            record_id   TEXT NOT NULL,
            kind        TEXT NOT NULL,
            entity_id   TEXT NOT NULL,
            reason      TEXT NOT NULL,
            run         INTEGER NOT NULL,
            PRIMARY KEY (system, object, record_id)
        ) WITHOUT ROWID;

        -- What is to be written, one row per target record; rejected rows stay as errors.
        CREATE TABLE outbox (
            id          INTEGER PRIMARY KEY,
            run         INTEGER NOT NULL,
            system      TEXT NOT NULL,
            object      TEXT NOT NULL,
            kind        TEXT NOT NULL,
            entity_id   TEXT NOT NULL,
            operation   TEXT NOT NULL,                  -- update | upsert
            record_id   TEXT,                           -- update: the target record
            key_field   TEXT,                           -- upsert: the idempotency key field
            key         TEXT,
            fields      TEXT NOT NULL,                  -- JSON, the CRM's field names, wire values
            origins     TEXT NOT NULL DEFAULT '{}',  -- JSON: when each field's value was decided
            associations TEXT NOT NULL DEFAULT '[]',
            status      TEXT NOT NULL DEFAULT 'pending', -- pending | error
            attempts    INTEGER NOT NULL DEFAULT 0,
            error_code  TEXT,
            message     TEXT,
            created_at  TEXT NOT NULL,
            updated_at  TEXT NOT NULL,
            UNIQUE (system, object, kind, entity_id, operation, record_id)
        );
        CREATE INDEX outbox_status ON outbox (status);

        -- The last value syncd wrote to each target field, and when that value was decided:
        -- a pull that shows this value is syncd's own echo, not a new change.
        CREATE TABLE written (
            system      TEXT NOT NULL,
            object      TEXT NOT NULL,
            record_id   TEXT NOT NULL,
            field       TEXT NOT NULL,
            value       TEXT,
            origin_at   TEXT,
            run         INTEGER NOT NULL,
            PRIMARY KEY (system, object, record_id, field)
        ) WITHOUT ROWID;

        CREATE TABLE state (
            key         TEXT PRIMARY KEY,
            value       TEXT NOT NULL
        );
        """,
    ),
    (
        3,
        "derive: stage history, hand-offs, touchpoints, attribution credits",
        """
        -- The date each person first entered each stage (kept across passes and recycles).
        CREATE TABLE stage_history (
            person_id   TEXT NOT NULL,
            stage       TEXT NOT NULL,
            entered_at  TEXT NOT NULL,
            run         INTEGER NOT NULL,
            signal      TEXT NOT NULL,          -- what put the person there
            PRIMARY KEY (person_id, stage)
        ) WITHOUT ROWID;

        -- Marketing-qualified people handed to sales as Salesforce Leads, and sales' answer.
        CREATE TABLE handoff (
            person_id       TEXT PRIMARY KEY,
            qualified_at    TEXT NOT NULL,      -- handed to sales: the SLA clock starts
            lead_id         TEXT,               -- the Salesforce Lead (made by syncd or found)
            created_by_syncd INTEGER NOT NULL DEFAULT 0,
            owner_id        TEXT,
            first_touch_at  TEXT,               -- first Task/Event, or Status leaving its default
            first_touch     TEXT,               -- what that touch was
            run             INTEGER NOT NULL
        ) WITHOUT ROWID;

        CREATE TABLE touchpoint (
            id          TEXT PRIMARY KEY,       -- system:object:source id
            person_id   TEXT,                   -- NULL while its person is unknown
            at          TEXT NOT NULL,
            kind        TEXT NOT NULL,          -- campaign_response, email_click, event, ...
                                                -- form_submission or task
            label       TEXT NOT NULL,
            sales       INTEGER NOT NULL,       -- 1 for Tasks and Events
            source_id   TEXT NOT NULL,
            run         INTEGER NOT NULL
        ) WITHOUT ROWID;
        CREATE INDEX touchpoint_person ON touchpoint (person_id, at);

        CREATE TABLE credit (
            opportunity_id TEXT NOT NULL,
            model          TEXT NOT NULL,
            touchpoint_id  TEXT NOT NULL,
            share          REAL NOT NULL,
            amount         REAL NOT NULL,
            run            INTEGER NOT NULL,
            PRIMARY KEY (opportunity_id, model, touchpoint_id)
        ) WITHOUT ROWID;
        CREATE INDEX credit_touchpoint ON credit (touchpoint_id);

        -- A person's or an opportunity's account, for the `account` link mode.
        ALTER TABLE entity ADD COLUMN account_id TEXT;
        CREATE INDEX entity_account ON entity (kind, account_id) WHERE account_id IS NOT NULL;

        -- Sales activities by the person they are on (hand-off first touches, touchpoints).
        CREATE INDEX source_record_who ON source_record (json_extract(data, '$.WhoId'))
            WHERE system = 'salesforce' AND object IN ('Task', 'Event');

        -- HubSpot takes a lower lifecycle stage only once the value was cleared first.
        ALTER TABLE outbox ADD COLUMN clear_first TEXT NOT NULL DEFAULT '[]';

        -- What each opportunity's credits were computed from, to recompute only on change.
        CREATE TABLE attribution_input (
            opportunity_id TEXT PRIMARY KEY,
            digest         TEXT NOT NULL,
            run            INTEGER NOT NULL
        ) WITHOUT ROWID;
        """,
    ),
    (
        4,
        "reconcile at scale: entity as a rowid table, indexes for entity lookups",
        """
        -- Replacing an entity's plan and its reported duplicates: searched, not scanned.
        CREATE INDEX outbox_entity ON outbox (kind, entity_id);
        CREATE INDEX duplicate_entity ON duplicate (kind, entity_id);

        -- An entity's row (its fields and sides, about a kilobyte) is written three times a
        -- pass and read three times: as a rowid table, with its key a UNIQUE index (the
        -- upserts' conflict target), that costs half of what the WITHOUT ROWID b-tree of
        -- such large rows did. Every row and every index is kept.
        CREATE TABLE entity_rowid (
            kind        TEXT NOT NULL,
            id          TEXT NOT NULL,
            match_key   TEXT,
            fields      TEXT NOT NULL DEFAULT '{}',
            sides       TEXT NOT NULL DEFAULT '{}',
            merged_into TEXT,
            created_run INTEGER NOT NULL,
            updated_run INTEGER NOT NULL,
            account_id  TEXT
        );
        INSERT INTO entity_rowid (kind, id, match_key, fields, sides, merged_into, created_run,
                                  updated_run, account_id)
            SELECT kind, id, match_key, fields, sides, merged_into, created_run, updated_run,
                   account_id
            FROM entity ORDER BY kind, id;
        DROP TABLE entity;
        ALTER TABLE entity_rowid RENAME TO entity;
        CREATE UNIQUE INDEX entity_key ON entity (kind, id);
        CREATE INDEX entity_match ON entity (kind, match_key) WHERE merged_into IS NULL;
        CREATE INDEX entity_account ON entity (kind, account_id) WHERE account_id IS NOT NULL;
        """,
    ),
    (
        5,
        "attribution at scale: touches read from an index, won credit per label and person",
        """
        -- A person's touches in time order from the index alone (it carries the id, the
        -- table's key): computing credits reads every touch of every opportunity's people,
        -- and a lookup in the table per touch cost five times reading the index.
        DROP INDEX touchpoint_person;
        CREATE INDEX touchpoint_person
            ON touchpoint (person_id, at, kind, label, sales, source_id);
        -- Touches saved by a pass, and touches an open window grew to take in.
        CREATE INDEX touchpoint_run ON touchpoint (run, person_id);
        CREATE INDEX touchpoint_at ON touchpoint (at, person_id);
        -- Entities and links saved by a pass, without reading every row.
        CREATE INDEX entity_updated ON entity (kind, updated_run);
        CREATE INDEX link_linked ON link (kind, linked_run, entity_id);

        -- Each won opportunity's credited amount per model and touch label (lower-cased), in
        -- cents, rewritten with its credits: a Campaign's revenue is a sum of these rather
        -- than of every credit of every touch of its name.
        CREATE TABLE credit_label (
            opportunity_id TEXT NOT NULL,
            model          TEXT NOT NULL,
            label          TEXT NOT NULL,
            cents          INTEGER NOT NULL,
            PRIMARY KEY (opportunity_id, model, label)
        ) WITHOUT ROWID;
        CREATE INDEX credit_label_sum ON credit_label (model, label, cents);
        -- And per person whose touches it credited: a person's attributed revenue.
        CREATE TABLE credit_person (
            opportunity_id TEXT NOT NULL,
            model          TEXT NOT NULL,
            person_id      TEXT NOT NULL,
            cents          INTEGER NOT NULL,
            PRIMARY KEY (opportunity_id, model, person_id)
        ) WITHOUT ROWID;
        CREATE INDEX credit_person_sum ON credit_person (model, person_id, cents);

        -- Both fill as credits are computed: the next pass computes every
        -- opportunity again (the same credits, so nothing new is written back).
        DELETE FROM attribution_input;
        DELETE FROM state WHERE key = 'attribution_through_run';
        """,
    ),
    (
        6,
        "pull at scale: source_record as a rowid table",
        """
        -- A WITHOUT ROWID table keeps whole rows in its interior b-tree pages too, and suits
        -- rows far smaller than a CRM record's JSON (300 bytes to over 1 KB): few rows fit a
        -- page, so every stored page rewrote many. As a rowid table the rows sit in the leaves
        -- only and the key is a UNIQUE index (the upsert's conflict target). Every row and
        -- every index is kept.
        CREATE TABLE source_record_rowid (
            system      TEXT NOT NULL,
            object      TEXT NOT NULL,
            id          TEXT NOT NULL,
            updated_at  TEXT NOT NULL,          -- the CRM's modification time, ISO 8601 UTC
            deleted     INTEGER NOT NULL DEFAULT 0,
            merged_into TEXT,
            data        TEXT NOT NULL,          -- the CRM's fields, JSON
            pulled_run  INTEGER NOT NULL        -- the run that last changed this row
        );
        INSERT INTO source_record_rowid
            (system, object, id, updated_at, deleted, merged_into, data, pulled_run)
            SELECT system, object, id, updated_at, deleted, merged_into, data, pulled_run
            FROM source_record ORDER BY system, object, id;
        DROP TABLE source_record;
        ALTER TABLE source_record_rowid RENAME TO source_record;
        CREATE UNIQUE INDEX source_record_key ON source_record (system, object, id);
        CREATE INDEX source_record_changed ON source_record (pulled_run);
        CREATE INDEX source_record_who ON source_record (json_extract(data, '$.WhoId'))
            WHERE system = 'salesforce' AND object IN ('Task', 'Event');
        """,
    ),
)

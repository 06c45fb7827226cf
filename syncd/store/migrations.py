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
)

"""The SQLite store: the only package that writes SQL.

`core` opens the file, migrates it and keeps runs, cursors, source records and API usage;
`unified` keeps the reconciled dataset (entities, links, audit, duplicates); `outbox` keeps what
is to be written to each CRM and what syncd last wrote there.
"""

from syncd.store.core import Store, iso, parse_iso

__all__ = ["Store", "iso", "parse_iso"]

"""Salesforce: the connector (`connector.py`, through simple-salesforce, with `auth.py` for
its sign-in) and the loopback emulator (`emulator.py`, `bulk.py` for Bulk API 2.0, the
in-memory org in `org.py` with `ids.py`, `values.py` and `tables.py`, the objects and fields
it knows in `schema.py`, and its SOQL subset in `soql.py` and the `soql_*.py` next to it)."""
